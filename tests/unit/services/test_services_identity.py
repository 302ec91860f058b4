"""Throttling of secret checks (per caller ID, per target), one-time SMS codes (expiry, attempts, single
use, hashing, binding to the call), the PIN-lock reset by code, PIN change rules, and the actions' own
guards (step-up before risky actions, strong authentication before pin.change). Real database."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from dbfixtures import IVAN, MARIA, OLEG, TestClock, demo_ids, run_op
from sqlalchemy import select

from ivr.app.actions import ActionContext, invoke
from ivr.db.models import AuditRecord, AuthFailure, OneTimeCode, SmsOutbox, Subscriber
from ivr.db.session import UowFactory
from ivr.services import auth, otp


def last_code(factory: UowFactory, msisdn: str) -> str:
    with factory() as uow:
        text = uow.session.scalars(
            select(SmsOutbox.text)
            .where(SmsOutbox.kind == "otp", SmsOutbox.msisdn == msisdn)
            .order_by(SmsOutbox.id.desc())
        ).first()
    assert text is not None
    match = re.search(r"\b(\d{6})\b", text)
    assert match
    return match.group(1)


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- throttling --------------------------------------------------------------------------------------


def test_one_caller_guessing_across_many_numbers_is_throttled(uow_factory: UowFactory) -> None:
    targets = ["79161234567", "79161110001", "79161110002", "79161110003", "79161110005"]
    statuses = []
    for i in range(auth.MAX_FAILURES_PER_CALLER + 2):
        r = run_op(uow_factory, auth.verify_pin, targets[i % len(targets)], "0000", caller="74951112233")
        statuses.append(r.status)
    assert statuses[: auth.MAX_FAILURES_PER_CALLER] == ["wrong"] * auth.MAX_FAILURES_PER_CALLER
    assert statuses[auth.MAX_FAILURES_PER_CALLER :] == ["throttled", "throttled"]
    # Even the right PIN is not looked at while throttled; another caller is not affected.
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="74951112233").status == "throttled"
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="74959998877").status == "ok"


def test_many_callers_against_one_number_are_throttled(uow_factory: UowFactory, clock: TestClock) -> None:
    statuses = []
    for i in range(auth.MAX_FAILURES_PER_TARGET + 1):
        # A right PIN in between keeps the 5-failure lock away: only the per-target limit can stop this.
        if i % 4 == 3:
            run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="79990000000")
        statuses.append(run_op(uow_factory, auth.verify_pin, IVAN, "0000", caller=f"7495000000{i}").status)
    assert "locked" not in statuses
    assert statuses[-1] == "throttled"
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="74957777777").status == "throttled"
    # The window slides: an hour later the number can be checked again.
    clock.advance(hours=1, minutes=1)
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="74957777777").status == "ok"


def test_withheld_callers_share_one_bucket(uow_factory: UowFactory) -> None:
    numbers = ["79161110001", "79161110002", "79161110003", "79161110005", "79262220001"]
    for i in range(auth.MAX_FAILURES_PER_CALLER):
        run_op(uow_factory, auth.verify_pin, numbers[i % len(numbers)], "0000", caller="withheld")
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="withheld").status == "throttled"


def test_unknown_numbers_count_against_the_caller(uow_factory: UowFactory) -> None:
    for i in range(auth.MAX_FAILURES_PER_CALLER):
        assert run_op(uow_factory, auth.verify_pin, f"7999000000{i}", "1234", caller="c1").status == "unknown"
    assert run_op(uow_factory, auth.verify_pin, IVAN, "1234", caller="c1").status == "throttled"


def test_failures_are_stored_without_the_pin(uow_factory: UowFactory) -> None:
    run_op(uow_factory, auth.verify_pin, IVAN, "4711", caller="74951112233")
    with uow_factory() as uow:
        rows = [(r.caller, r.target, r.kind) for r in uow.session.scalars(select(AuthFailure))]
    assert rows == [("74951112233", IVAN, "pin")]


# --- one-time codes ----------------------------------------------------------------------------------


def send(factory: UowFactory, msisdn: str, purpose: str = "step_up", call: str = "call-1") -> otp.CodeSent:
    sub_id, _ = demo_ids(factory, msisdn)
    return run_op(factory, otp.send_code, sub_id, purpose, call_id=call)


def check(factory: UowFactory, msisdn: str, code: str, purpose: str = "step_up", call: str = "call-1") -> str:
    sub_id, _ = demo_ids(factory, msisdn)
    return run_op(factory, otp.verify_code, sub_id, purpose, code, call_id=call, caller="c").status


def test_code_is_sent_hashed_and_works_once(uow_factory: UowFactory) -> None:
    sent = send(uow_factory, IVAN)
    assert (sent.status, sent.sms_to, sent.valid_minutes) == ("ok", "4567", 5)
    code = last_code(uow_factory, IVAN)
    with uow_factory() as uow:
        row = uow.session.scalars(select(OneTimeCode)).one()
        assert row.code_hash.startswith("$argon2id$") and code not in row.code_hash
        audits = " ".join(a.detail + a.action for a in uow.session.scalars(select(AuditRecord)))
        assert code not in audits
    assert check(uow_factory, IVAN, code) == "ok"
    assert check(uow_factory, IVAN, code) == "expired"  # used: never again


def test_code_expires_after_five_minutes(uow_factory: UowFactory, clock: TestClock) -> None:
    send(uow_factory, IVAN)
    code = last_code(uow_factory, IVAN)
    clock.advance(minutes=5, seconds=1)
    assert check(uow_factory, IVAN, code) == "expired"


def test_three_wrong_codes_kill_it(uow_factory: UowFactory) -> None:
    send(uow_factory, IVAN)
    code = last_code(uow_factory, IVAN)
    assert check(uow_factory, IVAN, other_than(code)) == "wrong"
    assert check(uow_factory, IVAN, "12ab56") == "wrong"  # not digits: wrong, never an error
    assert check(uow_factory, IVAN, other_than(code)) == "exhausted"
    assert check(uow_factory, IVAN, code) == "expired"  # the right code no longer works


def test_code_is_bound_to_its_call_and_purpose(uow_factory: UowFactory) -> None:
    send(uow_factory, IVAN, call="call-A")
    code = last_code(uow_factory, IVAN)
    assert check(uow_factory, IVAN, code, call="call-B") == "expired"
    assert check(uow_factory, IVAN, code, purpose="unlock", call="call-A") == "expired"
    assert check(uow_factory, IVAN, code, call="call-A") == "ok"


def test_a_new_code_retires_the_old_one(uow_factory: UowFactory) -> None:
    send(uow_factory, IVAN)
    first = last_code(uow_factory, IVAN)
    send(uow_factory, IVAN)
    second = last_code(uow_factory, IVAN)
    if first != second:
        assert check(uow_factory, IVAN, first) == "wrong"
    assert check(uow_factory, IVAN, second) == "ok"


def test_codes_per_hour_are_limited(uow_factory: UowFactory, clock: TestClock) -> None:
    for _ in range(otp.MAX_CODES_PER_HOUR):
        assert send(uow_factory, IVAN).status == "ok"
    assert send(uow_factory, IVAN).status == "throttled"
    clock.advance(hours=1, minutes=1)
    assert send(uow_factory, IVAN).status == "ok"


def test_unlock_code_lifts_the_pin_lock(uow_factory: UowFactory) -> None:
    for _ in range(auth.MAX_PIN_FAILURES):
        last = run_op(uow_factory, auth.verify_pin, OLEG, "0000", caller=f"c{_}")
    assert last.status == "locked"
    send(uow_factory, OLEG, purpose="unlock")
    assert check(uow_factory, OLEG, last_code(uow_factory, OLEG), purpose="unlock") == "ok"
    assert run_op(uow_factory, auth.verify_pin, OLEG, "2222", caller="c9").status == "ok"


# --- PIN change ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pin", ["1111", "1234", "4321", "0123", "9876", "890123"])
def test_weak_pins(pin: str) -> None:
    assert auth.weak_pin(pin)


@pytest.mark.parametrize("pin", ["4826", "1235", "2580", "739104"])
def test_acceptable_pins(pin: str) -> None:
    assert not auth.weak_pin(pin)


def test_change_pin(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, MARIA)
    assert run_op(uow_factory, auth.change_pin, sub_id, "4826", "4862").status == "mismatch"
    assert run_op(uow_factory, auth.change_pin, sub_id, "12", "12").status == "invalid"
    assert run_op(uow_factory, auth.change_pin, sub_id, "0000", "0000").status == "weak"
    assert run_op(uow_factory, auth.change_pin, sub_id, "4826", "4826").status == "ok"
    assert run_op(uow_factory, auth.verify_pin, MARIA, "1111").status == "wrong"
    assert run_op(uow_factory, auth.verify_pin, MARIA, "4826").status == "ok"
    with uow_factory() as uow:
        sub = uow.session.get(Subscriber, sub_id)
        assert sub is not None and sub.pin_hash is not None and "4826" not in sub.pin_hash


def test_set_pin_error_does_not_carry_the_pin() -> None:
    with pytest.raises(ValueError) as error:
        auth.set_pin(None, 1, "12x45")  # type: ignore[arg-type]
    assert "12x45" not in str(error.value) and "12x45" not in repr(error.value.args)


# --- actions -----------------------------------------------------------------------------------------


def ctx(factory: UowFactory, call: str = "call-9", **variables: Any) -> ActionContext:
    return ActionContext(call, "operator", "ru", variables, factory, "")


def test_risky_action_refused_without_step_up(uow_factory: UowFactory) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    base = {"subscriber_id": sub_id, "account_id": account_id, "authenticated": True}
    refused = invoke("password.reset", {}, ctx(uow_factory, **base, step_up_required=True))
    assert (refused.status, refused.values.get("reason")) == ("error", "step_up_required")
    sent = invoke("otp.send", {}, ctx(uow_factory, **base, step_up_required=True))
    assert sent.status == "ok" and sent.values["sms_to"] == "4567"
    verified = invoke(
        "otp.verify", {"code": last_code(uow_factory, IVAN)}, ctx(uow_factory, **base, step_up_required=True)
    )
    assert (verified.status, verified.values["otp_verified"]) == ("ok", True)
    done = invoke("password.reset", {}, ctx(uow_factory, **base, step_up_required=True, otp_verified=True))
    assert done.status == "ok"
    # Trusted calls (step_up_required false) need no code.
    assert invoke("number.unblock", {}, ctx(uow_factory, **base, step_up_required=False)).status != "error"


def test_pin_change_needs_strong_authentication(uow_factory: UowFactory) -> None:
    sub_id, _ = demo_ids(uow_factory, IVAN)
    args = {"pin": "4826", "pin_repeat": "4826"}
    trusted_only = ctx(uow_factory, subscriber_id=sub_id, authenticated=True, auth_method="caller_id")
    assert invoke("pin.change", args, trusted_only).status == "not_allowed"
    not_authenticated = ctx(uow_factory, subscriber_id=sub_id, otp_verified=True)
    assert invoke("pin.change", args, not_authenticated).status == "not_allowed"
    with_code = ctx(uow_factory, subscriber_id=sub_id, authenticated=True, otp_verified=True)
    assert invoke("pin.change", args, with_code).status == "ok"
    with_pin = ctx(uow_factory, subscriber_id=sub_id, authenticated=True, auth_method="pin")
    assert invoke("pin.change", {"pin": "5937", "pin_repeat": "5937"}, with_pin).status == "ok"


def test_verify_pin_action_uses_the_callers_bucket(uow_factory: UowFactory) -> None:
    for _ in range(auth.MAX_FAILURES_PER_CALLER):
        invoke(
            "subscriber.verify_pin", {"number": MARIA, "pin": "0000"}, ctx(uow_factory, caller_bucket="b1")
        )
        invoke("subscriber.verify_pin", {"number": OLEG, "pin": "1234"}, ctx(uow_factory, caller_bucket="b1"))
    right = {"number": IVAN, "pin": "1234"}
    assert invoke("subscriber.verify_pin", right, ctx(uow_factory, caller_bucket="b1")).status == "throttled"
    ok = invoke("subscriber.verify_pin", right, ctx(uow_factory, caller_bucket="b2"))
    assert (ok.status, ok.values["auth_method"]) == ("ok", "pin")


def test_otp_send_without_a_subscriber_is_no_phone(uow_factory: UowFactory) -> None:
    assert invoke("otp.send", {}, ctx(uow_factory)).status == "no_phone"


HOSTILE = [
    "12345678901234567890" * 50,
    "12'; DROP TABLE subscriber; --",
    "١٢٣٤",
    "12\n34",
    "%s%n",
    "\x00" * 8,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_secrets_neither_fail_nor_echo(
    uow_factory: UowFactory, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    sub_id, account_id = demo_ids(uow_factory, IVAN)
    base = {"subscriber_id": sub_id, "account_id": account_id, "caller_bucket": "h"}
    with caplog.at_level(logging.DEBUG):
        pin = invoke("subscriber.verify_pin", {"number": IVAN, "pin": value}, ctx(uow_factory, **base))
        number = invoke("subscriber.verify_pin", {"number": value, "pin": "1234"}, ctx(uow_factory, **base))
        invoke("otp.send", {}, ctx(uow_factory, **base))
        code = invoke("otp.verify", {"code": value}, ctx(uow_factory, **base))
        strong = {**base, "authenticated": True, "auth_method": "pin"}
        change = invoke("pin.change", {"pin": value, "pin_repeat": value}, ctx(uow_factory, **strong))
    assert (pin.status, number.status, code.status, change.status) == ("wrong", "unknown", "wrong", "invalid")
    for fragment in (value[:12], "DROP TABLE", "%n"):
        if fragment.strip("\x00"):
            assert fragment not in caplog.text
    assert "Traceback" not in caplog.text


def test_delivered_codes_are_scrubbed_from_the_outbox(uow_factory: UowFactory, clock: TestClock) -> None:
    from ivr.services.outbox import mark_sent, pending

    send(uow_factory, IVAN)
    code = last_code(uow_factory, IVAN)
    assert run_op(uow_factory, otp.scrub_delivered) == 0  # not delivered yet: kept
    with uow_factory(write=True) as uow:
        for sms in pending(uow):
            mark_sent(uow, sms.id)
        uow.commit()
    assert run_op(uow_factory, otp.scrub_delivered) == 0  # delivered, but still usable: kept
    clock.advance(minutes=6)
    assert run_op(uow_factory, otp.scrub_delivered) == 1
    with uow_factory() as uow:
        texts = [t for t in uow.session.scalars(select(SmsOutbox.text).where(SmsOutbox.kind == "otp"))]
    assert texts and all(code not in t and "******" in t for t in texts)
    clock.advance(days=1, minutes=1)
    run_op(uow_factory, otp.scrub_delivered)
    with uow_factory() as uow:
        assert uow.session.scalars(select(OneTimeCode)).all() == []
