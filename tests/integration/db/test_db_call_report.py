"""The report from call records, on SQLite and PostgreSQL: containment (with the 24-hour repeat rule),
transfers and their reasons, abandonment, time in the IVR, and per-node figures, against records whose
figures are known."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ivr.db.models import IvrCall
from ivr.db.session import UowFactory
from ivr.services.reports import call_report

T0 = dt.datetime(2026, 12, 1, 10, 0)


def record(n: int, outcome: str, *, key: str | None, start: dt.timedelta, **kw: Any) -> IvrCall:
    values: dict[str, Any] = {
        "call_id": f"c-{n}",
        "line": "operator",
        "did": "0505",
        "caller_key": key,
        "tree_version": "v1",
        "started_at": T0 + start,
        "ended_at": T0 + start + dt.timedelta(seconds=30),
        "seconds": 30.0,
        "outcome": outcome,
        "result": {"self_served": "caller_hangup", "transferred": "transfer"}.get(outcome, outcome),
        "nodes": [{"node": "main", "at_ms": 0}],
        "inputs": [],
        "actions": [],
        "last_node": "main",
    }
    values.update(kw)
    return IvrCall(**values)


def test_the_report_counts_what_the_records_hold(uow_factory: UowFactory) -> None:
    hour = dt.timedelta(hours=1)
    rows = [
        # A: self-served, called again 2 h later (transferred): not contained
        record(1, "self_served", key="A", start=0 * hour, nodes=[{"node": "main"}, {"node": "balance"}]),
        record(
            2,
            "transferred",
            key="A",
            start=2 * hour,
            transfer_reason="operator",
            queue="operators",
            queue_result="answered",
            queue_wait=40.0,
        ),
        # B: self-served, called again 30 h later: contained (the repeat is outside 24 h)
        record(3, "self_served", key="B", start=0 * hour, seconds=60.0),
        # C: self-served and withheld: contained (cannot be followed)
        record(4, "self_served", key=None, start=1 * hour),
        # abandoned at the balance menu after a no-input and a no-match there
        record(
            5,
            "abandoned",
            key="D",
            start=3 * hour,
            nodes=[{"node": "main"}, {"node": "balance"}],
            last_node="balance",
            inputs=[
                {"node": "balance", "kind": "no_input", "value": ""},
                {"node": "balance", "kind": "no_match", "value": "7"},
            ],
        ),
        record(
            6,
            "transferred",
            key="E",
            start=4 * hour,
            transfer_reason="no_input",
            queue="operators",
            queue_result="abandoned",
            queue_wait=100.0,
        ),
        record(7, "failed", key="F", start=5 * hour),
        # the loyalty line, another tree version: a report of its own
        record(8, "self_served", key="G", start=1 * hour, line="loyalty", tree_version="v9"),
    ]
    with uow_factory(write=True) as uow:
        uow.session.add_all(rows)
        uow.session.add(record(9, "self_served", key="B", start=30 * hour))  # B's later call (next day)
        uow.commit()
    with uow_factory() as uow:
        loyalty, operator = call_report(uow, T0, T0 + 24 * hour)
    assert (loyalty.line, loyalty.tree_version, loyalty.calls) == ("loyalty", "v9", 1)
    assert (operator.line, operator.tree_version) == ("operator", "v1")
    assert operator.calls == 7
    assert (operator.self_served, operator.contained) == (3, 2)  # A called again within 24 h
    assert (operator.transferred, operator.abandoned, operator.failed) == (2, 1, 1)
    assert dict(operator.transfer_reasons) == {"operator": 1, "no_input": 1}
    assert (operator.queued, operator.queue_answered, operator.queue_abandoned) == (2, 1, 1)
    assert (operator.average_queue_wait, operator.queue_wait_longest) == (70.0, 100.0)
    assert loyalty.queued == 0 and loyalty.average_queue_wait == 0.0
    assert operator.average_seconds == (6 * 30.0 + 60.0) / 7
    main, balance = operator.nodes["main"], operator.nodes["balance"]
    assert (main.visits, main.drop_off) == (7, 0)
    assert (balance.visits, balance.drop_off, balance.no_input, balance.no_match) == (2, 1, 1, 1)
    assert balance.rate(balance.drop_off) == 0.5
    with uow_factory() as uow:
        (only,) = call_report(uow, T0, T0 + 24 * hour, line="loyalty")
    assert only.line == "loyalty"
