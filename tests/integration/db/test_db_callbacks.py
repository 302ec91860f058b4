"""Callback requests on SQLite and PostgreSQL: booked once per number, claimed by one worker only, retried
with a limit, and a claim whose outcome was lost is never placed again."""

from __future__ import annotations

import threading

from dbfixtures import TestClock
from sqlalchemy import select

from ivr.db.models import CallbackRequest
from ivr.db.session import UowFactory
from ivr.services import callbacks

IVAN = "79161234567"


def book(
    factory: UowFactory, call_id: str, number: str = IVAN, queue: str = "operators"
) -> callbacks.Booking:
    with factory(write=True) as uow:
        return callbacks.book(
            uow,
            call_id=call_id,
            line="operator",
            did="0505",
            queue=queue,
            number=number,
            language="ru",
            context={"subscriber_id": "1", "reason": "caller_request"},
        )


def claim(factory: UowFactory, worker: str = "a") -> list[callbacks.CallbackJob]:
    with factory(write=True) as uow:
        return callbacks.claim_due(uow, worker=worker)


def finish(factory: UowFactory, request: int, result: str, worker: str = "a", attempts: int = 3) -> str:
    with factory(write=True) as uow:
        return callbacks.finish(
            uow, request, worker=worker, result=result, max_attempts=attempts, retry_after=60
        )


def stored(factory: UowFactory, request: int) -> CallbackRequest:
    with factory() as uow:
        found = uow.session.scalars(select(CallbackRequest).where(CallbackRequest.id == request)).one()
        uow.session.expunge(found)
        return found


def test_one_open_request_per_number_and_queue(uow_factory: UowFactory) -> None:
    first = book(uow_factory, "call-1", "8 916 123-45-67")
    assert first.status == "booked"
    assert stored(uow_factory, first.request_id or 0).number == IVAN  # normalised
    assert book(uow_factory, "call-2").status == "already"  # the same number again, still open
    assert book(uow_factory, "call-1", "79160000000").status == "already"  # the same call again
    assert book(uow_factory, "call-3", queue="loyalty").status == "booked"  # another queue
    assert book(uow_factory, "call-4", "0505").status == "invalid_number"
    assert book(uow_factory, "call-5", "12").status == "invalid_number"


def test_a_request_is_claimed_once_after_a_short_delay(uow_factory: UowFactory, clock: TestClock) -> None:
    booked = book(uow_factory, "call-1")
    assert claim(uow_factory) == []  # the caller is still hearing the goodbye
    clock.advance(seconds=callbacks.FIRST_TRY_AFTER + 1)
    (job,) = claim(uow_factory, "a")
    assert (job.id, job.number, job.queue, job.attempt) == (booked.request_id, IVAN, "operators", 1)
    assert job.context["subscriber_id"] == "1"
    assert claim(uow_factory, "b") == []  # claimed: nobody else places it
    assert finish(uow_factory, job.id, "answered", worker="b") == ""  # not b's claim
    assert finish(uow_factory, job.id, "answered") == "done"
    assert finish(uow_factory, job.id, "answered") == ""  # already finished
    clock.advance(hours=1)
    assert claim(uow_factory) == []


def test_unanswered_attempts_are_retried_up_to_the_limit(uow_factory: UowFactory, clock: TestClock) -> None:
    request = book(uow_factory, "call-1").request_id or 0
    results = []
    for _ in range(3):
        clock.advance(seconds=61)
        (job,) = claim(uow_factory)
        results.append(finish(uow_factory, job.id, "agent_unavailable" if job.attempt < 3 else "noanswer"))
        assert claim(uow_factory) == []  # not due again yet (retry_after)
    assert results == ["pending", "pending", "failed"]
    final = stored(uow_factory, request)
    assert (final.status, final.attempts, final.last_result) == ("failed", 3, "noanswer")
    clock.advance(hours=1)
    assert claim(uow_factory) == []
    assert book(uow_factory, "call-2").status == "booked"  # closed: the caller may ask again


def test_a_claim_whose_outcome_was_lost_is_given_up_not_redialled(
    uow_factory: UowFactory, clock: TestClock
) -> None:
    request = book(uow_factory, "call-1").request_id or 0
    clock.advance(seconds=30)
    assert len(claim(uow_factory)) == 1
    with uow_factory(write=True) as uow:
        assert callbacks.expire_lost_claims(uow, stale_after=900) == 0  # still fresh
    clock.advance(seconds=901)
    with uow_factory(write=True) as uow:
        assert callbacks.expire_lost_claims(uow, stale_after=900) == 1
    assert (stored(uow_factory, request).status, stored(uow_factory, request).last_result) == (
        "failed",
        "lost",
    )
    assert claim(uow_factory) == []


def test_two_workers_racing_claim_each_request_once(uow_factory: UowFactory, clock: TestClock) -> None:
    for n in range(12):
        assert book(uow_factory, f"call-{n}", f"7916000{n:04d}").status == "booked"
    clock.advance(seconds=30)
    got: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(worker: str) -> None:
        start.wait()
        while True:
            jobs = claim(uow_factory, worker)
            if not jobs:
                return
            got[worker].extend(job.id for job in jobs)

    threads = [threading.Thread(target=work, args=(w,)) for w in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = got["a"] + got["b"]
    assert sorted(claimed) == sorted(set(claimed))  # never twice
    assert len(claimed) == 12
    with uow_factory() as uow:
        owners = dict(uow.session.execute(select(CallbackRequest.id, CallbackRequest.claimed_by)).all())
    assert all(owners[i] == "a" for i in got["a"]) and all(owners[i] == "b" for i in got["b"])
