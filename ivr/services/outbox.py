"""The SMS outbox seen from the delivery side: take pending messages, mark them sent or failed.

Texts may carry a temporary password or a new card number; this module never logs a text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from ivr.db.models import SmsOutbox
from ivr.db.session import UnitOfWork

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class OutgoingSms:
    id: int
    msisdn: str
    text: str
    kind: str


def pending(uow: UnitOfWork, limit: int = 100) -> list[OutgoingSms]:
    rows = uow.session.scalars(
        uow.locked(
            select(SmsOutbox)
            .where(SmsOutbox.sent_at.is_(None), SmsOutbox.attempts < MAX_ATTEMPTS)
            .order_by(SmsOutbox.id)
            .limit(limit)
        )
    ).all()
    return [OutgoingSms(id=r.id, msisdn=r.msisdn, text=r.text, kind=r.kind) for r in rows]


def mark_sent(uow: UnitOfWork, sms_id: int) -> None:
    row = uow.session.get(SmsOutbox, sms_id)
    if row is not None:
        row.sent_at = uow.now()
        row.attempts += 1


def mark_failed(uow: UnitOfWork, sms_id: int) -> None:
    row = uow.session.get(SmsOutbox, sms_id)
    if row is not None:
        row.attempts += 1
        log.warning("sms %s to %s failed (attempt %d)", row.id, row.msisdn, row.attempts)
