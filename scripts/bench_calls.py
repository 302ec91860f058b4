"""Capacity benchmark: real SIP calls through Asterisk into the line, stepped up until something breaks.

Starts a private line (ivr.testbed.localline: temp var dir, seeded SQLite, its own ports, a wide RTP
range), then for each route and each step places N calls with ONE sipp process (ivr.testbed.loadgen) at
`--rate` calls per second. Every call dials 0505, presses 1 once all N are up (the balance), listens, and
hangs up. Each call's outcome is checked through AMI: good = the balance ran (IVR_LAST_ACTION) and no
failure path; busy = the line said it was busy (overload protection).

Routes, side by side in one run:
- `ivr`: our FastAGI server (`ivr serve`), the default route;
- `stdio`: the per-call AGI process (pyst2, `*9` prefix): one Python process per call;
- `floor`: scripts/floor_agi.py, a FastAGI server with no engine and no database: the least possible.

For each step: good / busy / failed calls, calls set up per second, peak concurrency, CPU of Asterisk, of
the server (for `stdio`: the per-call processes) and of sipp per 100 calls, server memory per call, and
our server's key-to-prompt latency (p50/p95/p99, from `ivr serve --stats-file`). A route stops at its
first step with a failed call ("breaks"). `--db-load` runs bonus redemptions on the same database while
the calls run. `--plot` draws CPU and memory against calls (matplotlib).

    .venv/bin/python scripts/bench_calls.py --steps 50,100,200,500,1000 --routes ivr,floor,stdio \
        --plot docs/capacity.png --json /tmp/capacity.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ivr.telephony.ami import CallRecord
from ivr.testbed import asterisk
from ivr.testbed.loadgen import LoadPlan, LoadResult, PlannedCall, run_load
from ivr.testbed.localline import LocalLine, _wait_port

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NUMBERS = {"ivr": "0505", "floor": "0505", "stdio": "*90505"}
# A per-call Python process holds about this much memory; the stdio route is not stepped past what the
# machine's free memory can hold (the step is reported as skipped, with this reason).
STDIO_MB_PER_CALL = 60


def cpu(pid: int, *, children: bool = False) -> float:
    """Seconds of CPU (user + system) of a process; with `children`, also of its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss(threading.Thread):
    """Samples a process's resident memory every 0.2 s; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak


@dataclass
class Step:
    route: str
    calls: int
    good: int = 0
    busy: int = 0
    failed: int = 0
    skipped: str = ""
    wall_s: float = 0.0
    setup_per_s: float = 0.0
    peak_concurrent: int = 0
    asterisk_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    sipp_cpu_s: float = 0.0
    server_idle_mb: float = 0.0
    server_peak_mb: float = 0.0
    key_to_prompt: dict[str, float] = field(default_factory=dict)
    loop_lag_worst_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def per100(self, seconds: float) -> float:
        return 100 * seconds / self.calls

    @property
    def server_ms_per_call(self) -> float:
        return 1000 * self.server_cpu_s / self.calls

    @property
    def mb_per_call(self) -> float:
        return max(0.0, self.server_peak_mb - self.server_idle_mb) / max(1, self.peak_concurrent)


def outcome(record: CallRecord | None) -> str:
    if record is None:
        return "unseen"
    events = {e.get("UserEvent", "") for e in record.user_events}
    if "IVRBusy" in events:
        return "busy"
    if "IVRFailure" in events:
        return "failure path"
    if record.variables.get("IVR_LAST_ACTION") == "balance.report:ok":
        return "good"
    return f"no balance (last action {record.variables.get('IVR_LAST_ACTION', '-')})"


def peak_concurrency(records: list[CallRecord]) -> int:
    marks = sorted(
        [(r.began_at, 1) for r in records if r.began_at] + [(r.ended_at, -1) for r in records if r.ended_at]
    )
    now = peak = 0
    for _t, delta in marks:
        now += delta
        peak = max(peak, now)
    return peak


class Redemptions(threading.Thread):
    """Background database load on the line's own database: a demo member (Tatiana, 79031110001) gets
    300 points and redeems a coffee for them, back to back, each in its own write transaction, as the
    line's bonus.redeem action does."""

    MEMBER = "79031110001"

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.database_url, self.done, self.errors = database_url, 0, 0
        self._halt = threading.Event()

    def run(self) -> None:
        from sqlalchemy import select

        from ivr.db.models import Subscriber
        from ivr.db.session import make_uow_factory
        from ivr.services import bonus

        factory = make_uow_factory(self.database_url)
        with factory() as uow:
            member = uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == self.MEMBER)).one()
            member_id, account_id = member.id, member.account_id
        try:
            while not self._halt.is_set():
                try:
                    with factory(write=True) as uow:
                        bonus.grant_points(uow, account_id, 300)
                        uow.commit()
                    with factory(write=True) as uow:
                        result = bonus.redeem(uow, member_id, reward_code="coffee", key=f"bench:{self.done}")
                        uow.commit()
                    if result.status != "ok":
                        raise RuntimeError(result.status)
                    self.done += 1
                except Exception:
                    self.errors += 1
                    time.sleep(0.01)
        finally:
            factory.dispose()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


class Route:
    """Starts and stops what serves the calls on a route, and says whose CPU is the server's."""

    def __init__(self, name: str, line: LocalLine, work: Path) -> None:
        self.name, self.line, self.work = name, line, work
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats = work / f"{name}-stats.json"

    def start(self) -> int | None:
        self.stats.unlink(missing_ok=True)
        if self.name == "ivr":
            self.line.start_server("--stats-file", str(self.stats))
            assert self.line.server is not None
            return self.line.server.pid
        if self.name == "floor":
            err = (self.work / "floor.stderr").open("wb")
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "floor_agi.py"),
                 "--port", str(self.line.settings.agi_port),
                 "--sounds", str(self.line.settings.sounds), "--stats-file", str(self.stats)],
                stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
            _wait_port(self.line.settings.agi_port, self.proc, self.work / "floor.stderr")
            return self.proc.pid
        return None  # stdio: Asterisk starts one `ivr agi` per call (its CPU is Asterisk's children's)

    def stop(self) -> dict[str, object]:
        if self.name == "ivr":
            self.line.stop_server()
        elif self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None
        if self.stats.exists():
            return dict(json.loads(self.stats.read_text()))
        return {}


def run_step(line: LocalLine, route: Route, calls: int, rate: float, work: Path) -> Step:
    step = Step(route=route.name, calls=calls)
    if route.name == "stdio" and calls * STDIO_MB_PER_CALL > 0.7 * available_mb():
        step.skipped = (
            f"{calls} per-call processes need about {calls * STDIO_MB_PER_CALL / 1024:.0f} GB; "
            f"{available_mb() / 1024:.0f} GB available"
        )
        return step
    ast_pid = asterisk.running_pid(asterisk.asterisk_paths(line.settings))
    assert ast_pid is not None
    server_pid = route.start()
    result: LoadResult | None = None
    try:
        time.sleep(1.0)
        sampler = PeakRss(server_pid) if server_pid else None
        if server_pid:
            step.server_idle_mb = rss_mb(server_pid)
        if sampler:
            sampler.start()
        # Every call presses its key once all of them are up: the step really holds N calls at once.
        plan = LoadPlan(
            number=NUMBERS[route.name],
            calls=[PlannedCall(caller="79161234567", keys="1")] * calls,
            concurrency=calls,
            rate=rate,
            first_wait=4.0 + calls / rate,
            hold=3.0,
        )
        ast_before, kids_before = cpu(ast_pid), cpu(ast_pid, children=True) - cpu(ast_pid)
        srv_before = cpu(server_pid) if server_pid else 0.0
        result = asyncio.run(run_load(line.settings, plan))
        step.asterisk_cpu_s = cpu(ast_pid) - ast_before
        if server_pid:
            step.server_cpu_s = cpu(server_pid) - srv_before
        else:  # stdio: the per-call processes are Asterisk's children
            time.sleep(2.0)  # the last ones exit after their call
            step.server_cpu_s = cpu(ast_pid, children=True) - cpu(ast_pid) - kids_before
        if sampler:
            step.server_peak_mb = sampler.stop()
    finally:
        figures = route.stop()
    step.sipp_cpu_s = result.sipp_cpu
    step.wall_s = result.wall
    kinds = [outcome(o.record) for o in result.outcomes]
    step.good = kinds.count("good")
    step.busy = kinds.count("busy")
    step.failed = calls - step.good - step.busy
    step.failures = sorted({k for k in kinds if k not in ("good", "busy")})
    records = [o.record for o in result.outcomes if o.record is not None]
    starts = sorted(r.began_at for r in records)
    if len(starts) > 1 and starts[-1] > starts[0]:
        step.setup_per_s = (len(starts) - 1) / (starts[-1] - starts[0])
    step.peak_concurrent = peak_concurrency(records)
    latency = figures.get("key_to_prompt")
    if isinstance(latency, dict):
        step.key_to_prompt = {str(k): float(v) for k, v in latency.items()}
    lag = figures.get("loop_lag_worst_s")
    if isinstance(lag, (int, float)):
        step.loop_lag_worst_s = float(lag)
    return step


def table(steps: list[Step]) -> str:
    head = (
        "| route | calls | good | busy | failed | set-up/s | peak up | Asterisk CPU /100 | server CPU /100 "
        "| server ms/call | sipp CPU /100 | server MB/call | key→prompt p50/p95/p99 (+AGI p95) ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    rows = []
    for s in steps:
        if s.skipped:
            rows.append(f"| {s.route} | {s.calls} | skipped: {s.skipped} |||||||||||")
            continue
        k = s.key_to_prompt
        lat = (
            f"{k['p50_ms']:.1f} / {k['p95_ms']:.1f} / {k['p99_ms']:.1f} ({k['whole_p95_ms']:.1f})"
            if k.get("inputs")
            else "-"
        )
        rows.append(
            f"| {s.route} | {s.calls} | {s.good} | {s.busy} | {s.failed} | {s.setup_per_s:.0f} | "
            f"{s.peak_concurrent} | {s.per100(s.asterisk_cpu_s):.2f} s | {s.per100(s.server_cpu_s):.2f} s | "
            f"{s.server_ms_per_call:.1f} | {s.per100(s.sipp_cpu_s):.2f} s | "
            f"{s.mb_per_call:.3f} | {lat} |"
        )
    return "\n".join([head, *rows])


def plot(steps: list[Step], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for route in dict.fromkeys(s.route for s in steps):
        done = [s for s in steps if s.route == route and not s.skipped]
        if not done:
            continue
        xs = [s.calls for s in done]
        left.plot(xs, [s.server_cpu_s for s in done], marker="o", label=f"{route}: server")
        if route == "ivr":
            left.plot(xs, [s.asterisk_cpu_s for s in done], marker="s", ls="--", label="Asterisk")
            left.plot(xs, [s.sipp_cpu_s for s in done], marker="^", ls=":", label="sipp (load)")
            right.plot(xs, [s.server_peak_mb for s in done], marker="o", label="ivr serve peak RSS")
    left.set_xlabel("calls (all up at once)")
    left.set_ylabel("CPU seconds over the step")
    left.set_title("CPU by concurrent calls")
    left.legend(fontsize=8)
    right.set_xlabel("calls (all up at once)")
    right.set_ylabel("MB")
    right.set_title("ivr serve memory")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="50,100,200", help="calls at once, per step (comma-separated)")
    parser.add_argument("--routes", default="ivr", help="ivr, floor, stdio (comma-separated)")
    parser.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    parser.add_argument(
        "--max-calls", type=int, default=0, help="the line's capacity (default: above the steps)"
    )
    parser.add_argument("--db-load", action="store_true", help="bonus redemptions on the database meanwhile")
    parser.add_argument(
        "--database-url",
        help="run the line on this database (e.g. an empty PostgreSQL one; it is migrated and seeded) "
        "instead of a fresh SQLite file",
    )
    parser.add_argument("--keep-going", action="store_true", help="go on after a step with failed calls")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--plot", type=Path, help="write the CPU and memory plot here (PNG)")
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",")]
    routes = args.routes.split(",")
    unknown = set(routes) - set(NUMBERS)
    if unknown:
        parser.error(f"unknown route(s): {', '.join(sorted(unknown))}")
    biggest = max(steps)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    done: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        work = Path(tmp)
        line = LocalLine.prepare(
            work / "var",
            log_level="WARNING",
            overload_lag=None,  # the line's own overload protection, as in production
            database_url=args.database_url,
            rtp_ports=4 * biggest + 100,
            max_calls=args.max_calls or 2 * biggest,
        )
        _pid, asterisk_boot = asterisk.start(line.settings, env=line.env)
        load = Redemptions(line.settings.db_url) if args.db_load else None
        if load:
            load.start()
        try:
            for route_name in routes:
                route = Route(route_name, line, work)
                for calls in steps:
                    step = run_step(line, route, calls, args.rate, work)
                    done.append(step)
                    print(table([step]).splitlines()[-1], flush=True)
                    if step.failures:
                        print(f"  {route_name} at {calls}: {', '.join(step.failures)}", flush=True)
                    if (step.failed or step.skipped) and not args.keep_going:
                        break
        finally:
            if load:
                load.stop()
                print(f"database load: {load.done} redemptions ({load.errors} errors) during the run")
            asterisk.stop(line.settings)
    print(f"\nAsterisk boot {asterisk_boot:.2f} s; {args.rate:g} new calls/s; CPU per 100 calls\n")
    print(table(done))
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in done], indent=2) + "\n")
    if args.plot:
        plot(done, args.plot)
        print(f"plot: {args.plot}")
    return 0 if all(s.failed == 0 for s in done if s.route == "ivr" and not s.skipped) else 1


if __name__ == "__main__":
    raise SystemExit(main())
