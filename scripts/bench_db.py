"""Domain benchmark: operations per second for balance lookup and bonus redemption on SQLite.

Each operation is one action through `ivr.app.actions.invoke` (its own transaction, as in a call), on a
fresh demo database in a temporary directory. Sequential runs measure latency; threaded runs show what
SQLite's single writer allows when several calls redeem at once.

    .venv/bin/python scripts/bench_db.py [--n 2000] [--threads 4] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select

from ivr.app.actions import ActionContext, invoke
from ivr.db.models import Subscriber
from ivr.db.session import UowFactory, make_uow_factory
from ivr.services import bonus
from ivr.testbed.demo_data import init_demo

NATALIA = "79161110005"


def _ids(factory: UowFactory, msisdn: str) -> tuple[int, int]:
    with factory() as uow:
        sub = uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == msisdn)).one()
        return sub.id, sub.account_id


def _measure(n: int, threads: int, op: Callable[[int], str]) -> tuple[float, float, float]:
    """(operations per second, median ms, 95th percentile ms)."""
    durations: list[float] = []

    def timed(i: int) -> str:
        t0 = time.perf_counter()
        status = op(i)
        durations.append(time.perf_counter() - t0)
        return status

    started = time.perf_counter()
    if threads == 1:
        statuses = [timed(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            statuses = list(pool.map(timed, range(n)))
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if s != "ok"]
    if bad:
        raise SystemExit(f"unexpected statuses: {sorted(set(bad))}")
    durations.sort()
    return n / elapsed, statistics.median(durations) * 1000, durations[int(len(durations) * 0.95)] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="operations per run")
    parser.add_argument("--threads", type=int, default=4, help="threads for the concurrent runs")
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        init_demo(url)
        factory = make_uow_factory(url)
        sub_id, account_id = _ids(factory, NATALIA)
        with factory(write=True) as uow:
            bonus.grant_points(uow, account_id, 200 * 4 * args.n)
            uow.commit()
        base_vars = {"subscriber_id": sub_id, "account_id": account_id}

        def balance(i: int) -> str:
            ctx = ActionContext(f"bench-{i}", "operator", "ru", base_vars, factory)
            return invoke("balance.report", {}, ctx).status

        def redeem(run: str) -> Callable[[int], str]:
            def op(i: int) -> str:
                ctx = ActionContext(f"bench-{i}", "operator", "ru", base_vars, factory, f"{run}:{i}")
                return invoke("bonus.redeem", {"reward_code": "sms50"}, ctx).status

            return op

        rows = [
            ("balance.report", 1, _measure(args.n, 1, balance)),
            ("balance.report", args.threads, _measure(args.n, args.threads, balance)),
            ("bonus.redeem", 1, _measure(args.n, 1, redeem("seq"))),
            ("bonus.redeem", args.threads, _measure(args.n, args.threads, redeem("par"))),
        ]
        factory.dispose()
    backend = url.split(":", 1)[0]
    print(f"backend {backend}, {args.n} operations per run")
    print("| action | threads | ops/s | median ms | p95 ms |\n|---|---:|---:|---:|---:|")
    for name, threads, (ops, median, p95) in rows:
        print(f"| `{name}` | {threads} | {ops:,.0f} | {median:.2f} | {p95:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
