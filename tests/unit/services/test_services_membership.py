"""Leaving the loyalty programme: what is lost, the account and cards closed, the ledger and audit kept,
and a redemption still on its way holding the leaving back; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from dbfixtures import ANNA, IVAN, demo_ids, run_op
from sqlalchemy import func, select

from ivr.app.sms import FileSender, deliver_pending
from ivr.db.models import Account, AuditRecord, LoyaltyCard, PointsEntry, SmsOutbox, Subscriber
from ivr.db.session import UowFactory
from ivr.services import bonus, cards, membership


def test_leaving_closes_the_account_forfeits_the_points_and_keeps_the_history(
    uow_factory: UowFactory,
) -> None:
    sub_id, account_id = demo_ids(uow_factory, ANNA)
    with uow_factory() as uow:
        info = membership.leave_info(uow, sub_id)
        points = bonus.live_points(uow, account_id)
    assert (info.status, info.leave_points, info.leave_cards) == ("ok", points, 3)
    assert points > 0

    left = run_op(uow_factory, membership.leave_programme, sub_id)
    assert (left.status, left.points_lost, left.cards_closed) == ("ok", points, 3)
    with uow_factory() as uow:
        account = uow.session.get(Account, account_id)
        holder = uow.session.get(Subscriber, sub_id)
        assert account is not None and holder is not None
        assert (account.status, holder.status, account.points) == ("closed", "closed", 0)
        statuses = uow.session.scalars(select(LoyaltyCard.status).where(LoyaltyCard.account_id == account_id))
        assert set(statuses) == {"closed"}
        # The ledger stays and balances: the grants are still there, the forfeit took what was live.
        total = uow.session.scalar(
            select(func.sum(PointsEntry.delta)).where(PointsEntry.account_id == account_id)
        )
        assert total == 0
        assert uow.session.scalars(
            select(PointsEntry.kind).where(
                PointsEntry.account_id == account_id, PointsEntry.kind == "forfeit"
            )
        ).all() == ["forfeit"]
        assert [a.action for a in uow.session.scalars(select(AuditRecord))][-1] == "programme.leave"
        # Neither the phone number nor a card opens the account any more.
        assert cards.identify_card(uow, number=ANNA).status == "unknown"
        listed = cards.list_cards(uow, account_id)
    assert listed.count == 0
    assert run_op(uow_factory, membership.leave_programme, sub_id).status == "already_left"


def test_a_voucher_still_on_its_way_holds_the_leaving_back(uow_factory: UowFactory, tmp_path: Path) -> None:
    sub_id, account_id = demo_ids(uow_factory, ANNA)
    assert run_op(uow_factory, bonus.redeem, sub_id, reward_code="coffee").status == "ok"
    held = run_op(uow_factory, membership.leave_programme, sub_id)
    assert held.status == "redemption_pending"
    with uow_factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None and account.status == "active"
    deliver_pending(uow_factory, FileSender(tmp_path / "sms.log"))
    assert run_op(uow_factory, membership.leave_programme, sub_id).status == "ok"


def test_leaving_is_idempotent_per_key(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, ANNA)
    a = run_op(uow_factory, membership.leave_programme, sub_id, key="c:leave:1")
    b = run_op(uow_factory, membership.leave_programme, sub_id, key="c:leave:1")
    assert a == b and a.status == "ok"


# ---- joining by phone -------------------------------------------------------------------------------

NEWCOMER = "79051234567"


def test_joining_makes_a_pending_holder_then_an_enrolled_member_with_a_virtual_card(
    uow_factory: UowFactory,
) -> None:
    started = run_op(uow_factory, membership.start_joining, "8 905 123-45-67")
    assert started.status == "ok" and started.subscriber_id is not None
    with uow_factory() as uow:
        assert cards.identify_card(uow, number=NEWCOMER).status == "unknown"  # pending: opens nothing
    again = run_op(uow_factory, membership.start_joining, NEWCOMER)  # a second attempt reuses it
    assert again.subscriber_id == started.subscriber_id

    joined = run_op(uow_factory, membership.join, started.subscriber_id)
    assert joined.status == "ok" and joined.card_last4 is not None
    with uow_factory() as uow:
        account = uow.session.get(Account, joined.account_id)
        assert account is not None and account.status == "active" and account.bonus_enrolled_at is not None
        card = uow.session.get(LoyaltyCard, joined.card_id)
        assert card is not None and card.virtual and card.number.startswith("29") and len(card.number) == 13
        sms = uow.session.scalars(select(SmsOutbox).where(SmsOutbox.msisdn == NEWCOMER)).all()
        assert [s.kind for s in sms] == ["card_number"] and card.number in sms[0].text
        found = cards.identify_card(uow, number=NEWCOMER)
        assert (found.status, found.card_last4) == ("found", card.number[-4:])
    assert run_op(uow_factory, membership.join, started.subscriber_id).status == "already_member"


def test_an_existing_member_or_another_programmes_number_cannot_join(uow_factory: UowFactory) -> None:
    assert run_op(uow_factory, membership.start_joining, ANNA).status == "already_member"
    assert run_op(uow_factory, membership.start_joining, IVAN).status == "number_taken"
    assert run_op(uow_factory, membership.start_joining, "12345").status == "invalid_number"
