"""Voluntary block of a number (lost phone, long trip): 1 to 90 days, free, ends by itself.

A block is active while `starts_at <= now < ends_at` and it was not ended early by `unblock`; a block past
its end is simply not active (no job needed). Only one active block at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select

from ivr.db.models import NumberBlock
from ivr.db.session import UnitOfWork
from ivr.services.common import NO_ORIGIN, Origin, audit, lock_subscriber, may_change_own, once

log = logging.getLogger(__name__)

MIN_DAYS = 1
MAX_DAYS = 90


@dataclass(frozen=True)
class BlockResult:
    status: str  # ok | already_blocked | invalid_days | forbidden
    until: dt.date | None = None


@dataclass(frozen=True)
class UnblockResult:
    status: str  # ok | not_blocked | forbidden


def active_block(uow: UnitOfWork, subscriber_id: int) -> NumberBlock | None:
    now = uow.now()
    return uow.session.scalars(
        select(NumberBlock).where(
            NumberBlock.subscriber_id == subscriber_id,
            NumberBlock.ended_at.is_(None),
            NumberBlock.starts_at <= now,
            NumberBlock.ends_at > now,
        )
    ).first()


def _days(value: object) -> int | None:
    try:
        days = int(str(value))
    except (TypeError, ValueError):
        return None
    return days if MIN_DAYS <= days <= MAX_DAYS else None


def block_number(
    uow: UnitOfWork, subscriber_id: int, days: object, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> BlockResult:
    def run() -> BlockResult:
        sub = lock_subscriber(uow, subscriber_id)  # two calls cannot both block
        if not may_change_own(sub):
            return BlockResult(status="forbidden")
        count = _days(days)
        if count is None:
            return BlockResult(status="invalid_days")
        current = active_block(uow, sub.id)
        if current is not None:
            return BlockResult(status="already_blocked", until=current.ends_at.date())
        now = uow.now()
        ends = now + dt.timedelta(days=count)
        uow.session.add(NumberBlock(subscriber_id=sub.id, starts_at=now, ends_at=ends))
        audit(uow, origin, "number.block", account_id=sub.account_id, subscriber_id=sub.id, days=count)
        return BlockResult(status="ok", until=ends.date())

    return once(uow, key, "number.block", BlockResult, run)


def unblock_number(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> UnblockResult:
    def run() -> UnblockResult:
        sub = lock_subscriber(uow, subscriber_id)
        if not may_change_own(sub):
            return UnblockResult(status="forbidden")
        current = active_block(uow, sub.id)
        if current is None:
            return UnblockResult(status="not_blocked")
        current.ended_at = uow.now()
        audit(uow, origin, "number.unblock", account_id=sub.account_id, subscriber_id=sub.id)
        return UnblockResult(status="ok")

    return once(uow, key, "number.unblock", UnblockResult, run)
