"""Membership of the loyalty programme: joining and leaving it by phone.

Joining, as the programme's web page issues virtual cards: a caller who is not a member names the phone
number to enrol; `start_joining` makes a pending holder for it (status "pending": it opens nothing) so
that a one-time code can go to that number; once the code is confirmed in the call, `join` activates the
account, enrols it in the points programme and issues a virtual card whose full number goes by SMS. A
number that already belongs to a member is refused (`already_member`); a number that belongs to a
customer of another kind (the mobile line's) cannot hold a loyalty account (`number_taken`).

Leaving deactivates, never deletes: the account and its holder are closed, every card stops working,
the points still on the account are forfeited by one ledger entry (`forfeit`), and the audit trail and the
ledger stay. The caller first hears what is lost (`leave_info`). A redemption whose voucher has not
reached the member yet (its SMS still in the outbox) holds the leaving back: the member would lose the
voucher they paid points for.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from ivr.db.models import Account, LoyaltyCard, SmsOutbox, Subscriber
from ivr.db.session import UnitOfWork
from ivr.services.auth import find_subscriber
from ivr.services.bonus import forfeit_all, live_points
from ivr.services.cards import listed_cards, new_virtual_number
from ivr.services.common import (
    NO_ORIGIN,
    Origin,
    audit,
    load_subscriber,
    lock_account,
    lock_subscriber,
    normalize_msisdn,
    once,
    queue_sms,
)

log = logging.getLogger(__name__)


CARD_SMS = {
    "ru": "Добро пожаловать в программу! Номер вашей виртуальной карты: {number}.",
    "en": "Welcome to the programme! Your virtual card number: {number}.",
}


@dataclass(frozen=True)
class JoinStart:
    status: str  # ok | already_member | number_taken | invalid_number
    subscriber_id: int | None = None


@dataclass(frozen=True)
class JoinResult:
    status: str  # ok | already_member
    account_id: int | None = None
    card_id: int | None = None
    card_last4: str | None = None


def _new_account_number(uow: UnitOfWork) -> str:
    while True:
        number = "4" + "".join(secrets.choice("0123456789") for _ in range(7))
        if uow.session.scalars(select(Account.id).where(Account.number == number)).first() is None:
            return number


def start_joining(
    uow: UnitOfWork, number: str, *, language: str = "ru", origin: Origin = NO_ORIGIN
) -> JoinStart:
    """The pending holder a one-time code can be sent to (made, or found from an earlier attempt)."""
    msisdn = normalize_msisdn(number)
    if msisdn is None:
        return JoinStart(status="invalid_number")
    sub = find_subscriber(uow, msisdn)
    if sub is not None:
        if sub.account.kind != "loyalty":
            return JoinStart(status="number_taken")
        if sub.status != "pending":
            return JoinStart(status="already_member")
        return JoinStart(status="ok", subscriber_id=sub.id)
    account = Account(
        number=_new_account_number(uow), kind="loyalty", holder="", created_at=uow.now(), status="pending"
    )
    uow.session.add(account)
    uow.session.flush()
    sub = Subscriber(msisdn=msisdn, account_id=account.id, status="pending", language=language, plan_id=None)
    uow.session.add(sub)
    uow.session.flush()
    audit(uow, origin, "programme.join_start", account_id=account.id, subscriber_id=sub.id)
    return JoinStart(status="ok", subscriber_id=sub.id)


def join(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> JoinResult:
    """Activate a pending holder (its number confirmed by a one-time code in this call: the action layer
    checks), enrol it and issue a virtual card, its full number by SMS only."""

    def run() -> JoinResult:
        sub = lock_subscriber(uow, subscriber_id)
        account = lock_account(uow, sub.account_id)
        if sub.status != "pending" or account.kind != "loyalty":
            return JoinResult(status="already_member")
        now = uow.now()
        sub.status = "active"
        account.status = "active"
        account.bonus_enrolled_at = now
        account.version += 1
        card = LoyaltyCard(
            number=new_virtual_number(uow),
            account_id=account.id,
            status="active",
            virtual=True,
            registered_at=now,
        )
        uow.session.add(card)
        uow.session.flush()
        text = CARD_SMS.get(sub.language, CARD_SMS["ru"]).format(number=card.number)
        queue_sms(uow, sub.msisdn, text, "card_number")
        audit(uow, origin, "programme.join", account_id=account.id, subscriber_id=sub.id, card_id=card.id)
        return JoinResult(status="ok", account_id=account.id, card_id=card.id, card_last4=card.number[-4:])

    return once(uow, key, "programme.join", JoinResult, run)


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


def leave_info(uow: UnitOfWork, subscriber_id: int) -> LeaveInfo:
    sub = load_subscriber(uow, subscriber_id)
    if sub.account.status == "closed":
        return LeaveInfo(status="already_left")
    points = live_points(uow, sub.account_id) if sub.account.bonus_enrolled_at else 0
    return LeaveInfo(status="ok", leave_points=points, leave_cards=len(listed_cards(uow, sub.account_id)))


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
        cards = listed_cards(uow, account.id)
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
