"""The console's report: the same figures as `ivr report`, as tables and charts, and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from console_support import log_in
from starlette.testclient import TestClient

from ivr.config import Settings
from ivr.db.models import IvrCall
from ivr.db.session import make_uow_factory

DAY = dt.date(2026, 11, 20)


def call(n: int, outcome: str, **kw: object) -> IvrCall:
    start = dt.datetime.combine(DAY, dt.time(10)) + dt.timedelta(minutes=n)
    values: dict[str, object] = {
        "call_id": f"r-{n}",
        "line": "operator",
        "caller_key": f"k{n}",
        "tree_version": "2026.12.1",
        "started_at": start,
        "ended_at": start + dt.timedelta(seconds=20),
        "seconds": 20.0,
        "outcome": outcome,
        "result": outcome,
        "nodes": [{"node": "main"}],
        "inputs": [],
        "actions": [],
        "last_node": "main",
    }
    values.update(kw)
    return IvrCall(**values)


def test_the_report_page_shows_the_records_figures_with_charts(
    console: TestClient, console_settings: Settings
) -> None:
    factory = make_uow_factory(console_settings.db_url)
    with factory(write=True) as uow:
        uow.session.add_all(
            [
                call(1, "self_served"),
                call(2, "self_served"),
                call(
                    3,
                    "transferred",
                    transfer_reason="caller_request",
                    queue="operators",
                    queue_result="answered",
                    queue_wait=30.0,
                ),
                call(
                    4,
                    "transferred",
                    transfer_reason="no_input",
                    queue="operators",
                    queue_result="abandoned",
                    queue_wait=90.0,
                ),
                call(5, "abandoned", nodes=[{"node": "main"}, {"node": "balance"}], last_node="balance"),
            ]
        )
        uow.commit()
    factory.dispose()
    log_in(console, "viewer")
    page = console.get(f"/report?since={DAY}&until={DAY}").text
    section = page[page.index('data-line="operator"') :]
    assert re.search(r'class="calls">5<', section)
    assert re.search(r'class="contained">2 \(40.0 %\)', section)
    assert re.search(r'class="transferred">2 \(40.0 %\)', section)
    assert "60 s / 90 s" in section  # queue wait average and longest
    parts = dict(re.findall(r'<rect class="part" data-label="([^"]+)" data-value="(\d+)"', section))
    assert parts == {"contained": "2", "transferred": "2", "abandoned": "1"}
    reasons = dict(
        re.findall(
            r'data-label="([^"]+)" data-value="([\d.]+)" x="190" y="\d+" width="[\d.]+" height="16" '
            r'fill="#2457c5"',
            section,
        )
    )
    assert reasons.get("caller_request") == "1" and reasons.get("no_input") == "1"
    assert 'data-label="balance" data-value="100"' in section  # drop-off: 1 of its 1 visit
    # another period has nothing
    assert 'id="no-calls"' in console.get("/report?since=2026-10-01&until=2026-10-02").text
    rows = list(csv.DictReader(io.StringIO(console.get(f"/report.csv?since={DAY}&until={DAY}").text)))
    line = next(r for r in rows if r["row"] == "line")
    assert (line["calls"], line["contained"], line["queued"], line["average_queue_wait"]) == (
        "5",
        "2",
        "2",
        "60.0",
    )


def test_the_report_needs_a_login(console: TestClient) -> None:
    assert console.get("/report").status_code == 303
    assert console.get("/report.csv").status_code == 303
