"""One-time codes by SMS: step-up before risky actions, and the PIN-lock reset.

A code is 6 random digits, sent to the subscriber's own number through the SMS outbox (the only place
the code is ever written in clear: it is the delivery channel). At rest only its argon2 hash is kept.
It is bound to the call and the purpose it was sent for, expires after `CODE_TTL`, allows `MAX_ATTEMPTS`
wrong entries, and is used once. Sending a new code retires the previous one. At most
`MAX_CODES_PER_HOUR` codes per subscriber per hour (no SMS bombing through the IVR).

Wrong codes are recorded with the PIN failures (`ivr.services.auth.record_failure`, kind "otp"), so the
per-caller and per-target throttling covers guessing codes too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from ivr.db.models import OneTimeCode, SmsOutbox
from ivr.db.session import UnitOfWork
from ivr.numbering.phone import keyed_digits
from ivr.services.auth import NO_CALLER, record_failure, throttled, unlock_pin
from ivr.services.common import (
    NO_ORIGIN,
    Origin,
    audit,
    hash_secret,
    lock_subscriber,
    queue_sms,
    verify_secret,
)

log = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_TTL = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 3
MAX_CODES_PER_HOUR = 3
PURPOSES = ("step_up", "unlock")

_SMS_TEXT = {
    "ru": "Код подтверждения: {code}. Никому его не сообщайте, даже сотрудникам. Действует 5 минут.",
    "en": "Your confirmation code: {code}. Never tell it to anyone, staff included. Valid for 5 minutes.",
}


@dataclass(frozen=True)
class CodeSent:
    status: str  # ok | throttled | no_phone
    sms_to: str = ""  # last four digits of the number it went to
    valid_minutes: int = 0


@dataclass(frozen=True)
class CodeCheck:
    status: str  # ok | wrong | expired | exhausted | throttled
    attempts_left: int = 0


def _purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown one-time code purpose {purpose!r}")
    return purpose


def send_code(
    uow: UnitOfWork,
    subscriber_id: int,
    purpose: str,
    *,
    call_id: str,
    language: str = "ru",
    origin: Origin = NO_ORIGIN,
) -> CodeSent:
    """Make a code, keep its hash, queue the SMS in this transaction. The subscriber's row is locked
    first, so that calls on several server nodes asking at once cannot all pass the hourly count."""
    purpose = _purpose(purpose)
    sub = lock_subscriber(uow, subscriber_id)
    if sub.status == "closed" or not sub.msisdn:
        return CodeSent(status="no_phone")
    now = uow.now()
    recent = uow.session.scalar(
        select(func.count())
        .select_from(OneTimeCode)
        .where(OneTimeCode.subscriber_id == sub.id, OneTimeCode.created_at > now - dt.timedelta(hours=1))
    )
    if (recent or 0) >= MAX_CODES_PER_HOUR:
        audit(uow, origin, "otp.throttled", account_id=sub.account_id, subscriber_id=sub.id)
        return CodeSent(status="throttled")
    for old in uow.session.scalars(
        select(OneTimeCode).where(
            OneTimeCode.subscriber_id == sub.id,
            OneTimeCode.purpose == purpose,
            OneTimeCode.used_at.is_(None),
        )
    ):
        old.used_at = now  # retired: only the newest code works
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    uow.session.add(
        OneTimeCode(
            subscriber_id=sub.id,
            purpose=purpose,
            call_id=call_id[:64],
            code_hash=hash_secret(code),
            created_at=now,
            expires_at=now + CODE_TTL,
            attempts=0,
        )
    )
    queue_sms(uow, sub.msisdn, _SMS_TEXT.get(language, _SMS_TEXT["ru"]).format(code=code), "otp")
    audit(uow, origin, "otp.sent", account_id=sub.account_id, subscriber_id=sub.id, purpose=purpose)
    return CodeSent(status="ok", sms_to=sub.msisdn[-4:], valid_minutes=int(CODE_TTL.total_seconds() // 60))


def verify_code(
    uow: UnitOfWork,
    subscriber_id: int,
    purpose: str,
    code: object,
    *,
    call_id: str,
    caller: str = NO_CALLER,
    origin: Origin = NO_ORIGIN,
) -> CodeCheck:
    """Check a keyed code against the newest live code sent in this call for this purpose. Changes state
    (attempts, used): run it in a write unit of work and commit whatever it returns."""
    purpose = _purpose(purpose)
    # The subscriber first, as send_code and verify_pin lock it: one order of locks, no deadlock.
    sub = lock_subscriber(uow, subscriber_id)
    if throttled(uow, caller, sub.msisdn):
        audit(uow, origin, "auth.throttled", account_id=sub.account_id, subscriber_id=sub.id)
        return CodeCheck(status="throttled")
    now = uow.now()
    row = uow.session.scalars(
        uow.locked(
            select(OneTimeCode)
            .where(
                OneTimeCode.subscriber_id == sub.id,
                OneTimeCode.purpose == purpose,
                OneTimeCode.call_id == call_id[:64],
                OneTimeCode.used_at.is_(None),
            )
            .order_by(OneTimeCode.id.desc())
        )
    ).first()
    if row is None:
        return CodeCheck(status="expired")  # none sent in this call, or already used
    if row.expires_at <= now:
        row.used_at = now
        return CodeCheck(status="expired")
    keyed = keyed_digits(code, min_len=CODE_DIGITS, max_len=CODE_DIGITS)
    if keyed is not None and verify_secret(row.code_hash, keyed):
        row.used_at = now
        if purpose == "unlock":
            unlock_pin(uow, sub.id, origin=origin)
        audit(uow, origin, "otp.ok", account_id=sub.account_id, subscriber_id=sub.id, purpose=purpose)
        return CodeCheck(status="ok", attempts_left=MAX_ATTEMPTS - row.attempts)
    row.attempts += 1
    record_failure(uow, caller, sub.msisdn, "otp")
    left = MAX_ATTEMPTS - row.attempts
    if left <= 0:
        row.used_at = now
        audit(uow, origin, "otp.exhausted", account_id=sub.account_id, subscriber_id=sub.id)
        return CodeCheck(status="exhausted")
    audit(uow, origin, "otp.wrong", account_id=sub.account_id, subscriber_id=sub.id, attempts_left=left)
    return CodeCheck(status="wrong", attempts_left=left)


_CODE_IN_TEXT = re.compile(r"\b\d{6}\b")


def scrub_delivered(uow: UnitOfWork, *, older_than: dt.timedelta = CODE_TTL) -> int:
    """Blank the code in delivered one-time-code SMS once it can no longer be used (the gateway has
    delivered it; the outbox need not keep it), and drop code rows over a day old. Run by `ivr db jobs`.
    Returns the number of texts scrubbed."""
    now = uow.now()
    scrubbed = 0
    rows = uow.session.scalars(
        select(SmsOutbox).where(
            SmsOutbox.kind == "otp",
            SmsOutbox.sent_at.is_not(None),
            SmsOutbox.sent_at < now - older_than,
        )
    )
    for row in rows:
        text = _CODE_IN_TEXT.sub("******", row.text)
        if text != row.text:
            row.text = text
            scrubbed += 1
    uow.session.execute(delete(OneTimeCode).where(OneTimeCode.created_at < now - dt.timedelta(days=1)))
    if scrubbed:
        log.info("scrubbed the code from %d delivered SMS", scrubbed)
    return scrubbed
