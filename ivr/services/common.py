"""What every service module shares: the origin of a change, audit records, the SMS outbox, idempotency,
secret hashing, access levels and the subscriber/account loaders.

Rules kept here so each operation cannot forget them:
- A changing operation runs inside `once(...)`: a second call with the same idempotency key returns the
  first result (decoded from the `idempotency_record` table) and changes nothing.
- `audit(...)` writes what changed, from which call and line; never a secret (callers pass only non-secret
  details, and `audit` refuses keys that look secret).
- `queue_sms(...)` writes to the outbox in the caller's transaction: the SMS goes out only if the change
  commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from ivr.db.models import Account, AuditRecord, EmailOutbox, IdempotencyRecord, SmsOutbox, Subscriber
from ivr.db.session import UnitOfWork
from ivr.numbering import phone

log = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")

VIEW_ONLY = "view_only"
MANAGE_OWN = "manage_own"
MANAGE_ACCOUNT = "manage_account"
ACCESS_LEVELS = (VIEW_ONLY, MANAGE_OWN, MANAGE_ACCOUNT)

# argon2id with modest cost: PINs and temporary passwords are checked on the call path.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_SECRET_WORDS = ("pin", "password", "code", "card_number", "secret")


class DomainError(Exception):
    """A bug or inconsistent data the tree cannot branch on (becomes status "error")."""


class NotFound(DomainError):
    """The subscriber/account in the call variables does not exist."""


@dataclass(frozen=True)
class Origin:
    """Where a change comes from, for audit records."""

    call_id: str = ""
    line: str = ""


NO_ORIGIN = Origin()


MENU_KEYS = "123456789"


def menu_index(key: object) -> int:
    """Position of a menu key ("1".."9") in a list read to the caller; -1 when it is not one."""
    text = str(key).strip() if key is not None else ""
    return MENU_KEYS.index(text) if len(text) == 1 and text in MENU_KEYS else -1


def pick_listed(listed: Sequence[T], key: object, code: str | None, code_of: Callable[[T], str]) -> T | None:
    """The item a caller chose from a list read to them: by its menu key ("1".."9") when one is given,
    else by its code; None when neither matches."""
    if key is not None:
        index = menu_index(key)
        return listed[index] if 0 <= index < len(listed) else None
    if code is not None:
        return next((item for item in listed if code_of(item) == code), None)
    return None


# --- secrets -----------------------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _HASHER.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


# --- numbers -----------------------------------------------------------------------------------------


def normalize_msisdn(raw: str | None) -> str | None:
    """A Russian number as 11 digits starting with 7, or None (see `ivr.numbering.phone`, the one
    implementation of number normalisation)."""
    return phone.normalize_msisdn(raw)


# --- loaders and access ------------------------------------------------------------------------------


def load_subscriber(uow: UnitOfWork, subscriber_id: int) -> Subscriber:
    sub = uow.session.get(Subscriber, int(subscriber_id))
    if sub is None:
        raise NotFound(f"subscriber {subscriber_id} not found")
    return sub


def lock_account(uow: UnitOfWork, account_id: int) -> Account:
    """The account row, locked for this transaction (money and points change only under this lock)."""
    account = uow.session.scalars(uow.locked(select(Account).where(Account.id == int(account_id)))).first()
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


def lock_accounts(uow: UnitOfWork, account_ids: Sequence[int]) -> dict[int, Account]:
    """Several account rows locked in id order (a fixed order cannot deadlock)."""
    return {aid: lock_account(uow, aid) for aid in sorted(set(account_ids))}


def lock_subscriber(uow: UnitOfWork, subscriber_id: int) -> Subscriber:
    sub = uow.session.scalars(
        uow.locked(select(Subscriber).where(Subscriber.id == int(subscriber_id)))
    ).first()
    if sub is None:
        raise NotFound(f"subscriber {subscriber_id} not found")
    return sub


def lock_subscriber_and_account(uow: UnitOfWork, subscriber_id: int) -> tuple[Subscriber, Account]:
    """Lock the account, then the subscriber row (always in this order), both read fresh: for changes
    to a number's plan, packages or options, which two calls for one number could otherwise both base on
    a stale read (a lost update on PostgreSQL)."""
    account = lock_account(uow, load_subscriber(uow, subscriber_id).account_id)
    return lock_subscriber(uow, subscriber_id), account


def may_change_own(sub: Subscriber) -> bool:
    """Changes to the subscriber's own number (plan, options, block)."""
    return sub.access_level in (MANAGE_OWN, MANAGE_ACCOUNT)


def may_change_account(sub: Subscriber) -> bool:
    """Changes that touch the account's money or points (promised payment, credit, bonus)."""
    return sub.access_level == MANAGE_ACCOUNT


# --- audit and outbox --------------------------------------------------------------------------------


def audit(
    uow: UnitOfWork,
    origin: Origin,
    action: str,
    *,
    account_id: int | None = None,
    subscriber_id: int | None = None,
    **detail: Any,
) -> None:
    for name in detail:
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise DomainError(f"audit detail {name!r} looks secret")
    uow.session.add(
        AuditRecord(
            at=uow.now(),
            call_id=origin.call_id,
            line=origin.line,
            action=action,
            account_id=account_id,
            subscriber_id=subscriber_id,
            detail=json.dumps(_encode(detail), ensure_ascii=False, sort_keys=True),
        )
    )


def queue_sms(uow: UnitOfWork, msisdn: str, text: str, kind: str) -> None:
    """Queue an SMS in this transaction. The text may carry a temporary password: the outbox is the
    delivery channel; nothing here logs the text."""
    uow.session.add(SmsOutbox(msisdn=msisdn, text=text, kind=kind, created_at=uow.now()))
    log.info("sms queued kind=%s to=%s", kind, msisdn)


def queue_email(uow: UnitOfWork, address: str, subject: str, body: str, kind: str) -> None:
    """Queue an e-mail in this transaction (the pump delivers it with the SMS)."""
    uow.session.add(EmailOutbox(address=address, subject=subject, body=body, kind=kind, created_at=uow.now()))
    log.info("email queued kind=%s", kind)


# --- idempotency -------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dec"}:
            return Decimal(value["$dec"])
        if set(value) == {"$dt"}:
            return dt.datetime.fromisoformat(value["$dt"])
        if set(value) == {"$date"}:
            return dt.date.fromisoformat(value["$date"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def encode_result(result: Any) -> str:
    return json.dumps(_encode(dataclasses.asdict(result)), ensure_ascii=False)


def decode_result(cls: type[R], text: str) -> R:
    return cls(**_decode(json.loads(text)))


def once(uow: UnitOfWork, key: str | None, operation: str, cls: type[R], run: Callable[[], R]) -> R:
    """Run a changing operation at most once per idempotency key (`key` None: no protection asked).

    The record is written in the operation's own transaction, so it exists exactly when the change
    committed. Two concurrent first attempts with one key: the second fails on the primary key at
    commit and its whole transaction rolls back; retrying it returns the first result."""
    if key:
        record = uow.session.get(IdempotencyRecord, key)
        if record is not None:
            if record.operation != operation:
                raise DomainError(f"idempotency key reused for {operation} (was {record.operation})")
            log.info("idempotent replay of %s", operation)
            return decode_result(cls, record.result)
    result = run()
    if key:
        uow.session.add(
            IdempotencyRecord(
                key=key, operation=operation, result=encode_result(result), created_at=uow.now()
            )
        )
        uow.session.flush()
    return result
