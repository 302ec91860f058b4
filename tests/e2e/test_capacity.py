"""Capacity on the real line: many calls from ONE sipp process (ivr.testbed.loadgen), each checked through
AMI; and overload protection: past the line's capacity a caller hears "the line is busy" (the dialplan's
[ivr-busy]), whether the dialplan's own count or the server turned the call away, and the call in
progress goes on undisturbed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import running_line, scrape_metrics

from ivr.telephony.ami import CallRecord
from ivr.testbed.loadgen import LoadPlan, PlannedCall, run_load
from ivr.testbed.localline import LocalLine

pytestmark = [pytest.mark.e2e]

IVAN = "79161234567"


def balance_heard(record: CallRecord | None) -> bool:
    return record is not None and record.variables.get("IVR_LAST_ACTION") == "balance.report:ok"


def told_busy(record: CallRecord | None) -> bool:
    return record is not None and any(e.get("UserEvent") == "IVRBusy" for e in record.user_events)


def test_one_sipp_places_every_call_asked_and_each_is_checked(line_stack: LocalLine) -> None:
    plan = LoadPlan(
        number="0505",
        calls=[PlannedCall(IVAN, "1")] * 30,
        concurrency=30,
        rate=30,
        first_wait=3.0,
        hold=1.5,
    )
    result = asyncio.run(run_load(line_stack.settings, plan))
    assert len(result.outcomes) == 30  # the count asked is the count placed
    assert [o for o in result.outcomes if not balance_heard(o.record)] == []
    assert result.sipp_successful == 30 and result.sipp_failed == 0
    assert 0 < result.sipp_cpu < 30  # measured, and one process for all


@pytest.fixture(scope="module")
def small_line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalLine, Path]]:
    """A line whose dialplan takes 2 calls at once, with a server that takes 1."""
    with running_line(tmp_path_factory.mktemp("capacity") / "var", max_calls=2) as line:
        stats = line.var / "serve-stats.json"
        line.stop_server()
        line.start_server("--max-calls", "1", "--stats-file", str(stats))
        yield line, stats


def test_past_capacity_callers_hear_the_line_is_busy_and_the_call_in_progress_goes_on(
    small_line: tuple[LocalLine, Path],
) -> None:
    line, stats = small_line
    plan = LoadPlan(
        number="0505",
        calls=[PlannedCall(IVAN, "1")] * 3,
        concurrency=3,
        rate=4,  # 250 ms apart: the first call holds the server before the second one arrives
        first_wait=3.0,
        hold=1.5,
    )
    result = asyncio.run(run_load(line.settings, plan))
    first, second, third = (o.record for o in result.outcomes)
    assert balance_heard(first)  # undisturbed by the callers turned away
    for record in (second, third):
        assert record is not None and told_busy(record)
        assert record.hangup_cause == 17  # user busy, after the busy message
        assert record.variables.get("IVR_LAST_ACTION") is None  # never reached a menu
    # The second call was turned away by the server (max_calls 1), the third by the dialplan's own count
    # (IVR_MAX_CALLS 2): only the server's refusal sets IVR_RESULT.
    assert second is not None and second.variables.get("IVR_RESULT") == "busy"
    assert third is not None and third.variables.get("IVR_RESULT", "") == ""
    line.stop_server()
    figures = json.loads(stats.read_text())
    assert figures["served"] == 1 and figures["busy"] == 1
    assert figures["key_to_prompt"]["inputs"] >= 1


def scrape(line: LocalLine) -> dict[str, float]:
    return scrape_metrics(line)


def test_metrics_count_the_calls_placed(line_stack: LocalLine) -> None:
    before = scrape(line_stack)
    plan = LoadPlan(number="0505", calls=[PlannedCall(IVAN, "1")] * 3, concurrency=3, rate=10, first_wait=3.0)
    result = asyncio.run(run_load(line_stack.settings, plan))
    assert all(balance_heard(o.record) for o in result.outcomes)
    after = scrape(line_stack)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert grew('ivr_actions_total{action="balance.report",status="ok"}') == 3
    assert grew('ivr_actions_total{action="subscriber.identify",status="found"}') == 3
    # The callers hung up after the balance: three more calls ended that way, each with its duration.
    assert grew('ivr_calls_total{line="operator",outcome="caller_hangup"}') == 3
    assert grew('ivr_call_seconds_count{line="operator"}') == 3
    assert grew("ivr_calls_served_total") == 3
    assert grew("ivr_key_inputs_total") == 3
    assert "ivr_calls_in_progress" in after and "ivr_event_loop_lag_seconds" in after
    assert not any(IVAN in name for name in after)  # no caller's number in any label
