"""Who is calling: identify a subscriber by number, verify the IVR PIN, lock after repeated failures.

PIN rules: 4 to 8 digits, stored as an argon2id hash. Five consecutive wrong PINs lock IVR authentication
for the subscriber for `PIN_LOCK` (across calls: the counter and the lock live in the database); a right
PIN resets the counter; a lock that has run out is lifted at the next attempt. Attempts on a locked
subscriber do not count and do not reveal whether the PIN was right.

Kept in its own module so later work (throttling per caller ID, one-time codes) grows here.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from sqlalchemy import select

from ivr.db.models import Subscriber
from ivr.db.session import UnitOfWork
from ivr.services.common import (
    NO_ORIGIN,
    Origin,
    audit,
    hash_secret,
    lock_subscriber,
    normalize_msisdn,
    verify_secret,
)

log = logging.getLogger(__name__)

MAX_PIN_FAILURES = 5
PIN_LOCK = dt.timedelta(hours=1)
_PIN_RE = re.compile(r"^\d{4,8}$")


@dataclass(frozen=True)
class Identification:
    status: str  # found | unknown | closed
    subscriber_id: int | None = None
    account_id: int | None = None
    access_level: str | None = None
    msisdn: str | None = None
    pin_set: bool = False
    roaming: bool = False
    language: str | None = None
    account_kind: str | None = None


@dataclass(frozen=True)
class PinCheck:
    status: str  # ok | wrong | locked | unknown | no_pin
    subscriber_id: int | None = None
    account_id: int | None = None
    access_level: str | None = None
    attempts_left: int = 0
    locked_until: dt.datetime | None = None


def find_subscriber(uow: UnitOfWork, number: str | None) -> Subscriber | None:
    msisdn = normalize_msisdn(number)
    if msisdn is None:
        return None
    return uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == msisdn)).first()


def identify(uow: UnitOfWork, number: str | None) -> Identification:
    sub = find_subscriber(uow, number)
    if sub is None:
        return Identification(status="unknown")
    status = "closed" if sub.status == "closed" or sub.account.status == "closed" else "found"
    return Identification(
        status=status,
        subscriber_id=sub.id,
        account_id=sub.account_id,
        access_level=sub.access_level,
        msisdn=sub.msisdn,
        pin_set=sub.pin_hash is not None,
        roaming=sub.roaming,
        language=sub.language,
        account_kind=sub.account.kind,
    )


def verify_pin(uow: UnitOfWork, number: str | None, pin: str, *, origin: Origin = NO_ORIGIN) -> PinCheck:
    """Check the PIN for `number`. Changes state (the failure counter): run it in a write unit of work
    and commit whatever it returns."""
    found = find_subscriber(uow, number)
    if found is None or found.status == "closed":
        return PinCheck(status="unknown")
    sub = lock_subscriber(uow, found.id)  # concurrent calls for one number count every failure
    if sub.pin_hash is None:
        return PinCheck(status="no_pin", subscriber_id=sub.id)
    now = uow.now()
    if sub.pin_locked_until is not None:
        if sub.pin_locked_until > now:
            return PinCheck(status="locked", subscriber_id=sub.id, locked_until=sub.pin_locked_until)
        sub.pin_locked_until = None
        sub.pin_failures = 0
    if _PIN_RE.match(pin or "") and verify_secret(sub.pin_hash, pin):
        if sub.pin_failures:
            sub.pin_failures = 0
        audit(uow, origin, "auth.pin_ok", account_id=sub.account_id, subscriber_id=sub.id)
        return PinCheck(
            status="ok",
            subscriber_id=sub.id,
            account_id=sub.account_id,
            access_level=sub.access_level,
            attempts_left=MAX_PIN_FAILURES,
        )
    sub.pin_failures += 1
    left = max(0, MAX_PIN_FAILURES - sub.pin_failures)
    if left == 0:
        sub.pin_locked_until = now + PIN_LOCK
        audit(uow, origin, "auth.pin_locked", account_id=sub.account_id, subscriber_id=sub.id)
        log.warning("IVR PIN locked for subscriber %s until %s", sub.id, sub.pin_locked_until)
        return PinCheck(status="locked", subscriber_id=sub.id, locked_until=sub.pin_locked_until)
    audit(uow, origin, "auth.pin_wrong", account_id=sub.account_id, subscriber_id=sub.id, attempts_left=left)
    return PinCheck(status="wrong", subscriber_id=sub.id, attempts_left=left)


def set_pin(uow: UnitOfWork, subscriber_id: int, pin: str, *, origin: Origin = NO_ORIGIN) -> None:
    """Set a subscriber's IVR PIN (staff tools, seed data). Clears failures and lock."""
    if not _PIN_RE.match(pin):
        raise ValueError("a PIN is 4 to 8 digits")
    sub = lock_subscriber(uow, subscriber_id)
    sub.pin_hash = hash_secret(pin)
    sub.pin_failures = 0
    sub.pin_locked_until = None
    audit(uow, origin, "auth.pin_set", account_id=sub.account_id, subscriber_id=sub.id)
