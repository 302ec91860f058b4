"""Several server nodes, one PostgreSQL: PIN failures, the PIN lock, the throttling of callers and the
hourly limit of one-time codes add up across nodes. Each "node" is its own engine (its own pool); the
concurrent attempts run in threads released together by a barrier. Nothing of this lives in a process
(ivr.services.auth)."""

from __future__ import annotations

from collections import Counter

import pytest
from dbfixtures import IVAN, MARIA, demo_ids
from multinode import Nodes, all_at_once
from sqlalchemy import func, select

from ivr.db.models import AuthFailure, OneTimeCode, Subscriber
from ivr.db.session import UowFactory
from ivr.services import auth, otp

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_kind", ["postgresql"])]

IVAN_PIN = "1234"


def _check(factory: UowFactory, number: str, pin: str, caller: str = auth.NO_CALLER) -> auth.PinCheck:
    with factory(write=True) as uow:
        result = auth.verify_pin(uow, number, pin, caller=caller)
        uow.commit()
    return result


def _failures(factory: UowFactory, number: str) -> tuple[int, int]:
    """(the subscriber's failure counter, auth_failure records against the number)."""
    with factory() as uow:
        counter = uow.session.scalars(
            select(Subscriber.pin_failures).where(Subscriber.msisdn == number)
        ).one()
        recorded = uow.session.scalar(
            select(func.count()).select_from(AuthFailure).where(AuthFailure.target == number)
        )
        return counter, int(recorded or 0)


def test_wrong_pins_on_two_nodes_add_up_to_the_lock(nodes: Nodes) -> None:
    statuses = [_check(nodes[i % 2], IVAN, "0000", caller=f"7999000000{i}").status for i in range(5)]
    assert statuses == ["wrong"] * 4 + ["locked"]
    assert _failures(nodes[0], IVAN) == (5, 5)
    for node in nodes:  # the right PIN now is refused on either node, and does not reveal it was right
        assert _check(node, IVAN, IVAN_PIN).status == "locked"


def test_wrong_pins_at_the_same_instant_on_two_nodes_all_count(nodes: Nodes) -> None:
    results = all_at_once(4, lambda i: _check(nodes[i % 2], IVAN, "0000", caller=f"7999000000{i}"))
    assert [r.status for r in results] == ["wrong"] * 4
    assert sorted(r.attempts_left for r in results) == [1, 2, 3, 4]  # no two saw the same count
    assert _failures(nodes[1], IVAN) == (4, 4)
    assert _check(nodes[0], IVAN, IVAN_PIN).status == "ok"  # and a right one resets it
    assert _failures(nodes[1], IVAN)[0] == 0


def test_a_burst_across_two_nodes_locks_after_exactly_five(nodes: Nodes) -> None:
    results = all_at_once(12, lambda i: _check(nodes[i % 2], IVAN, "0000", caller=f"799900000{i:02d}"))
    assert Counter(r.status for r in results) == {"wrong": 4, "locked": 8}
    assert sorted(r.attempts_left for r in results if r.status == "wrong") == [1, 2, 3, 4]
    # Attempts on a locked number do not count: exactly the five that led to the lock are recorded.
    assert _failures(nodes[0], IVAN) == (5, 5)
    for node in nodes:
        assert _check(node, IVAN, IVAN_PIN).status == "locked"


def test_a_caller_throttled_on_one_node_is_throttled_on_the_other(nodes: Nodes) -> None:
    caller = "79995550000"
    # Walking through numbers that do not exist counts against the caller, on whichever node.
    for i in range(auth.MAX_FAILURES_PER_CALLER):
        assert _check(nodes[i % 2], f"7999111{i:04d}", "1111", caller=caller).status == "unknown"
    for node in nodes:
        assert _check(node, IVAN, IVAN_PIN, caller=caller).status == "throttled"
    assert _check(nodes[1], IVAN, IVAN_PIN, caller="79995550001").status == "ok"  # another caller


def test_one_time_codes_asked_at_once_on_two_nodes_keep_the_hourly_limit(nodes: Nodes) -> None:
    sub_id = demo_ids(nodes[0], MARIA)[0]

    def send(i: int) -> str:
        with nodes[i % 2](write=True) as uow:
            sent = otp.send_code(uow, sub_id, "step_up", call_id=f"node{i % 2}-call-{i}")
            uow.commit()
        return sent.status

    statuses = all_at_once(8, send)
    assert Counter(statuses) == {"ok": otp.MAX_CODES_PER_HOUR, "throttled": 8 - otp.MAX_CODES_PER_HOUR}
    with nodes[1]() as uow:
        made = uow.session.scalar(
            select(func.count()).select_from(OneTimeCode).where(OneTimeCode.subscriber_id == sub_id)
        )
    assert made == otp.MAX_CODES_PER_HOUR
