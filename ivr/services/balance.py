"""Balance report, payments and charges, promised payment and trust credit.

Money is Decimal with two places. `available = balance + credit_limit`: what the subscriber can still
spend. Every change of `Account.balance` happens under the account row lock and bumps `Account.version`.

Promised payment (a small sum credited for a few days when the money has run out):
- only when `balance < PROMISE_BELOW` and the debt is at most `PROMISE_MAX_DEBT`;
- the account is at least `PROMISE_MIN_AGE` old, and has no overdue (unsettled, past its date) one;
- one at a time: an unsettled one still running gives `already_active`;
- amount: the debt plus 50, rounded up to a multiple of 50, at least 100; for `PROMISE_DAYS` days.
A real payment settles it; `settle_overdue_promises` takes back the ones past their date.

Trust credit (the credit limit switched on): the account is at least 90 days old and paid at least
`TRUST_MIN_PAID` in the last 90 days; the limit is a third of that, rounded down to 50, capped at 1000.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sqlalchemy import bindparam, func, select

from ivr.db.models import Account, Charge, PackagePurchase, Payment, PromisedPayment, Subscriber
from ivr.db.session import UnitOfWork
from ivr.services.bonus import live_points
from ivr.services.common import (
    NO_ORIGIN,
    NotFound,
    Origin,
    audit,
    load_subscriber,
    lock_account,
    may_change_account,
    once,
)

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
PROMISE_BELOW = Decimal("50.00")
PROMISE_MAX_DEBT = Decimal("300.00")
PROMISE_MIN_AMOUNT = Decimal("100.00")
PROMISE_DAYS = 3
PROMISE_MIN_AGE = dt.timedelta(days=60)
TRUST_MIN_AGE = dt.timedelta(days=90)
TRUST_MIN_PAID = Decimal("300.00")
TRUST_MAX_LIMIT = Decimal("1000.00")


@dataclass(frozen=True)
class ChargeLine:
    amount: Decimal
    date: dt.date
    title: str


@dataclass(frozen=True)
class PaymentLine:
    amount: Decimal
    date: dt.date


@dataclass(frozen=True)
class BalanceReport:
    status: str  # ok
    balance: Decimal
    credit_limit: Decimal
    available: Decimal
    minutes_left: int
    sms_left: int
    data_mb_left: int
    bonus_points: int
    charges: tuple[ChargeLine, ...]
    payments: tuple[PaymentLine, ...]
    promised_amount: Decimal | None = None
    promised_until: dt.date | None = None


@dataclass(frozen=True)
class PromiseResult:
    status: str  # ok | not_eligible | already_active | forbidden
    amount: Decimal | None = None
    until: dt.date | None = None


@dataclass(frozen=True)
class TrustResult:
    status: str  # ok | not_eligible | already_active | forbidden
    credit_limit: Decimal | None = None


@dataclass(frozen=True)
class PaymentResult:
    status: str  # ok
    balance: Decimal


def money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(CENT)


def charge(
    uow: UnitOfWork, account: Account, amount: Decimal, title: str, subscriber_id: int | None = None
) -> None:
    """Take `amount` from a locked account and record the charge."""
    amount = money(amount)
    account.balance = money(account.balance - amount)
    account.version += 1
    uow.session.add(
        Charge(
            account_id=account.id,
            subscriber_id=subscriber_id,
            amount=amount,
            title=title,
            created_at=uow.now(),
        )
    )


def available(account: Account) -> Decimal:
    return money(account.balance + account.credit_limit)


def active_promise(uow: UnitOfWork, account_id: int) -> PromisedPayment | None:
    return uow.session.scalars(
        select(PromisedPayment)
        .where(PromisedPayment.account_id == account_id, PromisedPayment.settled_at.is_(None))
        .order_by(PromisedPayment.id.desc())
    ).first()


# The balance report is the line's most frequent action: its reads are column SELECTs built once here and
# run past the ORM (UnitOfWork.rows), about a quarter of the CPU of building them and loading ORM objects
# on every call (docs/benchmarks.md, Capacity).
_PACKAGES_LEFT = (
    select(PackagePurchase.kind, func.sum(PackagePurchase.remaining))
    .where(PackagePurchase.subscriber_id == bindparam("sub"), PackagePurchase.expires_at > bindparam("now"))
    .group_by(PackagePurchase.kind)
)
_REPORT_HEAD = (
    select(
        Subscriber.id,
        Subscriber.minutes_left,
        Subscriber.sms_left,
        Subscriber.data_mb_left,
        Account.id,
        Account.balance,
        Account.credit_limit,
        Account.bonus_enrolled_at,
    )
    .join(Account, Subscriber.account_id == Account.id)
    .where(Subscriber.id == bindparam("sub"))
)
_LAST_CHARGES = (
    select(Charge.amount, Charge.created_at, Charge.title)
    .where(Charge.account_id == bindparam("account"))
    .order_by(Charge.created_at.desc(), Charge.id.desc())
    .limit(5)
)
_LAST_PAYMENTS = (
    select(Payment.amount, Payment.created_at)
    .where(Payment.account_id == bindparam("account"))
    .order_by(Payment.created_at.desc(), Payment.id.desc())
    .limit(3)
)
_OPEN_PROMISE = (
    select(PromisedPayment.amount, PromisedPayment.until)
    .where(PromisedPayment.account_id == bindparam("account"), PromisedPayment.settled_at.is_(None))
    .order_by(PromisedPayment.id.desc())
    .limit(1)
)


def _remainders(uow: UnitOfWork, subscriber_id: int, plan_left: Mapping[str, int]) -> dict[str, int]:
    left = dict(plan_left)
    for kind, extra in uow.rows(_PACKAGES_LEFT, sub=subscriber_id, now=uow.now()):
        left[kind] = left.get(kind, 0) + int(extra or 0)
    return left


def remainders(uow: UnitOfWork, sub: Subscriber) -> dict[str, int]:
    """What the subscriber has left per kind (minutes, sms, data_mb): the plan's remainders plus those of
    the packages bought and not yet expired (ivr.services.packages)."""
    plan_left = {"minutes": sub.minutes_left, "sms": sub.sms_left, "data_mb": sub.data_mb_left}
    return _remainders(uow, sub.id, plan_left)


def report(uow: UnitOfWork, subscriber_id: int) -> BalanceReport:
    head = uow.rows(_REPORT_HEAD, sub=int(subscriber_id))
    if not head:
        raise NotFound(f"subscriber {subscriber_id} not found")
    sub_id, minutes, sms, data_mb, account_id, balance_now, credit_limit, enrolled_at = head[0]
    charges = uow.rows(_LAST_CHARGES, account=account_id)
    payments = uow.rows(_LAST_PAYMENTS, account=account_id)
    promise = uow.rows(_OPEN_PROMISE, account=account_id)
    left = _remainders(uow, sub_id, {"minutes": minutes, "sms": sms, "data_mb": data_mb})
    return BalanceReport(
        status="ok",
        balance=money(balance_now),
        credit_limit=money(credit_limit),
        available=money(balance_now + credit_limit),
        minutes_left=left["minutes"],
        sms_left=left["sms"],
        data_mb_left=left["data_mb"],
        bonus_points=live_points(uow, account_id) if enrolled_at else 0,
        charges=tuple(ChargeLine(money(amount), at.date(), title) for amount, at, title in charges),
        payments=tuple(PaymentLine(money(amount), at.date()) for amount, at in payments),
        promised_amount=money(promise[0][0]) if promise else None,
        promised_until=promise[0][1] if promise else None,
    )


def _promise_amount(balance: Decimal) -> Decimal:
    need = (-balance + Decimal(50)) / Decimal(50)
    amount = need.to_integral_value(rounding=ROUND_CEILING) * Decimal(50)
    return money(max(PROMISE_MIN_AMOUNT, amount))


def promise_payment(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> PromiseResult:
    def run() -> PromiseResult:
        sub = load_subscriber(uow, subscriber_id)
        if not may_change_account(sub):
            return PromiseResult(status="forbidden")
        account = lock_account(uow, sub.account_id)
        today = uow.today()
        promise = active_promise(uow, account.id)
        if promise is not None:
            if promise.until >= today:
                return PromiseResult(
                    status="already_active", amount=money(promise.amount), until=promise.until
                )
            return PromiseResult(status="not_eligible")  # overdue and not paid back
        if (
            account.kind != "mobile"
            or account.balance >= PROMISE_BELOW
            or -account.balance > PROMISE_MAX_DEBT
            or uow.now() - account.created_at < PROMISE_MIN_AGE
        ):
            return PromiseResult(status="not_eligible")
        amount = _promise_amount(account.balance)
        until = today + dt.timedelta(days=PROMISE_DAYS)
        uow.session.add(
            PromisedPayment(account_id=account.id, amount=amount, created_at=uow.now(), until=until)
        )
        uow.session.add(Payment(account_id=account.id, amount=amount, kind="promised", created_at=uow.now()))
        account.balance = money(account.balance + amount)
        account.version += 1
        audit(
            uow,
            origin,
            "payment.promise",
            account_id=account.id,
            subscriber_id=sub.id,
            amount=amount,
            until=until,
        )
        return PromiseResult(status="ok", amount=amount, until=until)

    return once(uow, key, "payment.promise", PromiseResult, run)


def record_payment(
    uow: UnitOfWork, account_id: int, amount: Decimal, *, kind: str = "cash", origin: Origin = NO_ORIGIN
) -> PaymentResult:
    """A real payment arrives (billing feed, staff, tests). It settles a running promised payment."""
    account = lock_account(uow, account_id)
    amount = money(amount)
    uow.session.add(Payment(account_id=account.id, amount=amount, kind=kind, created_at=uow.now()))
    account.balance = money(account.balance + amount)
    account.version += 1
    promise = active_promise(uow, account.id)
    if promise is not None:
        promise.settled_at = uow.now()
    audit(uow, origin, "payment.record", account_id=account.id, amount=amount, kind=kind)
    return PaymentResult(status="ok", balance=account.balance)


def settle_overdue_promises(uow: UnitOfWork, *, origin: Origin = NO_ORIGIN) -> int:
    """Take back promised payments past their date (a billing job). Returns how many."""
    overdue = uow.session.scalars(
        select(PromisedPayment).where(
            PromisedPayment.settled_at.is_(None), PromisedPayment.until < uow.today()
        )
    ).all()
    settled = 0
    for promise in overdue:
        account = lock_account(uow, promise.account_id)
        uow.session.refresh(promise)  # a payment may have settled it meanwhile
        if promise.settled_at is not None:
            continue
        charge(uow, account, promise.amount, "Возврат обещанного платежа")
        promise.settled_at = uow.now()
        settled += 1
        audit(uow, origin, "payment.promise_settled", account_id=account.id, amount=promise.amount)
    return settled


def enable_trust_credit(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> TrustResult:
    def run() -> TrustResult:
        sub = load_subscriber(uow, subscriber_id)
        if not may_change_account(sub):
            return TrustResult(status="forbidden")
        account = lock_account(uow, sub.account_id)
        if account.trust_credit:
            return TrustResult(status="already_active", credit_limit=money(account.credit_limit))
        now = uow.now()
        paid = uow.session.scalar(
            select(func.coalesce(func.sum(Payment.amount), 0)).where(
                Payment.account_id == account.id,
                Payment.kind != "promised",
                Payment.created_at >= now - dt.timedelta(days=90),
            )
        )
        paid = money(Decimal(paid or 0))
        if account.kind != "mobile" or now - account.created_at < TRUST_MIN_AGE or paid < TRUST_MIN_PAID:
            return TrustResult(status="not_eligible")
        limit = (paid / 3 / Decimal(50)).to_integral_value(rounding=ROUND_FLOOR) * Decimal(50)
        limit = money(min(TRUST_MAX_LIMIT, limit))
        account.trust_credit = True
        account.credit_limit = money(account.credit_limit + limit)
        account.version += 1
        audit(uow, origin, "credit.trust_enable", account_id=account.id, subscriber_id=sub.id, limit=limit)
        return TrustResult(status="ok", credit_limit=account.credit_limit)

    return once(uow, key, "credit.trust_enable", TrustResult, run)
