"""Support-staff accounts of the console (ivr/web) and the audit trail of what they do.

Roles, each including the rights of the ones before it: viewer (read, hear prompts, try calls), editor
(drafts, saving versions, uploading recordings), publisher (publishing, rollback), admin (accounts).
Passwords are argon2id hashes (the same hasher as the callers' PINs). Five failed logins in a row lock
the account for LOCK_MINUTES; a good login resets the count. Nothing here logs a password.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select

from ivr.db.models import StaffAudit, StaffUser
from ivr.db.session import UnitOfWork
from ivr.services.common import hash_secret, verify_secret

ROLES = ("viewer", "editor", "publisher", "admin")
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 10
_USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")


class StaffError(ValueError):
    """A refused account operation; the message is safe to show."""


@dataclass(frozen=True)
class Staff:
    """The logged-in person as the console sees them."""

    username: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"a password has at least {MIN_PASSWORD} characters")
    if password.strip() != password:
        raise StaffError("a password does not start or end with a space")


def add_staff(uow: UnitOfWork, username: str, password: str, role: str, *, by: str = "cli") -> Staff:
    if not _USERNAME.fullmatch(username):
        raise StaffError("a user name is 2-32 characters: a-z first, then a-z, 0-9, '.', '_' or '-'")
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    check_password_rules(password)
    if uow.session.scalar(select(StaffUser).where(StaffUser.username == username)) is not None:
        raise StaffError(f"user {username} exists")
    uow.session.add(
        StaffUser(
            username=username,
            password_hash=hash_secret(password),
            role=role,
            failed_logins=0,
            created_at=uow.now(),
        )
    )
    audit(uow, by, "staff_add", detail=f"{username} as {role}")
    return Staff(username, role)


def set_password(uow: UnitOfWork, username: str, password: str, *, by: str) -> None:
    user = _user(uow, username)
    check_password_rules(password)
    user.password_hash = hash_secret(password)
    user.failed_logins = 0
    user.locked_until = None
    audit(uow, by, "staff_password", detail=username)


def set_role(uow: UnitOfWork, username: str, role: str, *, by: str) -> None:
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    user = _user(uow, username)
    old, user.role = user.role, role
    audit(uow, by, "staff_role", detail=f"{username}: {old} -> {role}")


def set_disabled(uow: UnitOfWork, username: str, disabled: bool, *, by: str) -> None:
    user = _user(uow, username)
    user.disabled = disabled
    audit(uow, by, "staff_disable" if disabled else "staff_enable", detail=username)


def list_staff(uow: UnitOfWork) -> list[StaffUser]:
    return list(uow.session.scalars(select(StaffUser).order_by(StaffUser.username)))


def current(uow: UnitOfWork, username: str) -> Staff | None:
    """The account behind a console session, re-read on every request: a disabled account or a changed
    role takes effect at once."""
    user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None or user.disabled:
        return None
    return Staff(user.username, user.role)


def login(uow: UnitOfWork, username: str, password: str) -> Staff | None:
    """The account when the password is right and the account is neither disabled nor locked. Every
    failure counts against an existing account; the fifth in a row locks it. Call with a write unit."""
    user = uow.session.scalar(uow.locked(select(StaffUser).where(StaffUser.username == username)))
    now = uow.now()
    if user is None:
        hash_secret(password)  # about the same time as a real check: no user-name oracle by timing
        audit(uow, username[:64], "login_failed", detail="no such user")
        return None
    if user.locked_until is not None and user.locked_until > now:
        audit(uow, user.username, "login_failed", detail="locked")
        return None
    if user.disabled or not verify_secret(user.password_hash, password):
        user.failed_logins += 1
        detail = "disabled" if user.disabled else f"wrong password ({user.failed_logins} in a row)"
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
            user.failed_logins = 0
            detail += f"; locked for {LOCK_MINUTES} min"
        audit(uow, user.username, "login_failed", detail=detail)
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit(uow, user.username, "login")
    return Staff(user.username, user.role)


def audit(
    uow: UnitOfWork,
    username: str,
    action: str,
    *,
    line: str = "",
    version: int | None = None,
    detail: str = "",
) -> None:
    uow.session.add(
        StaffAudit(at=uow.now(), username=username, action=action, line=line, version=version, detail=detail)
    )


def audit_trail(uow: UnitOfWork, *, line: str | None = None, limit: int = 200) -> list[StaffAudit]:
    stmt = select(StaffAudit).order_by(StaffAudit.id.desc()).limit(limit)
    if line is not None:
        stmt = stmt.where(StaffAudit.line == line)
    return list(uow.session.scalars(stmt))


def _user(uow: UnitOfWork, username: str) -> StaffUser:
    user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        raise StaffError(f"no user {username}")
    return user
