"""Several server nodes, one PostgreSQL: every due callback is claimed by exactly one node's worker, its
attempt counted once, and only that worker may end the claim. Each "node" is its own engine (its own
pool); the workers run in threads at the same time.

How (ivr.services.callbacks.claim_due): due requests are read FOR UPDATE SKIP LOCKED (a request another
node is claiming is left to it, never waited for) and each claim is a conditional UPDATE from pending."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from dbfixtures import TestClock
from multinode import Nodes
from sqlalchemy import select

from ivr.db.models import CallbackRequest
from ivr.db.session import UowFactory
from ivr.services import callbacks

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_kind", ["postgresql"])]

REQUESTS = 60


def _book(factory: UowFactory, count: int) -> list[int]:
    ids = []
    for i in range(count):
        with factory(write=True) as uow:
            booked = callbacks.book(
                uow,
                call_id=f"node-a-{i}.1",
                line="operator",
                did="0505",
                queue="operators",
                number=f"7916{i:07d}",
                language="ru",
                context={"reason": "caller_request"},
            )
        assert booked.status == "booked" and booked.request_id is not None
        ids.append(booked.request_id)
    return ids


def _claim_all(factory: UowFactory, worker: str, start: threading.Barrier, out: list[int]) -> None:
    """One node's worker: claims a few at a time until nothing is due."""
    start.wait()
    idle = 0
    while idle < 3:
        with factory(write=True) as uow:
            jobs = callbacks.claim_due(uow, worker=worker, limit=3)
        out.extend(job.id for job in jobs)
        idle = 0 if jobs else idle + 1
        time.sleep(0.001)  # placing the call


def _race(nodes: Nodes) -> tuple[list[int], list[int]]:
    start = threading.Barrier(2)
    claimed: tuple[list[int], list[int]] = ([], [])
    threads = [
        threading.Thread(target=_claim_all, args=(factory, worker, start, out))
        for factory, worker, out in zip(nodes, ("node-a", "node-b"), claimed, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    return claimed


def _requests(factory: UowFactory) -> dict[int, CallbackRequest]:
    with factory() as uow:
        rows = list(uow.session.scalars(select(CallbackRequest)))
        uow.session.expunge_all()
        return {r.id: r for r in rows}


def test_two_nodes_claim_every_due_request_exactly_once(nodes: Nodes, clock: TestClock) -> None:
    ids = _book(nodes[0], REQUESTS)
    clock.advance(seconds=callbacks.FIRST_TRY_AFTER + 1)
    a, b = _race(nodes)
    claims = Counter(a + b)
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
    assert a and b, "both workers should have claimed some"
    stored = _requests(nodes[1])
    assert all(r.status == "dialing" and r.attempts == 1 for r in stored.values())
    assert {r.id for r in stored.values() if r.claimed_by == "node-a"} == set(a)
    assert {r.id for r in stored.values() if r.claimed_by == "node-b"} == set(b)

    # Only the holder ends a claim; the other node cannot, not even at the same time.
    for request_id in a:
        with nodes[1](write=True) as uow:
            assert (
                callbacks.finish(
                    uow, request_id, worker="node-b", result="NOANSWER", max_attempts=3, retry_after=0
                )
                == ""
            )
    for worker, factory, mine in (("node-a", nodes[0], a), ("node-b", nodes[1], b)):
        for request_id in mine:
            with factory(write=True) as uow:
                assert (
                    callbacks.finish(
                        uow, request_id, worker=worker, result="NOANSWER", max_attempts=3, retry_after=0
                    )
                    == "pending"
                )

    # The second attempt: again claimed once each, counted once.
    clock.advance(seconds=1)
    a, b = _race(nodes)
    claims = Counter(a + b)
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
    assert all(r.status == "dialing" and r.attempts == 2 for r in _requests(nodes[0]).values())


def test_a_request_one_node_is_claiming_is_left_to_it(nodes: Nodes, clock: TestClock) -> None:
    """While node A's claim run holds a due request, node B's run takes the others at once (no wait)."""
    ids = _book(nodes[0], 4)
    clock.advance(seconds=callbacks.FIRST_TRY_AFTER + 1)
    with nodes[0](write=True) as held:
        held.session.scalars(held.locked(select(CallbackRequest).where(CallbackRequest.id == ids[0]))).one()
        began = time.monotonic()
        with nodes[1](write=True) as uow:
            jobs = callbacks.claim_due(uow, worker="node-b", limit=10)
        assert time.monotonic() - began < 2.0
        assert [j.id for j in jobs] == ids[1:]
        held.rollback()
    with nodes[0](write=True) as uow:
        assert [j.id for j in callbacks.claim_due(uow, worker="node-a")] == ids[:1]


def test_two_bookings_for_one_number_at_the_same_instant_make_one_request(nodes: Nodes) -> None:
    # Two calls from the same number, on two nodes, ask for a callback at the same moment: both pass the
    # "already booked?" check, and the database's unique index on open requests refuses the second insert.
    rounds = 12
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def book(factory: UowFactory, node: str, n: int, start: threading.Barrier) -> None:
        start.wait()
        with factory(write=True) as uow:
            booked = callbacks.book(
                uow, call_id=f"{node}-{n}.1", line="operator", did="0505", queue="operators",
                number=f"7926{n:07d}", language="ru", context={},
            )  # fmt: skip
        with lock:
            results.append((f"7926{n:07d}", booked.status))

    for n in range(rounds):
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=book, args=(factory, node, n, start))
            for factory, node in zip(nodes, ("node-a", "node-b"), strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    by_number: dict[str, list[str]] = {}
    for number, status in results:
        by_number.setdefault(number, []).append(status)
    assert all(sorted(s) == ["already", "booked"] for s in by_number.values()), by_number
    with nodes[0]() as uow:
        open_rows = uow.session.scalars(
            select(CallbackRequest.number).where(CallbackRequest.number.like("7926%"))
        ).all()
    assert sorted(open_rows) == sorted(by_number), "one request per number"
