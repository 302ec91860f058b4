"""Identification and IVR PIN: every outcome, lockout after five failures across calls, expiry of the lock."""

from __future__ import annotations

import json
import logging

import pytest
from dbfixtures import ANDREY, CORP_VIEW, IVAN, PAVEL, TestClock, demo_ids, run_op
from sqlalchemy import select

from ivr.db.models import AuditRecord, Subscriber
from ivr.db.session import UowFactory
from ivr.services import auth


@pytest.mark.parametrize("typed", ["79161234567", "+7 916 123-45-67", "89161234567", "9161234567"])
def test_identify_accepts_the_usual_ways_of_writing_a_number(uow_factory: UowFactory, typed: str) -> None:
    with uow_factory() as uow:
        found = auth.identify(uow, typed)
    assert found.status == "found"
    assert found.msisdn == IVAN
    assert found.pin_set is True
    assert found.access_level == "manage_account"


def test_identify_unknown_closed_and_view_only(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        assert auth.identify(uow, "79999999999").status == "unknown"
        assert auth.identify(uow, "12345").status == "unknown"
        assert auth.identify(uow, None).status == "unknown"
        assert auth.identify(uow, ANDREY).status == "closed"
        assert auth.identify(uow, CORP_VIEW).access_level == "view_only"
        assert auth.identify(uow, PAVEL).pin_set is False


def test_right_pin(uow_factory: UowFactory) -> None:
    result = run_op(uow_factory, auth.verify_pin, IVAN, "1234")
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    assert result.status == "ok"
    assert (result.subscriber_id, result.account_id) == (sub_id, account_id)
    assert result.attempts_left == auth.MAX_PIN_FAILURES


def test_pin_is_stored_hashed(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        sub = uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == IVAN)).one()
        assert sub.pin_hash is not None
        assert "1234" not in sub.pin_hash
        assert sub.pin_hash.startswith("$argon2id$")


def test_wrong_pins_count_down_then_lock_across_calls(uow_factory: UowFactory, clock: TestClock) -> None:
    lefts = [run_op(uow_factory, auth.verify_pin, IVAN, "0000").attempts_left for _ in range(4)]
    assert lefts == [4, 3, 2, 1]
    fifth = run_op(uow_factory, auth.verify_pin, IVAN, "0000")
    assert fifth.status == "locked"
    assert fifth.locked_until == clock.now + auth.PIN_LOCK
    # A later call, even with the right PIN, is still locked.
    clock.advance(minutes=10)
    again = run_op(uow_factory, auth.verify_pin, IVAN, "1234")
    assert again.status == "locked"
    assert again.locked_until == fifth.locked_until
    # After the lock runs out, the right PIN works and the counter starts afresh.
    clock.advance(hours=1)
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234").status == "ok"
    assert run_op(uow_factory, auth.verify_pin, IVAN, "9999").attempts_left == 4


def test_right_pin_resets_the_counter(uow_factory: UowFactory) -> None:
    for _ in range(4):
        run_op(uow_factory, auth.verify_pin, IVAN, "1111")
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234").status == "ok"
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1111").attempts_left == 4


def test_malformed_pin_counts_as_wrong(uow_factory: UowFactory) -> None:
    assert run_op(uow_factory, auth.verify_pin, IVAN, "12").status == "wrong"
    assert run_op(uow_factory, auth.verify_pin, IVAN, "").attempts_left == 3


def test_no_pin_unknown_closed(uow_factory: UowFactory) -> None:
    assert run_op(uow_factory, auth.verify_pin, PAVEL, "1234").status == "no_pin"
    assert run_op(uow_factory, auth.verify_pin, "79990000000", "1234").status == "unknown"
    assert run_op(uow_factory, auth.verify_pin, ANDREY, "9999").status == "unknown"


def test_a_rolled_back_attempt_counts_nothing(uow_factory: UowFactory) -> None:
    with uow_factory(write=True) as uow:
        assert auth.verify_pin(uow, IVAN, "0000").status == "wrong"
        # no commit: the caller hung up / the operation failed
    assert run_op(uow_factory, auth.verify_pin, IVAN, "0000").attempts_left == 4


def test_audit_and_log_carry_no_pin(uow_factory: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        run_op(uow_factory, auth.verify_pin, IVAN, "4711")
    run_op(uow_factory, auth.set_pin, demo_ids(uow_factory, PAVEL)[0], "4712")
    with uow_factory() as uow:
        records = [
            (r.action, r.detail)
            for r in uow.session.scalars(select(AuditRecord).where(AuditRecord.action.like("auth.%")))
        ]
    actions = [action for action, _ in records]
    assert actions.count("auth.pin_wrong") == 4 and "auth.pin_locked" in actions and "auth.pin_set" in actions
    for _, detail in records:
        assert "4711" not in detail and "4712" not in detail
        json.loads(detail)
    assert "4711" not in caplog.text and "4712" not in caplog.text


def test_set_pin_rejects_bad_pins(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, PAVEL)
    with pytest.raises(ValueError):
        run_op(uow_factory, auth.set_pin, sub_id, "12a4")
    run_op(uow_factory, auth.set_pin, sub_id, "246810")
    assert run_op(uow_factory, auth.verify_pin, PAVEL, "246810").status == "ok"
