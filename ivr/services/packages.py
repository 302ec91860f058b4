"""Extra packages of minutes, SMS and data, bought by phone on top of the plan.

A package has a price and a validity. Buying one charges the balance at once under the account's lock,
with the same available-funds rule as options and plans (`available = balance + credit_limit` must cover
the price), and is refused with `insufficient_funds` otherwise. What a bought package adds shows in the
balance report's remainders at once (`ivr.services.balance.remainders`), until it expires.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from ivr.db.models import Package, PackagePurchase
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
    once,
    pick_listed,
)

log = logging.getLogger(__name__)

KINDS = ("minutes", "sms", "data_mb")


@dataclass(frozen=True)
class PackageOffer:
    key: str
    code: str
    name: str
    kind: str  # minutes | sms | data_mb
    quantity: int
    price: Decimal
    days: int


@dataclass(frozen=True)
class PackageList:
    status: str  # ok | none
    packages: tuple[PackageOffer, ...] = ()


@dataclass(frozen=True)
class PackagePurchaseResult:
    status: str  # ok | insufficient_funds | unknown_package | forbidden
    package_name: str | None = None
    price: Decimal | None = None
    expires: dt.date | None = None


def charge_title(name: str) -> str:
    """The title of a package's charge, as the balance report says it."""
    return f"Пакет «{name}»"


def _catalogue(uow: UnitOfWork) -> list[Package]:
    rows = uow.session.scalars(
        select(Package).where(Package.active.is_(True)).order_by(Package.sort, Package.code)
    ).all()
    return list(rows[: len(MENU_KEYS)])


def list_packages(uow: UnitOfWork, subscriber_id: int) -> PackageList:
    load_subscriber(uow, subscriber_id)
    offers = tuple(
        PackageOffer(
            key=key,
            code=p.code,
            name=p.name,
            kind=p.kind,
            quantity=p.quantity,
            price=money(p.price),
            days=p.validity_days,
        )
        for key, p in zip(MENU_KEYS, _catalogue(uow), strict=False)
    )
    return PackageList(status="ok" if offers else "none", packages=offers)


def buy_package(
    uow: UnitOfWork,
    subscriber_id: int,
    *,
    package_key: str | None = None,
    package_code: str | None = None,
    origin: Origin = NO_ORIGIN,
    key: str | None = None,
) -> PackagePurchaseResult:
    def run() -> PackagePurchaseResult:
        sub, account = lock_subscriber_and_account(uow, subscriber_id)
        if not may_change_own(sub):
            return PackagePurchaseResult(status="forbidden")
        listed = _catalogue(uow)
        package = pick_listed(listed, package_key, package_code, lambda p: p.code)
        if package is None:
            return PackagePurchaseResult(status="unknown_package")
        price = money(package.price)
        if available(account) < price:
            return PackagePurchaseResult(status="insufficient_funds", package_name=package.name, price=price)
        now = uow.now()
        expires_at = now + dt.timedelta(days=package.validity_days)
        charge(uow, account, price, charge_title(package.name), sub.id)
        uow.session.add(
            PackagePurchase(
                subscriber_id=sub.id,
                package_id=package.id,
                kind=package.kind,
                remaining=package.quantity,
                price=price,
                bought_at=now,
                expires_at=expires_at,
            )
        )
        audit(
            uow,
            origin,
            "package.buy",
            account_id=sub.account_id,
            subscriber_id=sub.id,
            package=package.code,
            price=str(price),
        )
        return PackagePurchaseResult(
            status="ok", package_name=package.name, price=price, expires=expires_at.date()
        )

    return once(uow, key, "package.buy", PackagePurchaseResult, run)
