"""How well the line serves its callers, from the call records (`ivr_call`, written by ivr.app.records).

For a period, per line and per tree version:
- containment: calls that ended self-served and whose caller did not call again within 24 h (recognised by
  the keyed caller hash; a withheld caller cannot be followed and counts as contained when self-served);
- transfer rate and its reasons; abandonment; failures; the average time in the IVR;
- per node: visits (every time a caller entered it), drop-off (abandoned calls that ended there), no-input
  and no-match (inputs at the node the engine did not get or did not take), each also as a rate of the
  node's visits;
- the operator queues: calls that joined one, answered by an agent, given up while waiting, and the wait
  (average and longest) of those whose wait is known (ivr.app.callbacks.QueueWaits records it);
- per server node (`ivr_call.node`, settings.node_name of the node that answered): calls, for a line
  served by several nodes over one database. `several_servers` says whether more than one node name
  appears (a single machine records "", and the breakdown would only repeat the total).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import select

from ivr.db.models import IvrCall
from ivr.db.session import UnitOfWork

REPEAT_WINDOW = dt.timedelta(hours=24)


@dataclass
class NodeFigures:
    visits: int = 0
    drop_off: int = 0
    no_input: int = 0
    no_match: int = 0

    def rate(self, count: int) -> float:
        return count / self.visits if self.visits else 0.0


@dataclass
class LineReport:
    line: str
    tree_version: str
    calls: int = 0
    self_served: int = 0
    contained: int = 0
    transferred: int = 0
    abandoned: int = 0
    failed: int = 0
    seconds: float = 0.0  # in all
    transfer_reasons: Counter[str] = field(default_factory=Counter)
    nodes: dict[str, NodeFigures] = field(default_factory=dict)
    queued: int = 0  # calls that reached an operator queue
    queue_answered: int = 0
    queue_abandoned: int = 0
    queue_waits: int = 0  # calls whose wait is known
    queue_wait_seconds: float = 0.0  # in all
    queue_wait_longest: float = 0.0
    servers: Counter[str] = field(default_factory=Counter)  # calls by server node ("" = unnamed)

    @property
    def average_queue_wait(self) -> float:
        return self.queue_wait_seconds / self.queue_waits if self.queue_waits else 0.0

    def share(self, count: int) -> float:
        return count / self.calls if self.calls else 0.0

    @property
    def average_seconds(self) -> float:
        return self.seconds / self.calls if self.calls else 0.0

    def node(self, node_id: str) -> NodeFigures:
        return self.nodes.setdefault(node_id, NodeFigures())


def call_report(
    uow: UnitOfWork, since: dt.datetime, until: dt.datetime, *, line: str | None = None
) -> list[LineReport]:
    """The reports of calls started in [since, until), one per (line, tree version), in that order."""
    query = select(IvrCall).where(IvrCall.started_at >= since, IvrCall.started_at < until)
    if line:
        query = query.where(IvrCall.line == line)
    calls = list(uow.session.scalars(query.order_by(IvrCall.started_at, IvrCall.id)))
    later = _calls_by_caller(uow, calls, until)
    reports: dict[tuple[str, str], LineReport] = {}
    for call in calls:
        report = reports.get((call.line, call.tree_version))
        if report is None:
            report = reports[(call.line, call.tree_version)] = LineReport(call.line, call.tree_version)
        _count(report, call, later)
    return [reports[key] for key in sorted(reports)]


def several_servers(reports: list[LineReport]) -> bool:
    """More than one server node name among the calls of these reports: worth a per-node breakdown."""
    return len({server for r in reports for server in r.servers}) > 1


def _calls_by_caller(
    uow: UnitOfWork, calls: list[IvrCall], until: dt.datetime
) -> dict[str, list[dt.datetime]]:
    """Start times of every call (in the period and the 24 h after it) by caller hash."""
    keys = sorted({c.caller_key for c in calls if c.caller_key and c.outcome == "self_served"})
    found: dict[str, list[dt.datetime]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = uow.session.execute(
            select(IvrCall.caller_key, IvrCall.started_at).where(
                IvrCall.caller_key.in_(chunk), IvrCall.started_at < until + REPEAT_WINDOW
            )
        )
        for key, started in rows:
            found.setdefault(str(key), []).append(started)
    return found


def _count(report: LineReport, call: IvrCall, later: dict[str, list[dt.datetime]]) -> None:
    report.calls += 1
    report.servers[call.node or ""] += 1
    report.seconds += call.seconds
    if call.outcome == "self_served":
        report.self_served += 1
        again = call.caller_key and any(
            call.ended_at < t <= call.ended_at + REPEAT_WINDOW for t in later.get(call.caller_key, ())
        )
        if not again:
            report.contained += 1
    elif call.outcome == "transferred":
        report.transferred += 1
        report.transfer_reasons[call.transfer_reason or "none"] += 1
    elif call.outcome == "abandoned":
        report.abandoned += 1
        if call.last_node:
            report.node(call.last_node).drop_off += 1
    else:
        report.failed += 1
    if call.queue:
        report.queued += 1
        if call.queue_result == "answered":
            report.queue_answered += 1
        elif call.queue_result == "abandoned":
            report.queue_abandoned += 1
        if call.queue_wait is not None:
            report.queue_waits += 1
            report.queue_wait_seconds += call.queue_wait
            report.queue_wait_longest = max(report.queue_wait_longest, call.queue_wait)
    for entry in call.nodes or ():
        report.node(str(entry.get("node", ""))).visits += 1
    for entry in call.inputs or ():
        kind = entry.get("kind")
        if kind in ("no_input", "no_match"):
            figures = report.node(str(entry.get("node", "")))
            if kind == "no_input":
                figures.no_input += 1
            else:
                figures.no_match += 1


# ---- CSV (ivr report --csv and the console) --------------------------------------------------------

CSV_COLUMNS = (
    "row", "line", "tree_version", "name", "calls", "contained", "self_served", "transferred", "abandoned",
    "failed", "average_seconds", "queued", "queue_answered", "queue_abandoned", "average_queue_wait",
    "longest_queue_wait", "visits", "drop_off", "no_input", "no_match",
)  # fmt: skip


def write_csv(reports: list[LineReport], out: TextIO) -> None:
    """One `line` row per line and tree version, then a `reason` row per transfer reason, a `server` row
    per server node (its calls; only when more than one node name appears) and a `node` row per node of
    the tree."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    by_server = several_servers(reports)
    for r in reports:
        base = {"line": r.line, "tree_version": r.tree_version}
        writer.writerow(
            {
                **base,
                "row": "line",
                "calls": r.calls,
                "contained": r.contained,
                "self_served": r.self_served,
                "transferred": r.transferred,
                "abandoned": r.abandoned,
                "failed": r.failed,
                "average_seconds": f"{r.average_seconds:.1f}",
                "queued": r.queued,
                "queue_answered": r.queue_answered,
                "queue_abandoned": r.queue_abandoned,
                "average_queue_wait": f"{r.average_queue_wait:.1f}",
                "longest_queue_wait": f"{r.queue_wait_longest:.1f}",
            }
        )
        for reason, count in sorted(r.transfer_reasons.items()):
            writer.writerow({**base, "row": "reason", "name": reason, "transferred": count})
        if by_server:
            for server, count in sorted(r.servers.items()):
                writer.writerow({**base, "row": "server", "name": server, "calls": count})
        for node, f in sorted(r.nodes.items()):
            writer.writerow(
                {
                    **base,
                    "row": "node",
                    "name": node,
                    "visits": f.visits,
                    "drop_off": f.drop_off,
                    "no_input": f.no_input,
                    "no_match": f.no_match,
                }
            )
