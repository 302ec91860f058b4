"""Balance report, promised payment and trust credit: every outcome and refusal, exact money."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dbfixtures import (
    CORP_ADMIN,
    CORP_OWN,
    CORP_VIEW,
    ELENA,
    IVAN,
    MARIA,
    OLEG,
    PAVEL,
    TestClock,
    demo_ids,
    run_op,
)
from sqlalchemy import func, select

from ivr.db.models import Account, AuditRecord, Payment, PromisedPayment
from ivr.db.session import UowFactory
from ivr.services import balance
from ivr.services.common import Origin


def _account(factory: UowFactory, msisdn: str) -> tuple[Decimal, Decimal]:
    _, account_id = demo_ids(factory, msisdn)
    with factory() as uow:
        account = uow.session.get(Account, account_id)
        assert account is not None
        return account.balance, account.credit_limit


def test_report(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    with uow_factory() as uow:
        report = balance.report(uow, sub_id)
    assert report.status == "ok"
    assert report.balance == Decimal("523.40") and isinstance(report.balance, Decimal)
    assert report.available == Decimal("523.40")
    assert report.credit_limit == Decimal("0.00")
    assert report.bonus_points == 1250
    assert (report.minutes_left, report.sms_left, report.data_mb_left) == (300, 150, 6666)
    assert len(report.charges) == 5  # the last five of six
    assert [c.amount for c in report.charges[:2]] == [Decimal("12.50"), Decimal("35.00")]
    dates = [c.date for c in report.charges]
    assert dates == sorted(dates, reverse=True)
    assert all(isinstance(c.date, dt.date) for c in report.charges)
    assert [p.amount for p in report.payments] == [Decimal("500.00"), Decimal("600.00"), Decimal("600.00")]


def test_report_with_trust_credit(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, OLEG)
    with uow_factory() as uow:
        report = balance.report(uow, sub_id)
    assert (report.balance, report.credit_limit, report.available) == (
        Decimal("-50.00"),
        Decimal("300.00"),
        Decimal("250.00"),
    )


def test_promised_payment(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, account_id = demo_ids(uow_factory, MARIA)
    result = run_op(uow_factory, balance.promise_payment, sub_id, origin=Origin("call-1", "operator"))
    # debt 123.45 + 50, rounded up to a multiple of 50
    assert result.status == "ok"
    assert result.amount == Decimal("200.00")
    assert result.until == clock.now.date() + dt.timedelta(days=balance.PROMISE_DAYS)
    assert _account(uow_factory, MARIA)[0] == Decimal("76.55")
    again = run_op(uow_factory, balance.promise_payment, sub_id)
    assert again.status == "already_active"
    assert again.until == result.until
    with uow_factory() as uow:
        audit = uow.session.scalars(select(AuditRecord).where(AuditRecord.action == "payment.promise")).one()
        assert (audit.call_id, audit.line, audit.account_id) == ("call-1", "operator", account_id)


def test_overdue_promise_is_taken_back_and_blocks_a_new_one_until_then(
    uow_factory: UowFactory, clock: TestClock
) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)
    assert run_op(uow_factory, balance.promise_payment, sub_id).status == "ok"
    clock.advance(days=4)
    assert run_op(uow_factory, balance.promise_payment, sub_id).status == "not_eligible"  # overdue
    assert run_op(uow_factory, balance.settle_overdue_promises) == 1
    assert _account(uow_factory, MARIA)[0] == Decimal("-123.45")
    assert run_op(uow_factory, balance.promise_payment, sub_id).status == "ok"


def test_a_payment_settles_the_promise(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, MARIA)
    run_op(uow_factory, balance.promise_payment, sub_id)
    paid = run_op(uow_factory, balance.record_payment, account_id, Decimal("300"))
    assert paid.balance == Decimal("376.55")
    with uow_factory() as uow:
        assert balance.active_promise(uow, account_id) is None


def test_promise_refusals(uow_factory: UowFactory) -> None:
    assert (
        run_op(uow_factory, balance.promise_payment, demo_ids(uow_factory, IVAN)[0]).status == "not_eligible"
    )
    # a young account (20 days), even in debt
    pavel_sub, pavel_account = demo_ids(uow_factory, PAVEL)
    with uow_factory(write=True) as uow:
        account = uow.session.get(Account, pavel_account)
        assert account is not None
        balance.charge(uow, account, Decimal("150"), "test")
        uow.commit()
    assert run_op(uow_factory, balance.promise_payment, pavel_sub).status == "not_eligible"
    # debt above the maximum
    maria_sub, maria_account = demo_ids(uow_factory, MARIA)
    with uow_factory(write=True) as uow:
        account = uow.session.get(Account, maria_account)
        assert account is not None
        balance.charge(uow, account, Decimal("200"), "test")
        uow.commit()
    assert run_op(uow_factory, balance.promise_payment, maria_sub).status == "not_eligible"


def test_promise_forbidden_below_manage_account(uow_factory: UowFactory) -> None:
    for number in (CORP_VIEW, CORP_OWN):
        result = run_op(uow_factory, balance.promise_payment, demo_ids(uow_factory, number)[0])
        assert result.status == "forbidden"
    assert run_op(uow_factory, balance.promise_payment, demo_ids(uow_factory, CORP_ADMIN)[0]).status == (
        "not_eligible"
    )  # positive balance


def test_promise_is_idempotent_per_key(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, MARIA)
    first = run_op(uow_factory, balance.promise_payment, sub_id, key="call-7:promise:1")
    second = run_op(uow_factory, balance.promise_payment, sub_id, key="call-7:promise:1")
    assert first == second
    assert first.status == "ok"
    with uow_factory() as uow:
        count = uow.session.scalar(
            select(func.count(PromisedPayment.id)).where(PromisedPayment.account_id == account_id)
        )
        payments = uow.session.scalar(
            select(func.count(Payment.id)).where(Payment.account_id == account_id, Payment.kind == "promised")
        )
    assert (count, payments) == (1, 1)
    assert _account(uow_factory, MARIA)[0] == Decimal("76.55")


def test_failed_operation_leaves_nothing(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)
    with uow_factory(write=True) as uow:
        assert balance.promise_payment(uow, sub_id, key="k-rollback").status == "ok"
        # the caller hangs up before the commit: the with block ends without commit
    assert _account(uow_factory, MARIA)[0] == Decimal("-123.45")
    assert run_op(uow_factory, balance.promise_payment, sub_id, key="k-rollback").status == "ok"


def test_trust_credit(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, ELENA)
    result = run_op(uow_factory, balance.enable_trust_credit, sub_id)
    # paid 3000 in 90 days: a third is 1000, the cap
    assert result.status == "ok"
    assert result.credit_limit == Decimal("1000.00")
    assert _account(uow_factory, ELENA) == (Decimal("1500.00"), Decimal("1000.00"))
    assert run_op(uow_factory, balance.enable_trust_credit, sub_id).status == "already_active"


def test_trust_credit_limit_is_a_third_of_recent_payments(uow_factory: UowFactory) -> None:
    result = run_op(uow_factory, balance.enable_trust_credit, demo_ids(uow_factory, MARIA)[0])
    assert (result.status, result.credit_limit) == ("ok", Decimal("100.00"))  # paid 300 in 90 days


def test_trust_credit_refusals(uow_factory: UowFactory, clock: TestClock) -> None:
    assert run_op(uow_factory, balance.enable_trust_credit, demo_ids(uow_factory, OLEG)[0]).status == (
        "already_active"
    )
    assert run_op(uow_factory, balance.enable_trust_credit, demo_ids(uow_factory, PAVEL)[0]).status == (
        "not_eligible"
    )  # 20 days old
    assert run_op(uow_factory, balance.enable_trust_credit, demo_ids(uow_factory, CORP_VIEW)[0]).status == (
        "forbidden"
    )
    clock.advance(days=100)  # no payment in the last 90 days any more
    assert run_op(uow_factory, balance.enable_trust_credit, demo_ids(uow_factory, IVAN)[0]).status == (
        "not_eligible"
    )
