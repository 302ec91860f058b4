"""Loyalty cards: identify, list, register (at most `MAX_CARDS` per account), block, unblock, reissue.

Card numbers: plastic cards carry an EAN-13 barcode (13 digits, the last is the EAN check digit: weights
1,3,1,3,... over the first twelve); co-branded bank-style cards have 16 to 19 digits with a Luhn check
digit. Any other length, or a wrong check digit, is `invalid_number`.
Numbers of virtual cards issued by `reissue` start with "29" (an in-store EAN prefix).

The full card number is never returned to the line, logged or audited: results carry the last four digits;
a reissued card's full number goes to the customer by SMS (the outbox) only.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from ivr.db.models import Account, LoyaltyCard, Subscriber
from ivr.db.session import UnitOfWork
from ivr.numbering.cards import valid_card_number, with_ean13_check_digit
from ivr.services.auth import find_subscriber
from ivr.services.common import MENU_KEYS, NO_ORIGIN, Origin, audit, lock_account, menu_index, once, queue_sms

log = logging.getLogger(__name__)

MAX_CARDS = 5
LISTED = ("active", "blocked")


@dataclass(frozen=True)
class CardIdentification:
    status: str  # found | unknown | blocked
    card_id: int | None = None
    account_id: int | None = None
    subscriber_id: int | None = None
    card_last4: str | None = None


@dataclass(frozen=True)
class CardLine:
    key: str
    last4: str
    status: str  # active | blocked
    card_id: int


@dataclass(frozen=True)
class CardList:
    status: str  # ok | none
    cards: tuple[CardLine, ...] = ()
    count: int = 0


@dataclass(frozen=True)
class CardRegistration:
    status: str  # ok | invalid_number | limit_reached | already_registered | taken
    card_last4: str | None = None
    count: int = 0


@dataclass(frozen=True)
class CardChange:
    status: str  # ok | already_blocked | not_blocked | unknown_card | last_card
    card_last4: str | None = None
    new_card_last4: str | None = None


def _clean(number: object) -> str:
    return re.sub(r"\D", "", str(number or ""))


def _holder(uow: UnitOfWork, account_id: int) -> Subscriber | None:
    return uow.session.scalars(
        select(Subscriber).where(Subscriber.account_id == account_id).order_by(Subscriber.id)
    ).first()


def identify_card(
    uow: UnitOfWork, *, card_number: str | None = None, number: str | None = None
) -> CardIdentification:
    """By card number, or by the holder's phone number (then the first active card, if any)."""
    card: LoyaltyCard | None = None
    if card_number:
        card = uow.session.scalars(
            select(LoyaltyCard).where(LoyaltyCard.number == _clean(card_number))
        ).first()
        # A replaced, deleted or closed card (the member left the programme) opens nothing.
        if card is None or card.account_id is None or card.status not in LISTED:
            return CardIdentification(status="unknown")
        account_id = card.account_id
    else:
        sub = find_subscriber(uow, number)
        if sub is None or sub.account.kind != "loyalty" or sub.status != "active":  # closed, or still joining
            return CardIdentification(status="unknown")
        account_id = sub.account_id
        card = uow.session.scalars(
            select(LoyaltyCard)
            .where(LoyaltyCard.account_id == account_id, LoyaltyCard.status.in_(LISTED))
            .order_by(LoyaltyCard.status, LoyaltyCard.id)  # "active" sorts before "blocked"
        ).first()
    holder = _holder(uow, account_id)
    return CardIdentification(
        status="blocked" if card is not None and card.status == "blocked" else "found",
        card_id=card.id if card else None,
        account_id=account_id,
        subscriber_id=holder.id if holder else None,
        card_last4=card.number[-4:] if card else None,
    )


def listed_cards(uow: UnitOfWork, account_id: int) -> list[LoyaltyCard]:
    """The account's cards that still work for it (active or blocked), in the order they are read out."""
    return list(
        uow.session.scalars(
            select(LoyaltyCard)
            .where(LoyaltyCard.account_id == account_id, LoyaltyCard.status.in_(LISTED))
            .order_by(LoyaltyCard.id)
        ).all()
    )


def list_cards(uow: UnitOfWork, account_id: int) -> CardList:
    cards = listed_cards(uow, account_id)
    lines = tuple(
        CardLine(key=key, last4=c.number[-4:], status=c.status, card_id=c.id)
        for key, c in zip(MENU_KEYS, cards, strict=False)
    )
    return CardList(status="ok" if lines else "none", cards=lines, count=len(cards))


def register_card(
    uow: UnitOfWork, account_id: int, card_number: str, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> CardRegistration:
    def run() -> CardRegistration:
        number = _clean(card_number)
        if not valid_card_number(number):
            return CardRegistration(status="invalid_number")
        account = lock_account(uow, account_id)  # two calls cannot both add the fifth card
        count = (
            uow.session.scalar(
                select(func.count(LoyaltyCard.id)).where(
                    LoyaltyCard.account_id == account.id, LoyaltyCard.status.in_(LISTED)
                )
            )
            or 0
        )
        # Locked too: two accounts registering one card at once must not both get it.
        by_number = select(LoyaltyCard).where(LoyaltyCard.number == number)
        card = uow.session.scalars(uow.locked(by_number)).first()
        if card is not None and card.account_id == account.id:
            return CardRegistration(status="already_registered", card_last4=number[-4:], count=count)
        if card is not None and card.account_id is not None:
            return CardRegistration(status="taken", card_last4=number[-4:], count=count)
        if count >= MAX_CARDS:
            return CardRegistration(status="limit_reached", card_last4=number[-4:], count=count)
        if card is None:
            card = LoyaltyCard(number=number)
            uow.session.add(card)
        card.account_id = account.id
        card.status = "active"
        card.registered_at = uow.now()
        account.version += 1
        uow.session.flush()
        audit(uow, origin, "card.register", account_id=account.id, card_id=card.id, last4=number[-4:])
        return CardRegistration(status="ok", card_last4=number[-4:], count=count + 1)

    return once(uow, key, "card.register", CardRegistration, run)


def _pick(uow: UnitOfWork, account_id: int, card_key: object, card_id: int | None) -> LoyaltyCard | None:
    cards = listed_cards(uow, account_id)
    if card_key is not None and str(card_key) != "":
        index = menu_index(card_key)
        return cards[index] if 0 <= index < len(cards) else None
    if card_id is not None:
        return next((c for c in cards if c.id == int(card_id)), None)
    return None


def block_card(
    uow: UnitOfWork,
    account_id: int,
    *,
    card_key: object = None,
    card_id: int | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> CardChange:
    def run() -> CardChange:
        lock_account(uow, account_id)
        card = _pick(uow, account_id, card_key, card_id)
        if card is None:
            return CardChange(status="unknown_card")
        if card.status == "blocked":
            return CardChange(status="already_blocked", card_last4=card.number[-4:])
        card.status = "blocked"
        card.blocked_at = uow.now()
        audit(uow, origin, "card.block", account_id=account_id, card_id=card.id, last4=card.number[-4:])
        return CardChange(status="ok", card_last4=card.number[-4:])

    return once(uow, key, "card.block", CardChange, run)


def delete_card(
    uow: UnitOfWork,
    account_id: int,
    *,
    card_key: object = None,
    card_id: int | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> CardChange:
    """Take a card off the account. The points stay on the account; the card stops working for it (it is
    detached and marked deleted, its history stays in the audit trail). The last card cannot go: an
    account keeps at least one card (leaving the programme is its own operation)."""

    def run() -> CardChange:
        lock_account(uow, account_id)
        card = _pick(uow, account_id, card_key, card_id)
        if card is None:
            return CardChange(status="unknown_card")
        if len(listed_cards(uow, account_id)) <= 1:
            return CardChange(status="last_card", card_last4=card.number[-4:])
        card.status = "deleted"
        card.account_id = None
        audit(uow, origin, "card.delete", account_id=account_id, card_id=card.id, last4=card.number[-4:])
        return CardChange(status="ok", card_last4=card.number[-4:])

    return once(uow, key, "card.delete", CardChange, run)


def unblock_card(
    uow: UnitOfWork,
    account_id: int,
    *,
    card_key: object = None,
    card_id: int | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> CardChange:
    def run() -> CardChange:
        lock_account(uow, account_id)
        card = _pick(uow, account_id, card_key, card_id)
        if card is None:
            return CardChange(status="unknown_card")
        if card.status != "blocked":
            return CardChange(status="not_blocked", card_last4=card.number[-4:])
        card.status = "active"
        card.blocked_at = None
        audit(uow, origin, "card.unblock", account_id=account_id, card_id=card.id, last4=card.number[-4:])
        return CardChange(status="ok", card_last4=card.number[-4:])

    return once(uow, key, "card.unblock", CardChange, run)


def new_virtual_number(uow: UnitOfWork) -> str:
    """A virtual card number not issued yet: EAN-13 starting 29."""
    while True:
        first12 = "29" + "".join(secrets.choice("0123456789") for _ in range(10))
        number = with_ean13_check_digit(first12)
        if uow.session.scalars(select(LoyaltyCard.id).where(LoyaltyCard.number == number)).first() is None:
            return number


def reissue_card(
    uow: UnitOfWork,
    account_id: int,
    *,
    card_key: object = None,
    card_id: int | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> CardChange:
    """Replace a blocked (lost) card by a new virtual card; the full new number goes by SMS only."""

    def run() -> CardChange:
        account: Account = lock_account(uow, account_id)
        card = _pick(uow, account_id, card_key, card_id)
        if card is None:
            return CardChange(status="unknown_card")
        if card.status != "blocked":
            return CardChange(status="not_blocked", card_last4=card.number[-4:])
        holder = _holder(uow, account.id)
        number = new_virtual_number(uow)
        new_card = LoyaltyCard(
            number=number, account_id=account.id, status="active", virtual=True, registered_at=uow.now()
        )
        uow.session.add(new_card)
        uow.session.flush()
        card.status = "replaced"
        card.replaced_by_id = new_card.id
        if holder is not None:
            text = (
                f"Номер вашей новой виртуальной карты: {number}. Баллы сохранены."
                if holder.language != "en"
                else f"Your new virtual card number: {number}. Your points are kept."
            )
            queue_sms(uow, holder.msisdn, text, "card_reissue")
        audit(
            uow,
            origin,
            "card.reissue",
            account_id=account.id,
            old_card_id=card.id,
            new_card_id=new_card.id,
            last4=number[-4:],
        )
        return CardChange(status="ok", card_last4=card.number[-4:], new_card_last4=number[-4:])

    return once(uow, key, "card.reissue", CardChange, run)
