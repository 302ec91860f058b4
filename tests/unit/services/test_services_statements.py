"""Detailed statements by phone: by e-mail when one is on file, a summary by SMS otherwise, the periods,
and a repeat order refused for a few minutes, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from dbfixtures import IVAN, MARIA, TestClock, demo_ids, run_op
from sqlalchemy import delete, select

from ivr.db.models import AuditRecord, Charge, EmailOutbox, SmsOutbox, StatementOrder
from ivr.db.session import UowFactory
from ivr.services import statements


def _charges(factory: UowFactory, msisdn: str, clock: TestClock, *ages: tuple[int, str]) -> int:
    """Replace the account's charges with `(days ago, amount)` ones; return the subscriber id."""
    sub_id, account_id = demo_ids(factory, msisdn)
    with factory(write=True) as uow:
        uow.session.execute(delete(Charge).where(Charge.account_id == account_id))
        for days, amount in ages:
            uow.session.add(
                Charge(
                    account_id=account_id,
                    subscriber_id=sub_id,
                    amount=Decimal(amount),
                    title=f"Звонки {days}",
                    created_at=clock() - dt.timedelta(days=days),
                )
            )
        uow.commit()
    return sub_id


def test_a_statement_goes_by_email_with_every_charge_of_the_period(
    uow_factory: UowFactory, clock: TestClock
) -> None:
    sub_id = _charges(uow_factory, IVAN, clock, (1, "10.00"), (5, "20.50"), (20, "7.00"), (45, "99.00"))
    week = run_op(uow_factory, statements.order_statement, sub_id, "week")
    assert (week.status, week.channel, week.expect_minutes, week.charges_count, week.total) == (
        "ok",
        "email",
        15,
        2,
        Decimal("30.50"),
    )
    with uow_factory() as uow:
        mail = uow.session.scalars(select(EmailOutbox)).one()
        assert mail.address == "ivan.petrov@example.com" and mail.kind == "statement"
        assert "Звонки 1" in mail.body and "Звонки 5" in mail.body and "Звонки 20" not in mail.body
        assert mail.body.rstrip().endswith("= 30.50")
        assert uow.session.scalars(select(SmsOutbox)).all() == []
        order = uow.session.scalars(select(StatementOrder)).one()
        assert (order.period, order.channel, order.period_to) == ("week", "email", clock().date())
        assert [a.action for a in uow.session.scalars(select(AuditRecord))][-1] == "statement.order"


def test_without_an_email_a_summary_goes_by_sms(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id = _charges(uow_factory, MARIA, clock, (3, "12.00"), (25, "8.00"), (40, "1.00"))
    month = run_op(uow_factory, statements.order_statement, sub_id, "month")
    assert (month.status, month.channel, month.charges_count, month.total) == (
        "ok",
        "sms",
        2,
        Decimal("20.00"),
    )
    with uow_factory() as uow:
        sms = uow.session.scalars(select(SmsOutbox)).one()
        assert sms.msisdn == MARIA and sms.kind == "statement" and "2 списаний на 20.00" in sms.text
        assert uow.session.scalars(select(EmailOutbox)).all() == []


def test_a_statement_ordered_twice_is_refused_for_a_while(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id = _charges(uow_factory, IVAN, clock)
    assert run_op(uow_factory, statements.order_statement, sub_id, "week").status == "ok"
    clock.advance(minutes=3)
    again = run_op(uow_factory, statements.order_statement, sub_id, "month")
    assert (again.status, again.wait_minutes) == ("too_soon", 7)
    clock.advance(minutes=7, seconds=1)
    assert run_op(uow_factory, statements.order_statement, sub_id, "month").status == "ok"
    with uow_factory() as uow:
        assert len(uow.session.scalars(select(EmailOutbox)).all()) == 2


def test_an_unknown_period_is_refused(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    assert run_op(uow_factory, statements.order_statement, sub_id, "year").status == "invalid_period"


@pytest.mark.parametrize(
    ("period", "today", "start", "end"),
    [
        ("week", dt.date(2026, 3, 10), dt.date(2026, 3, 4), dt.date(2026, 3, 10)),
        ("month", dt.date(2026, 3, 10), dt.date(2026, 2, 9), dt.date(2026, 3, 10)),
        ("last_month", dt.date(2026, 3, 10), dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
        ("last_month", dt.date(2026, 1, 1), dt.date(2025, 12, 1), dt.date(2025, 12, 31)),
    ],
)
def test_periods(period: str, today: dt.date, start: dt.date, end: dt.date) -> None:
    assert statements.period_dates(period, today) == (start, end)
