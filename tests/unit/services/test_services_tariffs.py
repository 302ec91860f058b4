"""Tariff plan, options, paid subscriptions: every outcome and refusal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from dbfixtures import CORP_ADMIN, CORP_OWN, CORP_VIEW, IVAN, MARIA, TestClock, demo_ids, run_op
from sqlalchemy import select

from ivr.db.models import Account, Charge, Subscriber
from ivr.db.session import UowFactory
from ivr.services import tariffs


def _state(factory: UowFactory, msisdn: str) -> tuple[str | None, Decimal, int]:
    sub_id, account_id = demo_ids(factory, msisdn)
    with factory() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        account = uow.session.get(Account, account_id)
        assert sub is not None and account is not None
        return (sub.plan.code if sub.plan else None), account.balance, sub.minutes_left


def test_current_plan(uow_factory: UowFactory, clock: TestClock) -> None:
    with uow_factory() as uow:
        current = tariffs.current_plan(uow, demo_ids(uow_factory, IVAN)[0])
    assert (current.plan_code, current.plan_name, current.monthly_fee) == (
        "smart",
        "Смарт",
        Decimal("550.00"),
    )
    assert current.next_billing_date is not None and current.next_billing_date > clock.now.date()
    assert current.next_billing_date.day == 1


def test_alternatives_are_eligible_plans_cheapest_first(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        personal = tariffs.alternatives(uow, demo_ids(uow_factory, IVAN)[0])
        corporate = tariffs.alternatives(uow, demo_ids(uow_factory, CORP_ADMIN)[0])
    assert personal.status == "ok"
    assert [(p.key, p.code) for p in personal.plans] == [("1", "basic"), ("2", "max")]  # no archived, no own
    assert personal.plans[0].fee_difference == Decimal("-250.00")
    assert [p.code for p in corporate.plans] == ["biz_start"]


def test_change_now_charges_and_resets_packages(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, tariffs.change_plan, sub_id, plan_key="1", when="now")
    assert (result.status, result.plan_name, result.fee) == ("ok", "Базовый", Decimal("300.00"))
    assert result.effective_date == clock.now.date()
    assert _state(uow_factory, IVAN) == ("basic", Decimal("223.40"), 300)
    with uow_factory() as uow:
        titles = [c.title for c in uow.session.scalars(select(Charge).where(Charge.account_id == account_id))]
    assert "Переход на тариф «Базовый»" in titles
    # a second change within 30 days costs the switch fee on top
    again = run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="smart", when="now")
    assert again.status == "insufficient_funds"
    assert again.fee == Decimal("600.00")
    clock.advance(days=31)
    # still not enough money for Смарт (550) with 223.40
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="smart").status == "insufficient_funds"


def test_change_next_period_is_pending_and_free_now(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, tariffs.change_plan, sub_id, plan_key="2", when="next_period")
    assert (result.status, result.plan_name, result.fee) == ("ok", "Максимум", Decimal("0.00"))
    with uow_factory() as uow:
        current = tariffs.current_plan(uow, sub_id)
    assert result.effective_date == current.next_billing_date
    assert (current.plan_code, current.pending_plan_name, current.pending_date) == (
        "smart",
        "Максимум",
        result.effective_date,
    )
    assert _state(uow_factory, IVAN)[1] == Decimal("523.40")


def test_pending_plan_applies_on_the_billing_date(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="basic", when="next_period")
    assert run_op(uow_factory, tariffs.apply_pending_plans) == 0
    assert result.effective_date is not None
    clock.now = dt.datetime.combine(result.effective_date, dt.time(0, 5))
    assert run_op(uow_factory, tariffs.apply_pending_plans) == 1
    assert _state(uow_factory, IVAN) == ("basic", Decimal("223.40"), 300)


def test_change_refusals(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="smart").status == "same_plan"
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="classic").status == "not_eligible"
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="biz_pro").status == "not_eligible"
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="nope").status == "unknown_plan"
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_key="9").status == "unknown_plan"
    assert run_op(uow_factory, tariffs.change_plan, sub_id, plan_key="").status == "unknown_plan"
    maria, _ = demo_ids(uow_factory, MARIA)
    poor = run_op(uow_factory, tariffs.change_plan, maria, plan_code="max")
    assert (poor.status, poor.fee) == ("insufficient_funds", Decimal("990.00"))
    assert _state(uow_factory, IVAN)[1] == Decimal("523.40")
    with pytest.raises(ValueError):
        run_op(uow_factory, tariffs.change_plan, sub_id, plan_code="basic", when="tomorrow")


def test_access_levels_for_plan_change(uow_factory: UowFactory) -> None:
    view, _ = demo_ids(uow_factory, CORP_VIEW)
    own, _ = demo_ids(uow_factory, CORP_OWN)
    assert run_op(uow_factory, tariffs.change_plan, view, plan_code="biz_pro").status == "forbidden"
    assert run_op(uow_factory, tariffs.change_plan, own, plan_code="biz_pro").status == "ok"


def test_options(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    with uow_factory() as uow:
        listed = tariffs.list_options(uow, sub_id)
    assert [(o.key, o.code, o.active) for o in listed.options] == [
        ("1", "who_called", True),
        ("2", "messengers", False),
        ("3", "roaming_data", False),
        ("4", "caller_id", False),
    ]
    on = run_op(uow_factory, tariffs.set_option, sub_id, option_key="2", on=True)
    assert (on.status, on.option_name, on.price) == ("ok", "Безлимитные мессенджеры", Decimal("120.00"))
    assert _state(uow_factory, IVAN)[1] == Decimal("403.40")
    assert (
        run_op(uow_factory, tariffs.set_option, sub_id, option_code="messengers", on=True).status == "already"
    )
    assert run_op(uow_factory, tariffs.set_option, sub_id, option_key="1", on=False).status == "ok"
    assert run_op(uow_factory, tariffs.set_option, sub_id, option_key="1", on=False).status == "already"
    assert run_op(uow_factory, tariffs.set_option, sub_id, option_key="1", on=True).status == "ok"
    assert run_op(uow_factory, tariffs.set_option, sub_id, option_key="7", on=True).status == "unknown_option"
    assert _state(uow_factory, IVAN)[1] == Decimal("343.40")  # switching off was free
    with uow_factory() as uow:
        assert [o.active for o in tariffs.list_options(uow, sub_id).options] == [True, True, False, False]


def test_option_refusals(uow_factory: UowFactory) -> None:
    maria, _ = demo_ids(uow_factory, MARIA)
    poor = run_op(uow_factory, tariffs.set_option, maria, option_code="roaming_data", on=True)
    assert poor.status == "insufficient_funds"
    free = run_op(uow_factory, tariffs.set_option, maria, option_code="caller_id", on=True)
    assert free.status == "ok"  # a free option needs no money
    view, _ = demo_ids(uow_factory, CORP_VIEW)
    assert run_op(uow_factory, tariffs.set_option, view, option_key="1", on=True).status == "forbidden"


def test_subscriptions(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    with uow_factory() as uow:
        listed = tariffs.list_subscriptions(uow, sub_id)
    assert [(s.key, s.name, s.price) for s in listed.subscriptions] == [
        ("1", "Гороскоп", Decimal("15.00")),
        ("2", "Мелодия вместо гудка", Decimal("99.00")),
    ]
    cancelled = run_op(uow_factory, tariffs.cancel_subscription, sub_id, subscription_key="1")
    assert (cancelled.status, cancelled.subscription_name) == ("ok", "Гороскоп")
    with uow_factory() as uow:
        assert [s.name for s in tariffs.list_subscriptions(uow, sub_id).subscriptions] == [
            "Мелодия вместо гудка"
        ]
    assert run_op(uow_factory, tariffs.cancel_subscription, sub_id, subscription_key="2").status == (
        "unknown_subscription"
    )
    assert (
        run_op(uow_factory, tariffs.cancel_subscription, sub_id, subscription_code="ringback").status == "ok"
    )
    with uow_factory() as uow:
        assert tariffs.list_subscriptions(uow, sub_id).status == "none"


def test_subscription_cancel_forbidden_for_view_only(uow_factory: UowFactory) -> None:
    view, _ = demo_ids(uow_factory, CORP_VIEW)
    assert run_op(uow_factory, tariffs.cancel_subscription, view, subscription_key="1").status == "forbidden"
