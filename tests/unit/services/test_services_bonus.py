"""Bonus points: balance, enrolment, catalogue, redemption, transfer, expiry, and the ledger invariants."""

from __future__ import annotations

import datetime as dt

from dbfixtures import (
    ANNA,
    CORP_ADMIN,
    CORP_OWN,
    CORP_VIEW,
    IVAN,
    MARIA,
    MIKHAIL,
    NATALIA,
    TATIANA,
    TestClock,
    demo_ids,
    run_op,
)
from sqlalchemy import func, select

from ivr.db.models import Account, PointsEntry, SmsOutbox, Subscriber
from ivr.db.session import UowFactory
from ivr.services import bonus


def assert_ledger_balances(factory: UowFactory, account_id: int) -> int:
    with factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        deltas = uow.session.scalar(
            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.account_id == account_id)
        )
        remaining = uow.session.scalar(
            select(func.coalesce(func.sum(PointsEntry.remaining), 0)).where(
                PointsEntry.account_id == account_id
            )
        )
        negative = uow.session.scalar(
            select(func.count(PointsEntry.id)).where(
                PointsEntry.account_id == account_id, PointsEntry.remaining < 0
            )
        )
        assert account.points == deltas == remaining
        assert negative == 0
        assert account.points >= 0
        return account.points


def _points(factory: UowFactory, msisdn: str) -> int:
    with factory() as uow:
        return bonus.points_balance(uow, demo_ids(factory, msisdn)[1]).points


def test_balance_with_expiring_points(uow_factory: UowFactory, clock: TestClock) -> None:
    with uow_factory() as uow:
        result = bonus.points_balance(uow, demo_ids(uow_factory, IVAN)[1])
        none = bonus.points_balance(uow, demo_ids(uow_factory, MARIA)[1])
    assert (result.status, result.points, result.expiring_points) == ("ok", 1250, 350)
    # The demo grant expires 10 days after seeding; the seeded template database may have been made on the
    # previous UTC day when a run crosses midnight, so allow that one day and no more.
    assert result.expiry_date is not None
    expected = (clock.now + dt.timedelta(days=10)).date()
    assert expected - dt.timedelta(days=1) <= result.expiry_date <= expected
    assert none.status == "not_enrolled"


def test_expired_points_are_not_spendable_and_get_written_off(
    uow_factory: UowFactory, clock: TestClock
) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    clock.advance(days=11)
    assert _points(uow_factory, IVAN) == 900
    with uow_factory() as uow:
        assert bonus.points_balance(uow, account_id).expiring_points == 0
    run_op(uow_factory, bonus.redeem, sub_id, reward_code="sms50")
    assert assert_ledger_balances(uow_factory, account_id) == 700
    with uow_factory() as uow:
        kinds = [
            e.kind
            for e in uow.session.scalars(select(PointsEntry).where(PointsEntry.account_id == account_id))
        ]
    assert kinds.count("expire") == 1


def test_spending_takes_the_points_expiring_first(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    run_op(uow_factory, bonus.redeem, sub_id, reward_code="sms50")  # 200 of the 350 expiring in 10 days
    clock.advance(days=11)
    assert _points(uow_factory, IVAN) == 900  # 150 expired, 900 kept
    assert assert_ledger_balances(uow_factory, account_id) == 1050  # not yet written off


def test_enrol(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, MARIA)
    assert run_op(uow_factory, bonus.enrol, sub_id).status == "ok"
    assert run_op(uow_factory, bonus.enrol, sub_id).status == "already_enrolled"
    with uow_factory() as uow:
        assert bonus.points_balance(uow, account_id).points == 0
    assert run_op(uow_factory, bonus.enrol, demo_ids(uow_factory, MIKHAIL)[0]).status == "ok"
    view, corp_account = demo_ids(uow_factory, CORP_VIEW)
    assert run_op(uow_factory, bonus.enrol, view).status == "already_enrolled"
    with uow_factory(write=True) as uow:
        account = uow.session.get(Account, corp_account)
        assert account is not None
        account.bonus_enrolled_at = None
        uow.commit()
    assert run_op(uow_factory, bonus.enrol, view).status == "forbidden"
    assert run_op(uow_factory, bonus.enrol, demo_ids(uow_factory, CORP_OWN)[0]).status == "forbidden"


def test_catalogue_per_programme(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        mobile = bonus.catalogue(uow, demo_ids(uow_factory, IVAN)[1])
        loyalty = bonus.catalogue(uow, demo_ids(uow_factory, ANNA)[1])
    assert [(r.key, r.code, r.points) for r in mobile.rewards] == [
        ("1", "min100", 500),
        ("2", "sms50", 200),
        ("3", "gb1", 550),
    ]
    assert [r.code for r in loyalty.rewards] == ["coffee", "v200", "v500"]


def test_redeem_minutes(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, bonus.redeem, sub_id, reward_key="1")
    assert (result.status, result.reward_name, result.points_left) == ("ok", "100 минут", 750)
    with uow_factory() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        assert sub is not None and sub.minutes_left == 400
    assert assert_ledger_balances(uow_factory, account_id) == 750


def test_redeem_voucher_by_sms(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, ANNA)
    assert run_op(uow_factory, bonus.redeem, sub_id, reward_code="v200").status == "ok"
    with uow_factory() as uow:
        sms = uow.session.scalars(select(SmsOutbox)).one()
        assert (sms.msisdn, sms.kind) == (ANNA, "voucher")
        assert "Купон на 200 рублей" in sms.text


def test_redeem_refusals(uow_factory: UowFactory) -> None:
    tatiana, tatiana_account = demo_ids(uow_factory, TATIANA)
    poor = run_op(uow_factory, bonus.redeem, tatiana, reward_code="coffee")
    assert (poor.status, poor.points_left) == ("insufficient_points", 150)
    assert assert_ledger_balances(uow_factory, tatiana_account) == 150
    ivan, _ = demo_ids(uow_factory, IVAN)
    assert run_op(uow_factory, bonus.redeem, ivan, reward_key="8").status == "unknown_reward"
    assert (
        run_op(uow_factory, bonus.redeem, ivan, reward_code="coffee").status == "unknown_reward"
    )  # other programme
    assert run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, MARIA)[0], reward_key="1").status == (
        "not_enrolled"
    )
    assert run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, CORP_VIEW)[0], reward_key="1").status == (
        "forbidden"
    )
    assert run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, CORP_OWN)[0], reward_key="1").status == (
        "forbidden"
    )
    assert (
        run_op(uow_factory, bonus.redeem, demo_ids(uow_factory, CORP_ADMIN)[0], reward_key="1").status == "ok"
    )


def test_redeem_is_idempotent_per_key(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, NATALIA)
    first = run_op(uow_factory, bonus.redeem, sub_id, reward_key="1", key="call-9:redeem:1")
    again = run_op(uow_factory, bonus.redeem, sub_id, reward_key="1", key="call-9:redeem:1")
    assert first == again
    assert first.points_left == 24500
    assert assert_ledger_balances(uow_factory, account_id) == 24500
    third = run_op(uow_factory, bonus.redeem, sub_id, reward_key="1", key="call-9:redeem:2")
    assert third.points_left == 24000


def test_transfer(uow_factory: UowFactory) -> None:
    natalia, natalia_account = demo_ids(uow_factory, NATALIA)
    _, ivan_account = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, bonus.transfer, natalia, "+79161234567", "1000")
    assert (result.status, result.points_left, result.points) == ("ok", 24000, 1000)
    assert assert_ledger_balances(uow_factory, natalia_account) == 24000
    assert assert_ledger_balances(uow_factory, ivan_account) == 2250


def test_transfer_refusals(uow_factory: UowFactory) -> None:
    ivan, ivan_account = demo_ids(uow_factory, IVAN)
    for amount in (0, -5, "x", None, 100_001):
        assert run_op(uow_factory, bonus.transfer, ivan, NATALIA, amount).status == "invalid_amount"
    assert run_op(uow_factory, bonus.transfer, ivan, NATALIA, 1251).status == "insufficient_points"
    assert run_op(uow_factory, bonus.transfer, ivan, "79990000000", 10).status == "unknown_recipient"
    assert run_op(uow_factory, bonus.transfer, ivan, IVAN, 10).status == "unknown_recipient"  # self
    assert run_op(uow_factory, bonus.transfer, ivan, MARIA, 10).status == "unknown_recipient"  # not enrolled
    assert (
        run_op(uow_factory, bonus.transfer, ivan, ANNA, 10).status == "unknown_recipient"
    )  # other programme
    assert run_op(uow_factory, bonus.transfer, demo_ids(uow_factory, MARIA)[0], IVAN, 10).status == (
        "not_enrolled"
    )
    assert run_op(uow_factory, bonus.transfer, demo_ids(uow_factory, CORP_VIEW)[0], IVAN, 10).status == (
        "forbidden"
    )
    assert assert_ledger_balances(uow_factory, ivan_account) == 1250


def test_grant_rejects_non_positive(uow_factory: UowFactory) -> None:
    import pytest

    with pytest.raises(ValueError):
        run_op(uow_factory, bonus.grant_points, demo_ids(uow_factory, IVAN)[1], 0)


def test_expiry_job_writes_off_every_account(uow_factory: UowFactory, clock: TestClock) -> None:
    _, ivan_account = demo_ids(uow_factory, IVAN)
    _, anna_account = demo_ids(uow_factory, ANNA)
    clock.advance(days=21)  # Ivan's 350 (10 days) and Anna's 400 (20 days) expire
    assert run_op(uow_factory, bonus.expire_all) == 750
    assert run_op(uow_factory, bonus.expire_all) == 0
    assert assert_ledger_balances(uow_factory, ivan_account) == 900
    assert assert_ledger_balances(uow_factory, anna_account) == 3000
