"""The web personal account's password: reset by phone, and the web login that exercises the lockout.

Reset: a random temporary password (10 characters without look-alikes) is generated, only its argon2id
hash is stored, it goes to the subscriber by SMS through the outbox in the same transaction, the account
is marked must-change and the web lockout is cleared. At most `RESETS_PER_DAY` resets per subscriber in
any 24 hours. The temporary password appears in the SMS text and nowhere else (not in results, audit or
logs).

Registration: a subscriber without a web account gets one by phone, as on the operator's site: the login
is the phone number, and a temporary password arrives by SMS exactly as a reset sends it (must-change).

Login: `MAX_WEB_FAILURES` consecutive wrong passwords lock the web account until a reset.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from ivr.db.models import PasswordReset
from ivr.db.session import UnitOfWork
from ivr.services.auth import find_subscriber
from ivr.services.common import (
    NO_ORIGIN,
    Origin,
    audit,
    hash_secret,
    lock_subscriber,
    once,
    queue_sms,
    verify_secret,
)

log = logging.getLogger(__name__)

RESETS_PER_DAY = 3
MAX_WEB_FAILURES = 5
TEMP_PASSWORD_LENGTH = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

REGISTRATION_SMS_TEXT = {
    "ru": (
        "Личный кабинет создан. Логин: {login}. Временный пароль: {password}. "
        "После входа задайте новый пароль."
    ),
    "en": (
        "Your online account is ready. Login: {login}. Temporary password: {password}. "
        "Please set a new one after signing in."
    ),
}

SMS_TEXT = {
    "ru": "Временный пароль для входа в личный кабинет: {password}. После входа задайте новый пароль.",
    "en": "Temporary password for your online account: {password}. Please set a new one after signing in.",
}


@dataclass(frozen=True)
class PasswordResetResult:
    status: str  # ok | limit_reached | no_web_account
    sms_to: str | None = None


@dataclass(frozen=True)
class WebRegistration:
    status: str  # ok | already_registered
    sms_to: str | None = None
    login: str | None = None


@dataclass(frozen=True)
class WebLogin:
    status: str  # ok | must_change | wrong | locked | unknown | no_web_account | weak_password
    attempts_left: int = 0


def temporary_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(TEMP_PASSWORD_LENGTH))


def reset_password(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> PasswordResetResult:
    def run() -> PasswordResetResult:
        sub = lock_subscriber(uow, subscriber_id)
        if not sub.web_enabled:
            return PasswordResetResult(status="no_web_account")
        since = uow.now() - dt.timedelta(days=1)
        recent = uow.session.scalar(
            select(func.count(PasswordReset.id)).where(
                PasswordReset.subscriber_id == sub.id, PasswordReset.created_at > since
            )
        )
        if (recent or 0) >= RESETS_PER_DAY:
            return PasswordResetResult(status="limit_reached")
        password = temporary_password()
        sub.web_password_hash = hash_secret(password)
        sub.web_must_change = True
        sub.web_failures = 0
        sub.web_locked = False
        uow.session.add(PasswordReset(subscriber_id=sub.id, created_at=uow.now()))
        text = SMS_TEXT.get(sub.language, SMS_TEXT["ru"]).format(password=password)
        queue_sms(uow, sub.msisdn, text, "password_reset")
        audit(uow, origin, "password.reset", account_id=sub.account_id, subscriber_id=sub.id)
        return PasswordResetResult(status="ok", sms_to=sub.msisdn)

    return once(uow, key, "password.reset", PasswordResetResult, run)


def register_web_account(
    uow: UnitOfWork, subscriber_id: int, *, origin: Origin = NO_ORIGIN, key: str | None = None
) -> WebRegistration:
    """Create the web account: login = the phone number, a temporary password by SMS (must-change)."""

    def run() -> WebRegistration:
        sub = lock_subscriber(uow, subscriber_id)
        if sub.web_enabled:
            return WebRegistration(status="already_registered", login=sub.msisdn)
        password = temporary_password()
        sub.web_enabled = True
        sub.web_password_hash = hash_secret(password)
        sub.web_must_change = True
        sub.web_failures = 0
        sub.web_locked = False
        text = REGISTRATION_SMS_TEXT.get(sub.language, REGISTRATION_SMS_TEXT["ru"])
        queue_sms(uow, sub.msisdn, text.format(login=sub.msisdn, password=password), "web_registration")
        audit(uow, origin, "web.registered", account_id=sub.account_id, subscriber_id=sub.id)
        return WebRegistration(status="ok", sms_to=sub.msisdn, login=sub.msisdn)

    return once(uow, key, "web.register", WebRegistration, run)


def web_login(uow: UnitOfWork, number: str, password: str, *, origin: Origin = NO_ORIGIN) -> WebLogin:
    """What the web personal account does on sign-in (write unit of work: it counts failures)."""
    found = find_subscriber(uow, number)
    if found is None or found.status == "closed":
        return WebLogin(status="unknown")
    sub = lock_subscriber(uow, found.id)
    if not sub.web_enabled or sub.web_password_hash is None:
        return WebLogin(status="no_web_account")
    if sub.web_locked:
        return WebLogin(status="locked")
    if verify_secret(sub.web_password_hash, password):
        sub.web_failures = 0
        audit(uow, origin, "web.login", account_id=sub.account_id, subscriber_id=sub.id)
        status = "must_change" if sub.web_must_change else "ok"
        return WebLogin(status=status, attempts_left=MAX_WEB_FAILURES)
    sub.web_failures += 1
    left = max(0, MAX_WEB_FAILURES - sub.web_failures)
    if left == 0:
        sub.web_locked = True
        audit(uow, origin, "web.locked", account_id=sub.account_id, subscriber_id=sub.id)
        return WebLogin(status="locked")
    audit(
        uow, origin, "web.login_failed", account_id=sub.account_id, subscriber_id=sub.id, attempts_left=left
    )
    return WebLogin(status="wrong", attempts_left=left)


def change_web_password(
    uow: UnitOfWork, number: str, old_password: str, new_password: str, *, origin: Origin = NO_ORIGIN
) -> WebLogin:
    """Replace the password (ends the must-change state). A wrong old password counts as a failure."""
    checked = web_login(uow, number, old_password, origin=origin)
    if checked.status not in ("ok", "must_change"):
        return checked
    if len(new_password) < 8:
        return WebLogin(status="weak_password", attempts_left=checked.attempts_left)
    sub = find_subscriber(uow, number)
    assert sub is not None
    sub.web_password_hash = hash_secret(new_password)
    sub.web_must_change = False
    audit(uow, origin, "web.password_changed", account_id=sub.account_id, subscriber_id=sub.id)
    return WebLogin(status="ok", attempts_left=MAX_WEB_FAILURES)
