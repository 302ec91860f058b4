"""Concurrency: 100 simultaneous redemptions and transfers (threads, each its own transaction) against one
account never overspend, and the ledger balances to the point — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from dbfixtures import IVAN, NATALIA, TATIANA, demo_ids
from multinode import all_at_once
from sqlalchemy import func, select

from ivr.app.actions import ActionContext, invoke
from ivr.db.models import Account, PackagePurchase, PointsEntry, Subscriber
from ivr.db.session import UowFactory
from ivr.services import bonus, packages

THREADS = 100


def _ledger(factory: UowFactory, account_id: int) -> tuple[int, int, int]:
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
        return account.points, int(deltas or 0), int(remaining or 0)


def _redeem(factory: UowFactory, subscriber_id: int, reward: str, key: str) -> str:
    with factory(write=True) as uow:
        result = bonus.redeem(uow, subscriber_id, reward_code=reward, key=key)
        uow.commit()
    return result.status


def test_simultaneous_redemptions_never_overspend(uow_factory: UowFactory) -> None:
    # Tatiana has 150 points; top up to exactly 30 coffees (300 points each) = 9000 points.
    sub_id, account_id = demo_ids(uow_factory, TATIANA)
    with uow_factory(write=True) as uow:
        bonus.grant_points(uow, account_id, 9000 - 150)
        uow.commit()
    statuses = all_at_once(THREADS, lambda i: _redeem(uow_factory, sub_id, "coffee", f"race:{i}"))
    counts = Counter(statuses)
    assert counts == {"ok": 30, "insufficient_points": THREADS - 30}
    assert _ledger(uow_factory, account_id) == (0, 0, 0)


def test_simultaneous_transfers_both_ways_keep_the_total(uow_factory: UowFactory) -> None:
    natalia_sub, natalia_account = demo_ids(uow_factory, NATALIA)
    ivan_sub, ivan_account = demo_ids(uow_factory, IVAN)
    before = _ledger(uow_factory, natalia_account)[0] + _ledger(uow_factory, ivan_account)[0]

    def work(i: int) -> str:
        # Even threads give Natalia's points to Ivan, odd threads the other way round: opposite lock
        # orders if the service did not sort them.
        source, target = (natalia_sub, IVAN) if i % 2 == 0 else (ivan_sub, NATALIA)
        amount = 400 if i % 2 == 0 else 30
        with uow_factory(write=True) as uow:
            result = bonus.transfer(uow, source, target, amount, key=f"t:{i}")
            uow.commit()
        return result.status

    statuses = all_at_once(THREADS, work)
    assert set(statuses) <= {"ok", "insufficient_points"}
    assert statuses.count("ok") >= THREADS // 2  # Natalia's 25 000 cover all her 50 transfers
    natalia = _ledger(uow_factory, natalia_account)
    ivan = _ledger(uow_factory, ivan_account)
    assert natalia[0] == natalia[1] == natalia[2] >= 0
    assert ivan[0] == ivan[1] == ivan[2] >= 0
    assert natalia[0] + ivan[0] == before


def test_one_idempotency_key_from_many_threads_applies_once(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, NATALIA)
    ctx = ActionContext("call-r", "operator", "ru", {"subscriber_id": sub_id}, uow_factory, "call-r:redeem:1")
    results = all_at_once(20, lambda i: repr(invoke("bonus.redeem", {"reward_key": "1"}, ctx)))
    assert len(set(results)) == 1, set(results)
    assert "status='ok'" in results[0]
    assert _ledger(uow_factory, account_id)[0] == 24500
    with uow_factory() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        assert sub is not None
        minutes = sub.minutes_left
    assert minutes == 300 + 100  # one package of 100 minutes added, not twenty


def test_simultaneous_minute_redemptions_add_every_package(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, NATALIA)
    count = 40
    statuses = all_at_once(count, lambda i: _redeem(uow_factory, sub_id, "min100", f"min:{i}"))
    assert statuses == ["ok"] * count
    with uow_factory() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        assert sub is not None
        minutes = sub.minutes_left
    assert minutes == 300 + 100 * count  # no lost update of the package counter
    assert _ledger(uow_factory, account_id)[0] == 25000 - 500 * count


def test_simultaneous_plan_changes_charge_once_per_change(uow_factory: UowFactory) -> None:
    from ivr.services import tariffs

    sub_id, account_id = demo_ids(uow_factory, NATALIA)

    def work(i: int) -> str:
        with uow_factory(write=True) as uow:
            result = tariffs.change_plan(uow, sub_id, plan_code="basic", when="now", key=f"plan:{i}")
            uow.commit()
        return result.status

    statuses = all_at_once(10, work)
    assert sorted(statuses) == ["ok"] + ["same_plan"] * 9
    with uow_factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        assert str(account.balance) == "590.00"  # 890 - 300, charged once


def test_package_purchases_racing_redemptions_on_one_account(uow_factory: UowFactory) -> None:
    """Money and points of one account change at once from many calls: packages bought with the balance
    while rewards are redeemed with the points. Neither is overspent, the money adds up, and the points
    ledger balances."""
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    with uow_factory(write=True) as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        account.balance = Decimal("900.00")  # exactly ten 90-rouble SMS packages
        account.credit_limit = Decimal("0.00")
        bonus.grant_points(uow, account_id, 2000 - _ledger(uow_factory, account_id)[0])  # ten 50-SMS rewards
        uow.commit()

    def work(i: int) -> str:
        if i % 2 == 0:
            with uow_factory(write=True) as uow:
                bought = packages.buy_package(uow, sub_id, package_code="sms100", key=f"pkg:{i}")
                uow.commit()
            return f"package:{bought.status}"
        return f"redeem:{_redeem(uow_factory, sub_id, 'sms50', f'sms50:{i}')}"

    counts = Counter(all_at_once(40, work))
    assert counts == {
        "package:ok": 10,
        "package:insufficient_funds": 10,
        "redeem:ok": 10,
        "redeem:insufficient_points": 10,
    }
    with uow_factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None and account.balance == Decimal("0.00")
        bought = uow.session.scalar(
            select(func.count(PackagePurchase.id)).where(PackagePurchase.subscriber_id == sub_id)
        )
        assert bought == 10
    assert _ledger(uow_factory, account_id) == (0, 0, 0)
