"""A record per call and `ivr report`, end to end: calls placed through Asterisk (some self-served, one
transferred, one hung up in the menu) give exactly those figures in the report, and no record holds a
caller's number in clear."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from collections.abc import Iterator

import pytest
from e2e_support import running_line
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ivr.config import PROJECT_ROOT
from ivr.db.models import IvrCall
from ivr.testbed.loadgen import LoadPlan, PlannedCall, run_load
from ivr.testbed.localline import LocalLine

pytestmark = [pytest.mark.e2e]

IVAN, OLEG, MARIA, SERGEY = "79161234567", "79161110002", "79161110001", "79161110004"


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLine]:
    with running_line(tmp_path_factory.mktemp("report") / "var") as local:
        yield local


def test_the_report_matches_the_calls_placed(line: LocalLine) -> None:
    served_or_sent = [
        PlannedCall(IVAN, "1"),  # the balance, then hangs up: self-served
        PlannedCall(OLEG, "1"),  # the same: self-served
    ]
    plan = LoadPlan(number="0505", calls=served_or_sent, concurrency=2, rate=10, first_wait=3.0, hold=8.0)
    result = asyncio.run(run_load(line.settings, plan))
    # Asks for an operator: transferred. Nobody is logged in, so she is offered a callback, says nothing and
    # joins the queue (she listens long enough to get there).
    asks = LoadPlan(number="0505", calls=[PlannedCall(MARIA, "0")], concurrency=1, first_wait=3.0, hold=24.0)
    result.outcomes += asyncio.run(run_load(line.settings, asks)).outcomes
    # Says nothing and hangs up 4 s in, while the menu plays: abandoned.
    silent = LoadPlan(number="0505", calls=[PlannedCall(SERGEY, "")], concurrency=1, first_wait=2.0, hold=2.0)
    result.outcomes += asyncio.run(run_load(line.settings, silent)).outcomes
    records = {o.planned.caller: o.record for o in result.outcomes}
    assert all(r is not None for r in records.values())
    maria = records[MARIA]
    assert maria is not None
    operator_reason = next(e for e in maria.user_events if e.get("UserEvent") == "IVROperator").get("Reason")
    line.stop_server()  # the records are written before the server exits

    report = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "report", "--csv"],
        env=line.env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(report)))
    (summary,) = [r for r in rows if r["row"] == "line"]
    assert summary["line"] == "operator" and summary["tree_version"]
    counts = {
        k: int(summary[k])
        for k in ("calls", "self_served", "contained", "transferred", "abandoned", "failed")
    }
    assert counts == {
        "calls": 4,
        "self_served": 2,
        "contained": 2,  # four different callers: no repeat call
        "transferred": 1,
        "abandoned": 1,
        "failed": 0,
    }
    reasons = {r["name"]: int(r["transferred"]) for r in rows if r["row"] == "reason"}
    assert reasons == {operator_reason: 1}
    nodes = [r for r in rows if r["row"] == "node"]
    assert sum(int(n["drop_off"]) for n in nodes) == 1
    assert all(int(n["visits"]) >= 1 for n in nodes)

    engine = create_engine(line.settings.db_url)
    try:
        with DbSession(engine) as db:
            stored = list(db.scalars(select(IvrCall)))
    finally:
        engine.dispose()
    assert len(stored) == 4
    by_outcome = sorted(r.outcome for r in stored)
    assert by_outcome == ["abandoned", "self_served", "self_served", "transferred"]
    for r in stored:
        assert r.caller_masked.startswith("7916") and "*" in r.caller_masked
        assert not any(number in repr(r.__dict__) for number in (IVAN, OLEG, MARIA, SERGEY))
        assert r.nodes and r.trust == "caller_id"
    served = [r for r in stored if r.outcome == "self_served"]
    assert all(any(a["name"] == "balance.report" and a["status"] == "ok" for a in r.actions) for r in served)
    line.start_server()
