"""Leaving the loyalty programme: what is lost, the account and cards closed, the ledger and audit kept,
and a redemption still on its way holding the leaving back; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from dbfixtures import ANNA, demo_ids, run_op
from sqlalchemy import func, select

from ivr.app.sms import FileSender, deliver_pending
from ivr.db.models import Account, AuditRecord, LoyaltyCard, PointsEntry, Subscriber
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
