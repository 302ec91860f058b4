"""Detailed statements of charges, ordered by phone.

The caller picks a period: the last 7 days (`week`), the last 30 days (`month`) or the previous calendar
month (`last_month`). The statement (every charge: date, title, amount, and the total) goes to the e-mail
address on file through the e-mail outbox; without one, a summary (count and total) goes by SMS. The
result says which, and how soon to expect it. A second order within `REPEAT_MINUTES` is refused
(`too_soon`, with the minutes left), so a caller pressing again does not flood a mailbox.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from ivr.db.models import Charge, StatementOrder
from ivr.db.session import UnitOfWork
from ivr.services.balance import money
from ivr.services.common import (
    NO_ORIGIN,
    Origin,
    audit,
    lock_subscriber,
    once,
    queue_email,
    queue_sms,
)

log = logging.getLogger(__name__)

PERIODS = ("week", "month", "last_month")
REPEAT_MINUTES = 10
EXPECT_MINUTES = {"email": 15, "sms": 5}  # what the caller is told; the pump sends at once

SUBJECT = {"ru": "Детализация расходов с {start} по {end}", "en": "Statement of charges, {start} to {end}"}
SMS_SUMMARY = {
    "ru": "Расходы с {start} по {end}: {count} списаний на {total} руб. Подробно - в личном кабинете.",
    "en": "Charges from {start} to {end}: {count} for {total} RUB. Details in your online account.",
}


@dataclass(frozen=True)
class StatementOrderResult:
    status: str  # ok | too_soon | invalid_period
    channel: str | None = None  # email | sms
    expect_minutes: int | None = None
    charges_count: int | None = None
    total: Decimal | None = None
    wait_minutes: int | None = None


def period_dates(period: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a period ending today, or of the previous calendar month."""
    if period == "week":
        return today - dt.timedelta(days=6), today
    if period == "month":
        return today - dt.timedelta(days=29), today
    if period == "last_month":
        end = today.replace(day=1) - dt.timedelta(days=1)
        return end.replace(day=1), end
    raise ValueError(f"unknown period {period!r}")


def order_statement(
    uow: UnitOfWork,
    subscriber_id: int,
    period: str,
    *,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> StatementOrderResult:
    def run() -> StatementOrderResult:
        if period not in PERIODS:
            return StatementOrderResult(status="invalid_period")
        sub = lock_subscriber(uow, subscriber_id)  # two calls at once cannot both pass the repeat check
        now = uow.now()
        last = uow.session.scalars(
            select(StatementOrder.ordered_at)
            .where(StatementOrder.subscriber_id == sub.id)
            .order_by(StatementOrder.ordered_at.desc())
        ).first()
        if last is not None and now - last < dt.timedelta(minutes=REPEAT_MINUTES):
            left = dt.timedelta(minutes=REPEAT_MINUTES) - (now - last)
            return StatementOrderResult(
                status="too_soon", wait_minutes=max(1, -(-int(left.total_seconds()) // 60))
            )
        start, end = period_dates(period, now.date())
        charges = uow.session.scalars(
            select(Charge)
            .where(
                Charge.account_id == sub.account_id,
                Charge.created_at >= dt.datetime.combine(start, dt.time.min),
                Charge.created_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min),
            )
            .order_by(Charge.created_at, Charge.id)
        ).all()
        total = money(sum((c.amount for c in charges), Decimal(0)))
        lang = sub.language if sub.language in SUBJECT else "ru"
        dates = {"start": start.strftime("%d.%m.%Y"), "end": end.strftime("%d.%m.%Y")}
        channel = "email" if sub.email else "sms"
        if sub.email:
            lines = [f"{c.created_at:%d.%m.%Y}  {c.title}  {money(c.amount)}" for c in charges]
            body = "\n".join([SUBJECT[lang].format(**dates), "", *lines, "", f"= {total}"])
            queue_email(uow, sub.email, SUBJECT[lang].format(**dates), body, "statement")
        else:
            text = SMS_SUMMARY[lang].format(count=len(charges), total=total, **dates)
            queue_sms(uow, sub.msisdn, text, "statement")
        uow.session.add(
            StatementOrder(
                subscriber_id=sub.id,
                period=period,
                period_from=start,
                period_to=end,
                channel=channel,
                ordered_at=now,
            )
        )
        audit(
            uow,
            origin,
            "statement.order",
            account_id=sub.account_id,
            subscriber_id=sub.id,
            period=period,
            channel=channel,
        )
        return StatementOrderResult(
            status="ok",
            channel=channel,
            expect_minutes=EXPECT_MINUTES[channel],
            charges_count=len(charges),
            total=total,
        )

    return once(uow, key, "statement.order", StatementOrderResult, run)
