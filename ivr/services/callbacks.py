"""Callback requests: a caller who would rather be called back than wait in an operator queue.

The rules that make a callback happen once:
- One request per call (`call_id` is unique), and at most one open request (pending or dialing) per number
  and queue: a caller who asks twice is told it is already booked. The database holds both rules (a unique
  index on open requests, migration 0010), so two bookings at the same instant on two servers cannot both
  land.
- A request is *claimed* before it is placed: one UPDATE from pending to dialing that names the state it
  expects, so of two servers (or two loops) that see the same due request only one wins it
  (`claim_due`). The attempt is counted when it is claimed.
- Only the claim's holder ends it (`finish`): answered -> done; the agent or the caller did not answer ->
  pending again after `retry_after` seconds, or failed once `max_attempts` are used.
- A claim whose outcome was lost (the server stopped, AMI went away mid-call) is never placed again: after
  `stale_after` seconds it becomes failed ("lost"), because the caller may already have been called.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ivr.db.models import CallbackRequest
from ivr.db.session import UnitOfWork
from ivr.numbering import phone

OPEN = ("pending", "dialing")
# A new request is first tried this long after it was booked: the caller is still hearing the goodbye.
FIRST_TRY_AFTER = 10.0
# Outcomes of one attempt that end the request well.
ANSWERED = "answered"


@dataclass(frozen=True)
class Booking:
    status: str  # booked | already | invalid_number
    request_id: int | None = None


@dataclass(frozen=True)
class CallbackJob:
    """A claimed request, with what placing it needs."""

    id: int
    line: str
    did: str
    queue: str
    number: str
    language: str
    context: dict[str, Any]
    attempt: int


def callback_number(raw: str) -> str | None:
    """The digits a callback may dial: a full phone number (11 digits from 7/8, or an international
    number), never a short service number or something keyed by mistake."""
    digits = phone.international_digits(raw.strip())
    if digits is None or not 11 <= len(digits) <= 15:
        return None
    return digits


def book(
    uow: UnitOfWork,
    *,
    call_id: str,
    line: str,
    did: str,
    queue: str,
    number: str,
    language: str,
    context: dict[str, Any],
) -> Booking:
    """Book a callback (the caller's transaction: commits here)."""
    digits = callback_number(number)
    if digits is None:
        return Booking("invalid_number")
    found = _existing(uow, call_id, digits, queue)
    if found is not None:
        return Booking("already", found)
    now = uow.now()
    request = CallbackRequest(
        call_id=call_id,
        line=line,
        did=did,
        queue=queue,
        number=digits,
        language=language,
        context={str(k): str(v) for k, v in context.items()},
        status="pending",
        attempts=0,
        requested_at=now,
        due_at=now + dt.timedelta(seconds=FIRST_TRY_AFTER),
        claimed_by="",
        last_result="",
    )
    uow.session.add(request)
    try:
        uow.session.flush()
        uow.commit()
    except IntegrityError:
        # Another booking for the same number and queue (or the same call) won the race between the
        # check above and this insert: the database's unique indexes refused this one.
        uow.rollback()
        found = _existing(uow, call_id, digits, queue)
        if found is None:
            raise
        return Booking("already", found)
    return Booking("booked", request.id)


def _existing(uow: UnitOfWork, call_id: str, number: str, queue: str) -> int | None:
    """This call's request, else the open request for the number and queue, else None."""
    mine = uow.session.scalars(select(CallbackRequest.id).where(CallbackRequest.call_id == call_id)).first()
    if mine is not None:
        return int(mine)
    open_one = uow.session.scalars(
        select(CallbackRequest.id).where(
            CallbackRequest.number == number,
            CallbackRequest.queue == queue,
            CallbackRequest.status.in_(OPEN),
        )
    ).first()
    return None if open_one is None else int(open_one)


def claim_due(uow: UnitOfWork, *, worker: str, limit: int = 5) -> list[CallbackJob]:
    """Claim up to `limit` due requests for `worker` (commits). Each claim is one conditional UPDATE, so a
    request another worker claimed first is skipped, never placed twice.

    On PostgreSQL the due requests are read `FOR UPDATE SKIP LOCKED`: a request that another node's
    worker is claiming right now is left to it instead of waited for. Without it, two workers reading the
    same due rows in different orders (a `due_at` moved between their reads) could each hold one row and
    wait for the other's: a deadlock that aborts one claim run."""
    now = uow.now()
    due = uow.session.scalars(
        uow.locked(
            select(CallbackRequest)
            .where(CallbackRequest.status == "pending", CallbackRequest.due_at <= now)
            .order_by(CallbackRequest.due_at, CallbackRequest.id)
            .limit(limit),
            skip_locked=True,
        )
    ).all()
    jobs: list[CallbackJob] = []
    for request in due:
        won = uow.session.execute(
            update(CallbackRequest)
            .where(CallbackRequest.id == request.id, CallbackRequest.status == "pending")
            .values(
                status="dialing",
                attempts=CallbackRequest.attempts + 1,
                claimed_by=worker,
                claimed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(won, "rowcount", 0) != 1:
            continue
        jobs.append(
            CallbackJob(
                id=request.id,
                line=request.line,
                did=request.did,
                queue=request.queue,
                number=request.number,
                language=request.language,
                context=dict(request.context or {}),
                attempt=request.attempts + 1,
            )
        )
    uow.commit()
    return jobs


def finish(
    uow: UnitOfWork,
    request_id: int,
    *,
    worker: str,
    result: str,
    max_attempts: int,
    retry_after: float,
) -> str:
    """End the claim of `worker` on a request with the attempt's `result` (answered, agent_unavailable,
    NOANSWER, BUSY, ...). Returns the request's new status, or "" when the claim was not this worker's
    (already finished, or never claimed): nothing changes then."""
    request = uow.session.scalars(
        uow.locked(select(CallbackRequest).where(CallbackRequest.id == request_id))
    ).first()
    if request is None or request.status != "dialing" or request.claimed_by != worker:
        return ""
    now = uow.now()
    request.last_result = result[:32]
    request.claimed_by = ""
    if result == ANSWERED:
        request.status = "done"
        request.finished_at = now
    elif request.attempts >= max_attempts:
        request.status = "failed"
        request.finished_at = now
    else:
        request.status = "pending"
        request.due_at = now + dt.timedelta(seconds=retry_after)
    uow.commit()
    return request.status


def expire_lost_claims(uow: UnitOfWork, *, stale_after: float) -> int:
    """Claims older than `stale_after` seconds whose outcome never came: failed ("lost"), never redialled.
    Returns how many."""
    now = uow.now()
    cutoff = now - dt.timedelta(seconds=stale_after)
    done = uow.session.execute(
        update(CallbackRequest)
        .where(CallbackRequest.status == "dialing", CallbackRequest.claimed_at < cutoff)
        .values(status="failed", last_result="lost", finished_at=now, claimed_by="")
        .execution_options(synchronize_session=False)
    )
    uow.commit()
    return int(getattr(done, "rowcount", 0) or 0)


def counts(uow: UnitOfWork) -> dict[str, int]:
    """Requests by status (monitoring)."""
    rows = uow.session.execute(
        select(CallbackRequest.status, func.count()).group_by(CallbackRequest.status)
    ).all()
    return {str(status): int(n) for status, n in rows}
