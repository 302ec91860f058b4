"""The carrier trunk template (asterisk_conf/pjsip.conf, [carrier]): a call is taken as the carrier's by
its source address, not by a user name, and the caller's number comes from P-Asserted-Identity when the
carrier sends one, else from From. A call from an unknown address whose From carries a number is still
refused ("No matching endpoint"): only the carrier's address is trusted."""

from __future__ import annotations

import asyncio

import pytest

from ivr.telephony.ami import CallRecord
from ivr.testbed import asterisk
from ivr.testbed.loadgen import LoadPlan, PlannedCall, run_load
from ivr.testbed.localline import LocalLine

pytestmark = [pytest.mark.e2e]

IVAN = "79161234567"
CARRIER = "127.0.0.2"  # settings.carrier_address by default: the tests' stand-in for a carrier


def place(line: LocalLine, *, source_ip: str, caller_in: str) -> list[CallRecord | None]:
    plan = LoadPlan(
        number="0505",
        calls=[PlannedCall(IVAN, "1")],
        concurrency=1,
        first_wait=3.0,
        hold=1.0,
        source_ip=source_ip,
        caller_in=caller_in,
        timeout=30.0,
    )
    result = asyncio.run(run_load(line.settings, plan))
    return [o.record for o in result.outcomes]


def test_a_carrier_call_with_the_number_in_from_reaches_the_subscriber(line_stack: LocalLine) -> None:
    assert line_stack.settings.carrier_address == CARRIER
    (record,) = place(line_stack, source_ip=CARRIER, caller_in="from")
    assert record is not None
    assert record.caller_num == IVAN
    assert record.variables.get("IVR_SUBSCRIBER") == "1"  # identified by caller ID, as on 0505
    assert record.variables.get("IVR_LAST_ACTION") == "balance.report:ok"


def test_a_carrier_call_with_p_asserted_identity_is_taken_from_it(line_stack: LocalLine) -> None:
    (record,) = place(line_stack, source_ip=CARRIER, caller_in="pai")  # From is "tester", PAI the number
    assert record is not None
    assert record.caller_num == IVAN
    assert record.variables.get("IVR_LAST_ACTION") == "balance.report:ok"


def test_a_call_from_an_unknown_address_is_refused_whatever_its_from_says(line_stack: LocalLine) -> None:
    (record,) = place(line_stack, source_ip="127.0.0.3", caller_in="from")
    assert record is None  # Asterisk made no channel: "No matching endpoint"
    log = (asterisk.asterisk_paths(line_stack.settings).base / "log" / "messages.log").read_text(
        errors="replace"
    )
    assert "No matching endpoint found" in log
