"""The outboxes (SMS, e-mail) seen from the delivery side: take pending messages, mark them sent or failed.

Texts may carry a temporary password or a new card number; this module never logs a text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ivr.db.models import EmailOutbox, SmsOutbox
from ivr.db.session import UnitOfWork

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class OutgoingSms:
    id: int
    msisdn: str
    text: str
    kind: str


@dataclass(frozen=True)
class OutgoingEmail:
    id: int
    address: str
    subject: str
    body: str
    kind: str


Outbox = type[SmsOutbox] | type[EmailOutbox]


def _waiting(uow: UnitOfWork, outbox: Outbox, limit: int) -> Sequence[Any]:
    """Messages not sent yet and not given up, oldest first, locked for this delivery run.

    Several server nodes run a pump each over the one database. On PostgreSQL the claim is
    `FOR UPDATE SKIP LOCKED`: a message another node's run holds is skipped, not waited for, so the pumps
    take different messages at once, and one that a run has sent is no longer waiting when its lock goes
    (the run commits `sent_at` with it). A message is sent once, except at one instant: a node that dies
    after the gateway took the message and before its commit releases the lock with `sent_at` still
    empty, and the next run sends it again (at least once, never lost). On SQLite, BEGIN IMMEDIATE
    serialises the runs."""
    return uow.session.scalars(
        uow.locked(
            select(outbox)
            .where(outbox.sent_at.is_(None), outbox.attempts < MAX_ATTEMPTS)
            .order_by(outbox.id)
            .limit(limit),
            skip_locked=True,
        )
    ).all()


def pending_email(uow: UnitOfWork, limit: int = 100) -> list[OutgoingEmail]:
    rows = _waiting(uow, EmailOutbox, limit)
    return [
        OutgoingEmail(id=r.id, address=r.address, subject=r.subject, body=r.body, kind=r.kind) for r in rows
    ]


def pending(uow: UnitOfWork, limit: int = 100) -> list[OutgoingSms]:
    rows = _waiting(uow, SmsOutbox, limit)
    return [OutgoingSms(id=r.id, msisdn=r.msisdn, text=r.text, kind=r.kind) for r in rows]


def _row(uow: UnitOfWork, message_id: int, outbox: Outbox) -> SmsOutbox | EmailOutbox | None:
    return (
        uow.session.get(SmsOutbox, message_id)
        if outbox is SmsOutbox
        else uow.session.get(EmailOutbox, message_id)
    )


def mark_sent(uow: UnitOfWork, message_id: int, outbox: Outbox = SmsOutbox) -> None:
    row = _row(uow, message_id, outbox)
    if row is not None:
        row.sent_at = uow.now()
        row.attempts += 1


def mark_failed(uow: UnitOfWork, message_id: int, outbox: Outbox = SmsOutbox) -> None:
    row = _row(uow, message_id, outbox)
    if row is not None:
        row.attempts += 1
        log.warning("%s %s failed (attempt %d)", outbox.__tablename__, row.id, row.attempts)
