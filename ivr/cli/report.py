"""CLI: `ivr report`: how the line served its callers over a period, per line and tree version, from the
call records (ivr.services.reports). Text by default, `--csv` for a spreadsheet. When the calls came
from more than one server node (settings.node_name), the calls of each node too."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter
from typing import Any, TextIO

from ivr.config import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="containment, transfers, abandonment, time and per-node figures")
    p.add_argument("--since", help="first day (YYYY-MM-DD, UTC; default: 7 days ago)")
    p.add_argument("--until", help="last day, included (YYYY-MM-DD, UTC; default: today)")
    p.add_argument("--line", help="one line only (operator, loyalty, ...)")
    p.add_argument("--csv", action="store_true", help="CSV on stdout instead of text")
    p.set_defaults(func=cmd_report)


def _day(text: str | None, default: dt.date) -> dt.date:
    if not text:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise SystemExit(f"ivr report: {text!r} is not a date (YYYY-MM-DD)") from exc


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.db.session import make_uow_factory
    from ivr.services.reports import call_report, write_csv

    today = dt.datetime.now(dt.UTC).date()
    first = _day(args.since, today - dt.timedelta(days=7))
    last = _day(args.until, today)
    since = dt.datetime.combine(first, dt.time())
    until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    factory = make_uow_factory(settings.db_url)
    try:
        with factory() as uow:
            reports = call_report(uow, since, until, line=args.line)
    finally:
        factory.dispose()
    if args.csv:
        write_csv(reports, sys.stdout)
    else:
        write_text(reports, first, last, sys.stdout)
    return 0


def _servers(counts: Counter[str]) -> str:
    """`a 120, b 98` by name (a call recorded without a node name, from before nodes: `(unnamed)`)."""
    return ", ".join(f"{name or '(unnamed)'} {count}" for name, count in sorted(counts.items()))


def _pct(part: float) -> str:
    return f"{100 * part:.1f} %"


def write_text(reports: list[Any], first: dt.date, last: dt.date, out: TextIO) -> None:
    from ivr.services.reports import several_servers

    if not reports:
        out.write(f"no calls recorded from {first} to {last}\n")
        return
    by_server = several_servers(reports)
    if by_server:
        total: Counter[str] = Counter()
        for r in reports:
            total.update(r.servers)
        out.write(f"calls by server node, {first} to {last}: {_servers(total)}\n\n")
    for r in reports:
        out.write(f"{r.line} (tree {r.tree_version or '?'}), {first} to {last}: {r.calls} calls\n")
        if by_server:
            out.write(f"  by server node: {_servers(r.servers)}\n")
        for label, count in (
            ("contained", r.contained),
            ("self-served", r.self_served),
            ("transferred", r.transferred),
            ("abandoned", r.abandoned),
            ("failed", r.failed),
        ):
            out.write(f"  {label:<12} {count:>6}  {_pct(r.share(count)):>8}\n")
        out.write(f"  average time in the IVR: {r.average_seconds:.1f} s\n")
        if r.transfer_reasons:
            reasons = ", ".join(f"{k} {v}" for k, v in r.transfer_reasons.most_common())
            out.write(f"  transfers by reason: {reasons}\n")
        if r.queued:
            out.write(
                f"  operator queues: {r.queued} calls, {r.queue_answered} answered, "
                f"{r.queue_abandoned} gave up waiting; wait {r.average_queue_wait:.1f} s on average, "
                f"{r.queue_wait_longest:.1f} s at most ({r.queue_waits} known)\n"
            )
        out.write(f"  {'node':<28} {'visits':>7} {'drop-off':>16} {'no-input':>16} {'no-match':>16}\n")
        for node, f in sorted(r.nodes.items(), key=lambda item: (-item[1].visits, item[0])):
            cells = [f"{n} ({_pct(f.rate(n))})" for n in (f.drop_off, f.no_input, f.no_match)]
            out.write(f"  {node:<28} {f.visits:>7} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}\n")
        out.write("\n")
