"""Who is calling: identify a subscriber by number, verify the IVR PIN, lock after repeated failures.

PIN rules: 4 to 8 digits, stored as an argon2id hash. Five consecutive wrong PINs lock IVR authentication
for the subscriber for `PIN_LOCK` (across calls: the counter and the lock live in the database); a right
PIN resets the counter; a lock that has run out is lifted at the next attempt. Attempts on a locked
subscriber do not count and do not reveal whether the PIN was right.

Throttling (distributed guessing): every failed PIN (and one-time code) is recorded in `auth_failure`
with the caller's bucket (caller ID, or one shared bucket for all withheld / unreadable caller IDs) and
the target number. At most `MAX_FAILURES_PER_CALLER` failures per caller per `THROTTLE_WINDOW` across all
targets, and `MAX_FAILURES_PER_TARGET` per target across all callers: beyond that the check answers
`throttled` without looking at the PIN, and the attempt does not count. The counts live in the database,
so they hold across server processes. One-time codes: `ivr.services.otp`.

Several server nodes over one database: nothing of this is kept in a process. A subscriber's failure
counter and lock change only under the subscriber's row lock (`lock_subscriber`, read fresh), so wrong
PINs on two nodes at the same instant both count and the fifth locks for every node. The throttle counts
are read before that lock and without one: attempts already in flight when a bucket reaches its limit
still run, so a caller (or everyone against one number) may exceed the hourly limit by as many attempts
as they have running at that moment, on all nodes together; each of them is still recorded, and the PIN
lock of the target caps guessing of one number at `MAX_PIN_FAILURES` anyway.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select

from ivr.db.models import Account, AuthFailure, Subscriber
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
# ASCII digits only: `\d` would also take Arabic-Indic and other Unicode digits, and `$` a trailing newline.
_PIN_RE = re.compile(r"[0-9]{4,8}")
MAX_FAILURES_PER_CALLER = 10
MAX_FAILURES_PER_TARGET = 8
THROTTLE_WINDOW = dt.timedelta(hours=1)
NO_CALLER = "withheld"


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
    status: str  # ok | wrong | locked | unknown | no_pin | throttled
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


# Built once and run past the ORM (UnitOfWork.rows): every call on a trusted number starts with it.
_IDENTIFY = (
    select(
        Subscriber.id,
        Subscriber.account_id,
        Subscriber.access_level,
        Subscriber.msisdn,
        Subscriber.pin_hash.is_not(None),
        Subscriber.roaming,
        Subscriber.language,
        Subscriber.status,
        Account.status,
        Account.kind,
    )
    .join(Account, Subscriber.account_id == Account.id)
    .where(Subscriber.msisdn == bindparam("msisdn"))
    .limit(1)
)


def identify(uow: UnitOfWork, number: str | None) -> Identification:
    msisdn = normalize_msisdn(number)
    found = uow.rows(_IDENTIFY, msisdn=msisdn) if msisdn is not None else ()
    if not found:
        return Identification(status="unknown")
    sub_id, account_id, access, msisdn, pin_set, roaming, language, sub_status, acc_status, kind = found[0]
    return Identification(
        status="closed" if "closed" in (sub_status, acc_status) else "found",
        subscriber_id=sub_id,
        account_id=account_id,
        access_level=access,
        msisdn=msisdn,
        pin_set=bool(pin_set),
        roaming=bool(roaming),
        language=language,
        account_kind=kind,
    )


def throttled(uow: UnitOfWork, caller: str, target: str | None) -> bool:
    """True when this caller, or anyone against this target number, failed too often in the last hour."""
    since = uow.now() - THROTTLE_WINDOW
    by_caller = uow.session.scalar(
        select(func.count())
        .select_from(AuthFailure)
        .where(AuthFailure.caller == caller, AuthFailure.at > since)
    )
    if (by_caller or 0) >= MAX_FAILURES_PER_CALLER:
        return True
    if target:
        by_target = uow.session.scalar(
            select(func.count())
            .select_from(AuthFailure)
            .where(AuthFailure.target == target, AuthFailure.at > since)
        )
        if (by_target or 0) >= MAX_FAILURES_PER_TARGET:
            return True
    return False


def record_failure(uow: UnitOfWork, caller: str, target: str | None, kind: str) -> None:
    """Count one failed secret check (and drop records older than a day: they no longer count)."""
    now = uow.now()
    uow.session.add(AuthFailure(at=now, caller=caller[:20], target=(target or "")[:11], kind=kind))
    uow.session.execute(delete(AuthFailure).where(AuthFailure.at < now - dt.timedelta(days=1)))


def verify_pin(
    uow: UnitOfWork,
    number: str | None,
    pin: str,
    *,
    origin: Origin = NO_ORIGIN,
    caller: str = NO_CALLER,
) -> PinCheck:
    """Check the PIN for `number`, called by `caller` (a throttling bucket, see
    `ivr.numbering.phone.CallerId.bucket`). Changes state (failure counters): run it in a write unit
    of work and commit whatever it returns."""
    msisdn = normalize_msisdn(number)
    if throttled(uow, caller, msisdn):
        log.warning("PIN check throttled (caller bucket or target over the hourly limit)")
        audit(uow, origin, "auth.throttled")
        return PinCheck(status="throttled")
    found = find_subscriber(uow, msisdn)
    if found is None or found.status == "closed":
        record_failure(uow, caller, msisdn, "pin")  # walking through numbers counts against the caller
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
    if _PIN_RE.fullmatch(pin or "") and verify_secret(sub.pin_hash, pin):
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
    record_failure(uow, caller, sub.msisdn, "pin")
    sub.pin_failures += 1
    left = max(0, MAX_PIN_FAILURES - sub.pin_failures)
    if left == 0:
        sub.pin_locked_until = now + PIN_LOCK
        audit(uow, origin, "auth.pin_locked", account_id=sub.account_id, subscriber_id=sub.id)
        log.warning("IVR PIN locked for subscriber %s until %s", sub.id, sub.pin_locked_until)
        return PinCheck(status="locked", subscriber_id=sub.id, locked_until=sub.pin_locked_until)
    audit(uow, origin, "auth.pin_wrong", account_id=sub.account_id, subscriber_id=sub.id, attempts_left=left)
    return PinCheck(status="wrong", subscriber_id=sub.id, attempts_left=left)


def unlock_pin(uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN) -> None:
    """Lift a PIN lock (after a one-time code proved the caller holds the phone). The PIN is unchanged."""
    sub = lock_subscriber(uow, subscriber_id)
    sub.pin_failures = 0
    sub.pin_locked_until = None
    audit(uow, origin, "auth.pin_unlocked", account_id=sub.account_id, subscriber_id=sub.id)


def weak_pin(pin: str) -> bool:
    """PINs a guesser tries first: one digit repeated, or a run up or down (1234, 9876, 0123)."""
    if len(set(pin)) == 1:
        return True
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    return steps in ({1}, {9})


@dataclass(frozen=True)
class PinChange:
    status: str  # ok | mismatch | weak | invalid


def change_pin(
    uow: UnitOfWork, subscriber_id: int, pin: str, repeat: str, *, origin: Origin = NO_ORIGIN
) -> PinChange:
    """The caller sets a new PIN (after strong authentication, which the caller of this function checks).
    The PIN is never put in an exception, a log line or an audit record."""
    if not _PIN_RE.fullmatch(pin or ""):
        return PinChange(status="invalid")
    if pin != repeat:
        return PinChange(status="mismatch")
    if weak_pin(pin):
        return PinChange(status="weak")
    set_pin(uow, subscriber_id, pin, origin=origin)
    return PinChange(status="ok")


def set_pin(uow: UnitOfWork, subscriber_id: int, pin: str, *, origin: Origin = NO_ORIGIN) -> None:
    """Set a subscriber's IVR PIN (staff tools, seed data, the caller after strong authentication).
    Clears failures and lock."""
    if not _PIN_RE.fullmatch(pin):
        raise ValueError("a PIN is 4 to 8 digits")  # never the value itself
    sub = lock_subscriber(uow, subscriber_id)
    sub.pin_hash = hash_secret(pin)
    sub.pin_failures = 0
    sub.pin_locked_until = None
    audit(uow, origin, "auth.pin_set", account_id=sub.account_id, subscriber_id=sub.id)
