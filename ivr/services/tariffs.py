"""Tariff plan, options and paid content subscriptions of a number.

Plan change rules:
- offered plans ("alternatives") are the non-archived plans of the customer's kind (personal or
  corporate) other than the current one, cheapest first; their menu keys are "1".."9" in that order;
- `when="now"`: the new plan starts today; the fee is the new plan's monthly fee plus `SWITCH_FEE` when the
  plan was already changed in the last `SWITCH_FREE_AFTER`; the packages are reset to the new plan's;
  refused with `insufficient_funds` when `available` is below the fee;
- `when="next_period"`: nothing is charged now; the change is recorded as pending and applied on the next
  billing date (`apply_pending_plans`, a billing job); the fee then is the plan's monthly fee as usual;
- changes need `manage_own` or `manage_account` access (`forbidden` otherwise).
Options: switching on charges the option's monthly price at once; switching off is free.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from ivr.db.models import ContentSubscription, Option, Plan, Subscriber, SubscriberOption
from ivr.db.session import UnitOfWork
from ivr.services.balance import available, charge, money
from ivr.services.common import (
    MENU_KEYS,
    NO_ORIGIN,
    Origin,
    audit,
    load_subscriber,
    lock_subscriber_and_account,
    may_change_own,
    menu_index,
    once,
    pick_listed,
)

log = logging.getLogger(__name__)

SWITCH_FEE = Decimal("50.00")
SWITCH_FREE_AFTER = dt.timedelta(days=30)


@dataclass(frozen=True)
class CurrentPlan:
    status: str  # ok
    plan_code: str
    plan_name: str
    monthly_fee: Decimal
    next_billing_date: dt.date | None
    pending_plan_name: str | None = None
    pending_date: dt.date | None = None


@dataclass(frozen=True)
class PlanOffer:
    key: str
    code: str
    name: str
    monthly_fee: Decimal
    minutes: int
    sms: int
    data_mb: int
    fee_difference: Decimal  # new fee minus current fee (negative: cheaper)


@dataclass(frozen=True)
class PlanAlternatives:
    status: str  # ok | none
    plans: tuple[PlanOffer, ...] = ()


@dataclass(frozen=True)
class PlanChange:
    status: str  # ok | not_eligible | same_plan | insufficient_funds | unknown_plan | forbidden
    plan_name: str | None = None
    effective_date: dt.date | None = None
    fee: Decimal | None = None


@dataclass(frozen=True)
class OptionLine:
    key: str
    code: str
    name: str
    price: Decimal
    active: bool


@dataclass(frozen=True)
class OptionList:
    status: str  # ok | none
    options: tuple[OptionLine, ...] = ()


@dataclass(frozen=True)
class OptionChange:
    status: str  # ok | already | unknown_option | insufficient_funds | forbidden
    option_name: str | None = None
    price: Decimal | None = None


@dataclass(frozen=True)
class SubscriptionLine:
    key: str
    code: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class SubscriptionList:
    status: str  # ok | none
    subscriptions: tuple[SubscriptionLine, ...] = ()


@dataclass(frozen=True)
class SubscriptionCancel:
    status: str  # ok | unknown_subscription | forbidden
    subscription_name: str | None = None


def _next_billing(sub: Subscriber, today: dt.date) -> dt.date:
    nb = sub.account.next_billing_date
    if nb is not None and nb > today:
        return nb
    # First day of next month.
    return (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def current_plan(uow: UnitOfWork, subscriber_id: int) -> CurrentPlan:
    sub = load_subscriber(uow, subscriber_id)
    plan = sub.plan
    if plan is None:
        raise LookupError(f"subscriber {sub.id} has no plan")
    return CurrentPlan(
        status="ok",
        plan_code=plan.code,
        plan_name=plan.name,
        monthly_fee=money(plan.monthly_fee),
        next_billing_date=_next_billing(sub, uow.today()),
        pending_plan_name=sub.pending_plan.name if sub.pending_plan else None,
        pending_date=sub.pending_plan_date,
    )


def _eligible_plans(uow: UnitOfWork, sub: Subscriber) -> list[Plan]:
    kind = "corporate" if sub.account.corporate else "personal"
    plans = uow.session.scalars(
        select(Plan)
        .where(Plan.archived.is_(False), Plan.kind == kind, Plan.id != (sub.plan_id or 0))
        .order_by(Plan.monthly_fee, Plan.code)
    ).all()
    return list(plans[: len(MENU_KEYS)])


def alternatives(uow: UnitOfWork, subscriber_id: int) -> PlanAlternatives:
    sub = load_subscriber(uow, subscriber_id)
    current_fee = sub.plan.monthly_fee if sub.plan else Decimal(0)
    offers = tuple(
        PlanOffer(
            key=key,
            code=p.code,
            name=p.name,
            monthly_fee=money(p.monthly_fee),
            minutes=p.minutes,
            sms=p.sms,
            data_mb=p.data_mb,
            fee_difference=money(p.monthly_fee - current_fee),
        )
        for key, p in zip(MENU_KEYS, _eligible_plans(uow, sub), strict=False)
    )
    return PlanAlternatives(status="ok" if offers else "none", plans=offers)


def change_plan(
    uow: UnitOfWork,
    subscriber_id: int,
    *,
    plan_code: str | None = None,
    plan_key: str | None = None,
    when: str = "now",
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> PlanChange:
    if when not in ("now", "next_period"):
        raise ValueError(f"when must be now or next_period, not {when!r}")

    def run() -> PlanChange:
        sub, account = lock_subscriber_and_account(uow, subscriber_id)
        if not may_change_own(sub):
            return PlanChange(status="forbidden")
        plan: Plan | None = None
        if plan_key is not None:
            offered = _eligible_plans(uow, sub)
            index = menu_index(plan_key)
            if index < 0 or index >= len(offered):
                return PlanChange(status="unknown_plan")
            plan = offered[index]
        elif plan_code is not None:
            plan = uow.session.scalars(select(Plan).where(Plan.code == plan_code)).first()
        if plan is None:
            return PlanChange(status="unknown_plan")
        if plan.id == sub.plan_id:
            return PlanChange(status="same_plan", plan_name=plan.name)
        if plan.archived or plan.kind != ("corporate" if sub.account.corporate else "personal"):
            return PlanChange(status="not_eligible", plan_name=plan.name)
        today = uow.today()
        if when == "next_period":
            effective = _next_billing(sub, today)
            sub.pending_plan_id = plan.id
            sub.pending_plan_date = effective
            audit(
                uow,
                origin,
                "tariff.change",
                account_id=sub.account_id,
                subscriber_id=sub.id,
                plan=plan.code,
                effective=effective,
            )
            return PlanChange(status="ok", plan_name=plan.name, effective_date=effective, fee=money(0))
        recently = sub.plan_changed_at is not None and uow.now() - sub.plan_changed_at < SWITCH_FREE_AFTER
        fee = money(plan.monthly_fee + (SWITCH_FEE if recently else 0))
        if available(account) < fee:
            return PlanChange(status="insufficient_funds", plan_name=plan.name, fee=fee)
        charge(uow, account, fee, f"Переход на тариф «{plan.name}»", sub.id)
        _switch(sub, plan, uow.now())
        audit(
            uow,
            origin,
            "tariff.change",
            account_id=sub.account_id,
            subscriber_id=sub.id,
            plan=plan.code,
            effective=today,
            fee=fee,
        )
        return PlanChange(status="ok", plan_name=plan.name, effective_date=today, fee=fee)

    return once(uow, key, "tariff.change", PlanChange, run)


def _switch(sub: Subscriber, plan: Plan, now: dt.datetime) -> None:
    sub.plan_id = plan.id
    sub.plan = plan
    sub.pending_plan_id = None
    sub.pending_plan_date = None
    sub.plan_changed_at = now
    sub.minutes_left = plan.minutes
    sub.sms_left = plan.sms
    sub.data_mb_left = plan.data_mb


def apply_pending_plans(uow: UnitOfWork, *, origin: Origin = NO_ORIGIN) -> int:
    """Billing job: switch the numbers whose pending plan's date has come. Returns how many."""
    due = uow.session.scalars(
        select(Subscriber).where(
            Subscriber.pending_plan_id.is_not(None), Subscriber.pending_plan_date <= uow.today()
        )
    ).all()
    switched = 0
    for candidate in due:
        sub, account = lock_subscriber_and_account(uow, candidate.id)
        plan = sub.pending_plan
        if plan is None or sub.pending_plan_date is None or sub.pending_plan_date > uow.today():
            continue  # changed meanwhile
        switched += 1
        charge(uow, account, plan.monthly_fee, f"Абонентская плата «{plan.name}»", sub.id)
        _switch(sub, plan, uow.now())
        audit(
            uow, origin, "tariff.pending_applied", account_id=account.id, subscriber_id=sub.id, plan=plan.code
        )
    return switched


# --- options -----------------------------------------------------------------------------------------


def _options(uow: UnitOfWork, sub: Subscriber) -> list[tuple[Option, bool]]:
    options = uow.session.scalars(select(Option).order_by(Option.sort, Option.code)).all()
    active = set(
        uow.session.scalars(
            select(SubscriberOption.option_id).where(
                SubscriberOption.subscriber_id == sub.id, SubscriberOption.active.is_(True)
            )
        ).all()
    )
    return [(o, o.id in active) for o in options[: len(MENU_KEYS)]]


def list_options(uow: UnitOfWork, subscriber_id: int) -> OptionList:
    sub = load_subscriber(uow, subscriber_id)
    lines = tuple(
        OptionLine(key=key, code=o.code, name=o.name, price=money(o.price), active=on)
        for key, (o, on) in zip(MENU_KEYS, _options(uow, sub), strict=False)
    )
    return OptionList(status="ok" if lines else "none", options=lines)


def set_option(
    uow: UnitOfWork,
    subscriber_id: int,
    *,
    on: bool,
    option_code: str | None = None,
    option_key: str | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> OptionChange:
    def run() -> OptionChange:
        sub, account = lock_subscriber_and_account(uow, subscriber_id)
        if not may_change_own(sub):
            return OptionChange(status="forbidden")
        listed = _options(uow, sub)
        chosen = pick_listed(listed, option_key, option_code, lambda item: item[0].code)
        if chosen is None:
            return OptionChange(status="unknown_option")
        option, active = chosen
        price = money(option.price)
        if active == on:
            return OptionChange(status="already", option_name=option.name, price=price)
        link = uow.session.scalars(
            select(SubscriberOption).where(
                SubscriberOption.subscriber_id == sub.id, SubscriberOption.option_id == option.id
            )
        ).first()
        if on:
            if price > 0 and available(account) < price:
                return OptionChange(status="insufficient_funds", option_name=option.name, price=price)
            if price > 0:
                charge(uow, account, price, f"Опция «{option.name}»", sub.id)
        if link is None:
            link = SubscriberOption(subscriber_id=sub.id, option_id=option.id, changed_at=uow.now())
            uow.session.add(link)
        link.active = on
        link.changed_at = uow.now()
        audit(
            uow,
            origin,
            "options.set",
            account_id=sub.account_id,
            subscriber_id=sub.id,
            option=option.code,
            on=on,
        )
        return OptionChange(status="ok", option_name=option.name, price=price)

    return once(uow, key, "options.set", OptionChange, run)


# --- content subscriptions ---------------------------------------------------------------------------


def _subscriptions(uow: UnitOfWork, sub: Subscriber) -> list[ContentSubscription]:
    rows = uow.session.scalars(
        select(ContentSubscription)
        .where(ContentSubscription.subscriber_id == sub.id, ContentSubscription.cancelled_at.is_(None))
        .order_by(ContentSubscription.id)
    ).all()
    return list(rows[: len(MENU_KEYS)])


def list_subscriptions(uow: UnitOfWork, subscriber_id: int) -> SubscriptionList:
    sub = load_subscriber(uow, subscriber_id)
    lines = tuple(
        SubscriptionLine(key=key, code=s.code, name=s.name, price=money(s.price))
        for key, s in zip(MENU_KEYS, _subscriptions(uow, sub), strict=False)
    )
    return SubscriptionList(status="ok" if lines else "none", subscriptions=lines)


def cancel_subscription(
    uow: UnitOfWork,
    subscriber_id: int,
    *,
    subscription_code: str | None = None,
    subscription_key: str | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> SubscriptionCancel:
    def run() -> SubscriptionCancel:
        sub, _account = lock_subscriber_and_account(uow, subscriber_id)
        if not may_change_own(sub):
            return SubscriptionCancel(status="forbidden")
        listed = _subscriptions(uow, sub)
        chosen = pick_listed(listed, subscription_key, subscription_code, lambda s: s.code)
        if chosen is None:
            return SubscriptionCancel(status="unknown_subscription")
        chosen.cancelled_at = uow.now()
        audit(
            uow,
            origin,
            "subscriptions.cancel",
            account_id=sub.account_id,
            subscriber_id=sub.id,
            subscription=chosen.code,
        )
        return SubscriptionCancel(status="ok", subscription_name=chosen.name)

    return once(uow, key, "subscriptions.cancel", SubscriptionCancel, run)
