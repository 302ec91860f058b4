"""Extra packages of minutes, SMS and data: the catalogue, a purchase (charged at once, in the balance
report's remainders at once, until it expires) and every refusal, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dbfixtures import CORP_OWN, CORP_VIEW, IVAN, MARIA, TestClock, demo_ids, run_op
from sqlalchemy import select

from ivr.db.models import Account, AuditRecord, Charge, PackagePurchase
from ivr.db.session import UowFactory
from ivr.services import balance, packages


def _report(factory: UowFactory, msisdn: str) -> balance.BalanceReport:
    with factory() as uow:
        return balance.report(uow, demo_ids(factory, msisdn)[0])


def test_the_catalogue_is_listed_with_keys(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        listed = packages.list_packages(uow, demo_ids(uow_factory, IVAN)[0])
    assert listed.status == "ok"
    assert [(p.key, p.code, p.price, p.days) for p in listed.packages] == [
        ("1", "min100", Decimal("150.00"), 30),
        ("2", "sms100", Decimal("90.00"), 30),
        ("3", "gb1", Decimal("200.00"), 30),
        ("4", "gb5", Decimal("450.00"), 30),
    ]


def test_a_package_is_charged_and_counted_in_the_remainders_at_once(
    uow_factory: UowFactory, clock: TestClock
) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    before = _report(uow_factory, IVAN)
    bought = run_op(uow_factory, packages.buy_package, sub_id, package_key="1")
    assert (bought.status, bought.package_name, bought.price) == ("ok", "100 минут", Decimal("150.00"))
    assert bought.expires == (clock() + dt.timedelta(days=30)).date()
    after = _report(uow_factory, IVAN)
    assert after.balance == before.balance - Decimal("150.00")
    assert after.minutes_left == before.minutes_left + 100
    assert (after.sms_left, after.data_mb_left) == (before.sms_left, before.data_mb_left)
    assert after.charges[0].title == "Пакет «100 минут»" and after.charges[0].amount == Decimal("150.00")
    with uow_factory() as uow:
        assert [a.action for a in uow.session.scalars(select(AuditRecord))][-1] == "package.buy"
        account = uow.session.get(Account, account_id)
        assert account is not None and account.balance == after.balance


def test_an_expired_package_leaves_the_remainders(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    before = _report(uow_factory, IVAN)
    assert run_op(uow_factory, packages.buy_package, sub_id, package_code="gb1").status == "ok"
    assert _report(uow_factory, IVAN).data_mb_left == before.data_mb_left + 1024
    clock.advance(days=30, seconds=1)
    assert _report(uow_factory, IVAN).data_mb_left == before.data_mb_left


def test_short_funds_are_refused_and_nothing_is_charged(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)  # balance -123.45
    refused = run_op(uow_factory, packages.buy_package, sub_id, package_key="4")
    assert (refused.status, refused.price) == ("insufficient_funds", Decimal("450.00"))
    with uow_factory() as uow:
        assert uow.session.scalars(select(PackagePurchase)).all() == []
        assert not any("Пакет" in c.title for c in uow.session.scalars(select(Charge)))


def test_unknown_package_and_access_levels(uow_factory: UowFactory) -> None:
    assert run_op(
        uow_factory, packages.buy_package, demo_ids(uow_factory, IVAN)[0], package_key="9"
    ).status == ("unknown_package")
    view_only = demo_ids(uow_factory, CORP_VIEW)[0]
    assert run_op(uow_factory, packages.buy_package, view_only, package_key="1").status == "forbidden"
    own = demo_ids(uow_factory, CORP_OWN)[0]  # may change her own number: a package is hers
    assert run_op(uow_factory, packages.buy_package, own, package_key="2").status == "ok"


def test_a_purchase_is_idempotent_per_key(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    a = run_op(uow_factory, packages.buy_package, sub_id, package_key="2", key="call-7:buy:1")
    b = run_op(uow_factory, packages.buy_package, sub_id, package_key="2", key="call-7:buy:1")
    assert a == b and a.status == "ok"
    with uow_factory() as uow:
        assert len(uow.session.scalars(select(PackagePurchase)).all()) == 1
