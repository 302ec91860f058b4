"""Voluntary number block: 1..90 days, refusals, unblock, and expiry with no job."""

from __future__ import annotations

import datetime as dt

import pytest
from dbfixtures import CORP_OWN, CORP_VIEW, IVAN, SERGEY, TestClock, demo_ids, run_op

from ivr.db.session import UowFactory
from ivr.services import blocking


def test_block_and_unblock(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    result = run_op(uow_factory, blocking.block_number, sub_id, 14)
    assert result.status == "ok"
    assert result.until == (clock.now + dt.timedelta(days=14)).date()
    again = run_op(uow_factory, blocking.block_number, sub_id, "7")
    assert (again.status, again.until) == ("already_blocked", result.until)
    assert run_op(uow_factory, blocking.unblock_number, sub_id).status == "ok"
    assert run_op(uow_factory, blocking.unblock_number, sub_id).status == "not_blocked"
    assert run_op(uow_factory, blocking.block_number, sub_id, 90).status == "ok"


@pytest.mark.parametrize("days", [0, 91, -1, "abc", None, "", 2.5])
def test_invalid_days(uow_factory: UowFactory, days: object) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    assert run_op(uow_factory, blocking.block_number, sub_id, days).status == "invalid_days"


def test_demo_blocked_number(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, SERGEY)
    assert run_op(uow_factory, blocking.block_number, sub_id, 5).status == "already_blocked"
    assert run_op(uow_factory, blocking.unblock_number, sub_id).status == "ok"


def test_a_block_past_its_end_is_not_active(uow_factory: UowFactory, clock: TestClock) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    run_op(uow_factory, blocking.block_number, sub_id, 1)
    clock.advance(hours=23)
    with uow_factory() as uow:
        assert blocking.active_block(uow, sub_id) is not None
    clock.advance(hours=2)
    with uow_factory() as uow:
        assert blocking.active_block(uow, sub_id) is None
    assert run_op(uow_factory, blocking.unblock_number, sub_id).status == "not_blocked"
    assert run_op(uow_factory, blocking.block_number, sub_id, 3).status == "ok"


def test_access(uow_factory: UowFactory) -> None:
    view, _ = demo_ids(uow_factory, CORP_VIEW)
    own, _ = demo_ids(uow_factory, CORP_OWN)
    assert run_op(uow_factory, blocking.block_number, view, 3).status == "forbidden"
    assert run_op(uow_factory, blocking.unblock_number, view).status == "forbidden"
    assert run_op(uow_factory, blocking.block_number, own, 3).status == "ok"
