"""Membership of the loyalty programme: leaving it by phone.

Leaving deactivates, never deletes: the account and its holder are closed, every card stops working,
the points still on the account are forfeited by one ledger entry (`forfeit`), and the audit trail and the
ledger stay. The caller first hears what is lost (`leave_info`). A redemption whose voucher has not
reached the member yet (its SMS still in the outbox) holds the leaving back: the member would lose the
voucher they paid points for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select

from ivr.db.models import LoyaltyCard, SmsOutbox
from ivr.db.session import UnitOfWork
from ivr.services.bonus import forfeit_all, live_points
from ivr.services.cards import LISTED
from ivr.services.common import NO_ORIGIN, Origin, audit, load_subscriber, lock_account, once

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaveInfo:
    status: str  # ok | already_left
    leave_points: int = 0
    leave_cards: int = 0


@dataclass(frozen=True)
class LeaveResult:
    status: str  # ok | redemption_pending | already_left
    points_lost: int = 0
    cards_closed: int = 0


def _cards(uow: UnitOfWork, account_id: int) -> list[LoyaltyCard]:
    return list(
        uow.session.scalars(
            select(LoyaltyCard).where(LoyaltyCard.account_id == account_id, LoyaltyCard.status.in_(LISTED))
        ).all()
    )


def leave_info(uow: UnitOfWork, subscriber_id: int) -> LeaveInfo:
    sub = load_subscriber(uow, subscriber_id)
    if sub.account.status == "closed":
        return LeaveInfo(status="already_left")
    points = live_points(uow, sub.account_id) if sub.account.bonus_enrolled_at else 0
    return LeaveInfo(status="ok", leave_points=points, leave_cards=len(_cards(uow, sub.account_id)))


def leave_programme(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> LeaveResult:
    def run() -> LeaveResult:
        sub = load_subscriber(uow, subscriber_id)
        account = lock_account(uow, sub.account_id)
        if account.status == "closed":
            return LeaveResult(status="already_left")
        undelivered = uow.session.scalar(
            select(func.count(SmsOutbox.id)).where(
                SmsOutbox.msisdn == sub.msisdn, SmsOutbox.kind == "voucher", SmsOutbox.sent_at.is_(None)
            )
        )
        if undelivered:
            return LeaveResult(status="redemption_pending")
        points = forfeit_all(uow, account) if account.bonus_enrolled_at else 0
        cards = _cards(uow, account.id)
        for card in cards:
            card.status = "closed"
        account.status = "closed"
        sub.status = "closed"
        account.version += 1
        audit(
            uow,
            origin,
            "programme.leave",
            account_id=account.id,
            subscriber_id=sub.id,
            points_lost=points,
            cards_closed=len(cards),
        )
        return LeaveResult(status="ok", points_lost=points, cards_closed=len(cards))

    return once(uow, key, "programme.leave", LeaveResult, run)
