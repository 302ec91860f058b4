"""Loyalty cards: number validation, identify, list, register (limit five), block, unblock, reissue."""

from __future__ import annotations

import logging
import re

import pytest
from dbfixtures import ANNA, IVAN, MIKHAIL, TATIANA, demo_ids, run_op
from sqlalchemy import select

from ivr.db.models import AuditRecord, LoyaltyCard, SmsOutbox
from ivr.db.session import UowFactory
from ivr.numbering.cards import with_ean13_check_digit as ean13
from ivr.services import cards
from ivr.testbed.demo_data import FREE_CARDS

ANNA_CARDS = [ean13("277000000001"), ean13("277000000002"), ean13("277000000003")]


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4006381333931", True),  # a real EAN-13
        ("4006381333932", False),
        ("2770000000011", ean13("277000000001") == "2770000000011"),
        ("4111111111111111", True),  # Luhn, 16 digits
        ("4111111111111112", False),
        ("79927398713", False),  # Luhn-valid but 11 digits: no card has that length
        ("400638133393", False),
        ("abcdefghijklm", False),
    ],
)
def test_card_number_validation(number: str, valid: bool) -> None:
    assert cards.valid_card_number(number) is valid


def test_identify_by_card_and_by_phone(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, ANNA)
    with uow_factory() as uow:
        by_card = cards.identify_card(uow, card_number=ANNA_CARDS[1])
        by_phone = cards.identify_card(uow, number="+7 903 123 45 67")
        blocked = cards.identify_card(uow, card_number=ANNA_CARDS[2])
        unknown = cards.identify_card(uow, card_number=ean13("277000000999"))
        free = cards.identify_card(uow, card_number=FREE_CARDS[0])
        mobile = cards.identify_card(uow, number=IVAN)
        no_cards = cards.identify_card(uow, number=MIKHAIL)
    assert (by_card.status, by_card.account_id, by_card.subscriber_id) == ("found", account_id, sub_id)
    assert by_card.card_last4 == ANNA_CARDS[1][-4:]
    assert (by_phone.status, by_phone.card_last4) == ("found", ANNA_CARDS[0][-4:])
    assert blocked.status == "blocked"
    assert unknown.status == free.status == mobile.status == "unknown"
    assert (no_cards.status, no_cards.card_id) == ("found", None)


def test_list_cards(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, ANNA)
    with uow_factory() as uow:
        listed = cards.list_cards(uow, account_id)
        empty = cards.list_cards(uow, demo_ids(uow_factory, MIKHAIL)[1])
    assert listed.count == 3
    assert [(c.key, c.last4, c.status) for c in listed.cards] == [
        ("1", ANNA_CARDS[0][-4:], "active"),
        ("2", ANNA_CARDS[1][-4:], "active"),
        ("3", ANNA_CARDS[2][-4:], "blocked"),
    ]
    assert (empty.status, empty.count) == ("none", 0)


def test_register(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, ANNA)
    ok = run_op(uow_factory, cards.register_card, account_id, FREE_CARDS[0])
    assert (ok.status, ok.card_last4, ok.count) == ("ok", FREE_CARDS[0][-4:], 4)
    brand_new = ean13("460000000123")  # never issued here: registering creates it
    assert run_op(uow_factory, cards.register_card, account_id, brand_new).status == "ok"
    assert run_op(uow_factory, cards.register_card, account_id, FREE_CARDS[0]).status == "already_registered"
    sixth = run_op(uow_factory, cards.register_card, account_id, FREE_CARDS[1])
    assert (sixth.status, sixth.count) == ("limit_reached", 5)


def test_register_refusals(uow_factory: UowFactory) -> None:
    _, tatiana = demo_ids(uow_factory, TATIANA)
    _, mikhail = demo_ids(uow_factory, MIKHAIL)
    assert run_op(uow_factory, cards.register_card, tatiana, FREE_CARDS[0]).status == "limit_reached"
    assert run_op(uow_factory, cards.register_card, mikhail, ANNA_CARDS[0]).status == "taken"
    assert run_op(uow_factory, cards.register_card, mikhail, "4006381333932").status == "invalid_number"
    assert run_op(uow_factory, cards.register_card, mikhail, "12").status == "invalid_number"
    assert run_op(uow_factory, cards.register_card, mikhail, "4111 1111 1111 1111").status == "ok"


def test_block_unblock(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, ANNA)
    blocked = run_op(uow_factory, cards.block_card, account_id, card_key="1")
    assert (blocked.status, blocked.card_last4) == ("ok", ANNA_CARDS[0][-4:])
    assert run_op(uow_factory, cards.block_card, account_id, card_key="1").status == "already_blocked"
    assert run_op(uow_factory, cards.unblock_card, account_id, card_key="1").status == "ok"
    assert run_op(uow_factory, cards.unblock_card, account_id, card_key="1").status == "not_blocked"
    assert run_op(uow_factory, cards.block_card, account_id, card_key="4").status == "unknown_card"
    assert run_op(uow_factory, cards.unblock_card, account_id).status == "unknown_card"
    with uow_factory() as uow:
        card_id = cards.identify_card(uow, card_number=ANNA_CARDS[1]).card_id
    assert run_op(uow_factory, cards.block_card, account_id, card_id=card_id).status == "ok"
    # a card of another account cannot be reached
    _, tatiana = demo_ids(uow_factory, TATIANA)
    assert run_op(uow_factory, cards.block_card, tatiana, card_id=card_id).status == "unknown_card"


def test_reissue_sends_the_new_number_by_sms_only(
    uow_factory: UowFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, account_id = demo_ids(uow_factory, ANNA)
    assert run_op(uow_factory, cards.reissue_card, account_id, card_key="1").status == "not_blocked"
    result = run_op(uow_factory, cards.reissue_card, account_id, card_key="3")
    assert (result.status, result.card_last4) == ("ok", ANNA_CARDS[2][-4:])
    assert result.new_card_last4 is not None
    with uow_factory() as uow:
        sms = uow.session.scalars(select(SmsOutbox)).one()
        new_number = re.search(r"\d{13}", sms.text)
        assert new_number is not None and sms.msisdn == ANNA
        number = new_number.group(0)
        card = uow.session.scalars(select(LoyaltyCard).where(LoyaltyCard.number == number)).one()
        assert (card.virtual, card.status, card.account_id) == (True, "active", account_id)
        old = uow.session.scalars(select(LoyaltyCard).where(LoyaltyCard.number == ANNA_CARDS[2])).one()
        assert (old.status, old.replaced_by_id) == ("replaced", card.id)
        details = " ".join(a.detail for a in uow.session.scalars(select(AuditRecord)).all())
        listed = cards.list_cards(uow, account_id)
    assert number.endswith(result.new_card_last4) and cards.valid_card_number(number)
    assert number not in details and number not in caplog.text
    assert [c.last4 for c in listed.cards] == [ANNA_CARDS[0][-4:], ANNA_CARDS[1][-4:], number[-4:]]
    # the old card no longer identifies anyone
    with uow_factory() as uow:
        assert cards.identify_card(uow, card_number=ANNA_CARDS[2]).status == "unknown"


# ---- deleting a card from the account -------------------------------------------------------------------


def _points(factory: UowFactory, account_id: int) -> int:
    from ivr.db.models import Account

    with factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        return account.points


def test_a_deleted_card_leaves_the_account_and_the_points_stay(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, ANNA)
    points = _points(uow_factory, account_id)
    deleted = run_op(uow_factory, cards.delete_card, account_id, card_key="2")
    assert (deleted.status, deleted.card_last4) == ("ok", ANNA_CARDS[1][-4:])
    with uow_factory() as uow:
        listed = cards.list_cards(uow, account_id)
        card = uow.session.scalars(select(LoyaltyCard).where(LoyaltyCard.number == ANNA_CARDS[1])).one()
        assert (card.status, card.account_id) == ("deleted", None)
        # The card no longer opens the account.
        assert cards.identify_card(uow, card_number=ANNA_CARDS[1]).status == "unknown"
        assert [a.action for a in uow.session.scalars(select(AuditRecord))][-1] == "card.delete"
    assert [c.last4 for c in listed.cards] == [ANNA_CARDS[0][-4:], ANNA_CARDS[2][-4:]]
    assert _points(uow_factory, account_id) == points


def test_the_last_card_cannot_be_deleted(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, ANNA)
    assert run_op(uow_factory, cards.delete_card, account_id, card_key="1").status == "ok"
    assert run_op(uow_factory, cards.delete_card, account_id, card_key="1").status == "ok"
    last = run_op(uow_factory, cards.delete_card, account_id, card_key="1")
    assert (last.status, last.card_last4) == ("last_card", ANNA_CARDS[2][-4:])
    with uow_factory() as uow:
        assert cards.list_cards(uow, account_id).count == 1


def test_deleting_an_unknown_card(uow_factory: UowFactory) -> None:
    _, account_id = demo_ids(uow_factory, ANNA)
    assert run_op(uow_factory, cards.delete_card, account_id, card_key="7").status == "unknown_card"
