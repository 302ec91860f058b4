"""Several server nodes, one PostgreSQL: each node's call-record writer marks its records with its node
name (settings.node_name), they land in one table at the same time, and `ivr report` counts the calls
of each node, showing the breakdown only when more than one node name appears."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from multinode import Nodes

from ivr.app.records import CallRecords, CallTrace, call_record
from ivr.cli.report import write_text
from ivr.db.session import UowFactory, utcnow
from ivr.engine.events import CallStarted
from ivr.services.reports import LineReport, call_report, several_servers, write_csv

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_kind", ["postgresql"])]


def _calls(writer: CallRecords, node: str, count: int, start: threading.Barrier) -> None:
    start.wait()
    for i in range(count):
        line = "operator" if i % 3 else "loyalty"
        call = CallStarted(line=line, did="0505", caller_id="79161234567", call_id=f"{node}-{i}.7")
        result = "transfer" if i % 4 == 0 else "hangup"
        writer.submit(
            call_record(
                call, CallTrace(), result=result, reason="operator", queue="operators", subscriber_id="",
                seconds=12.0, key="k",
            )
        )  # fmt: skip
    writer.close()


def _report(factory: UowFactory) -> list[LineReport]:
    now = utcnow()
    with factory() as uow:
        return list(call_report(uow, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)))


def test_records_of_two_nodes_make_one_report_with_calls_per_node(nodes: Nodes) -> None:
    writers = (CallRecords(nodes[0], "k", node="node-a"), CallRecords(nodes[1], "k", node="node-b"))
    counts = {"node-a": 30, "node-b": 21}
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_calls, args=(writer, name, counts[name], start))
        for writer, name in zip(writers, counts, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [w.written for w in writers] == [30, 21] and [w.lost for w in writers] == [0, 0]

    reports = _report(nodes[0])
    assert several_servers(reports)
    by_line = {r.line: r for r in reports}
    assert dict(by_line["operator"].servers) == {"node-a": 20, "node-b": 14}
    assert dict(by_line["loyalty"].servers) == {"node-a": 10, "node-b": 7}
    assert sum(r.calls for r in by_line.values()) == 51

    text = io.StringIO()
    write_text(reports, dt.date(2026, 12, 1), dt.date(2026, 12, 7), text)
    assert "calls by server node, 2026-12-01 to 2026-12-07: node-a 30, node-b 21" in text.getvalue()
    assert "  by server node: node-a 20, node-b 14" in text.getvalue()
    table = io.StringIO()
    write_csv(reports, table)
    assert "server,operator,,node-a,20," in table.getvalue()
    assert "server,loyalty,,node-b,7," in table.getvalue()


def test_one_machine_shows_no_breakdown(nodes: Nodes) -> None:
    writer = CallRecords(nodes[0], "k")  # node_name "" on a single machine
    _calls(writer, "single", 5, threading.Barrier(1))
    reports = _report(nodes[1])
    assert [dict(r.servers) for r in reports] == [{"": 2}, {"": 3}]
    assert not several_servers(reports)
    text = io.StringIO()
    write_text(reports, dt.date(2026, 12, 1), dt.date(2026, 12, 7), text)
    assert "server node" not in text.getvalue()
    table = io.StringIO()
    write_csv(reports, table)
    assert "\nserver," not in table.getvalue()
