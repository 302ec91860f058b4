"""Scale-out benchmark: the local cluster (ivr.testbed.cluster) with 1, 2 and 3 nodes behind Kamailio's
dispatcher, one shared PostgreSQL, and ONE sipp in the callers' namespace (ivr.testbed.cluster_calls).
A script that prints figures, not a test (docs/benchmarks.md, "Scale-out: 1, 2 and 3 nodes behind
Kamailio").

For each number of nodes a cluster is brought up (prefix "ivrb", subnet 10.80.0, so it never collides with
the e2e tests' "ivrt"/10.78.0 or the demo's "ivrc"/10.77.0; base in a temporary folder; always taken down),
warmed up with a few calls, watched idle for a few seconds, then loaded with offered rates stepping up
(`--rates`), each for `--step-seconds` of new calls. Every call dials 0505 as the demo subscriber
79161234567 (caller ID trusted), presses 1 after `--first-wait` s (the balance is read), and hangs up
`--hold` s later: calls of about 6.5 s.

Per step:
- calls placed; share that ended well (sipp: our BYE answered, or the line's BYE answered); share whose
  record in the shared database shows the balance read (`ivr_call.actions`: balance.report ok); callers
  turned away as busy (the nodes' `ivr_calls_busy` counters);
- answer delay, INVITE to 200 OK (sipp's trace), p50 / p95 / max;
- peak concurrent calls: every node's `ivr_calls_in_progress` gauge (GET /metrics), sampled every 0.5 s
  and summed over the nodes;
- where the calls landed (the node in each 200 OK's Contact);
- CPU per call by component: user + system from /proc/<pid>/stat of every process in the component's
  namespace (found as `ip netns pids` does: /proc/<pid>/ns/net against /run/netns/<ns>), sampled every
  0.5 s per pid (a process started during the step counts from zero), from the first call to the end of
  the last: Kamailio (the sip namespace), PostgreSQL (every process of the db namespace), Asterisk and
  `ivr serve` (the nodes' namespaces, told apart by /proc/<pid>/comm and cmdline; summed over the nodes),
  sipp (the callers' namespace); plus the whole machine's busy CPU (/proc/stat) and what is left of it
  for other processes (others = machine - cluster - this script);
- what the single PostgreSQL costs per call: deltas of pg_stat_database for the ivr database (commits,
  rows inserted / updated / fetched, blocks hit / read) divided by calls, and its server connections to
  the ivr database at the end of the step (pg_stat_activity).
A step passes when at least 99 % of its calls ended well and had their balance read, and the answer p95
is at most 1 s. A configuration stops at its first failed step; its highest passed step is its sustained
calls/s, and that step's peak its concurrent calls.

All of it runs on this one machine: every node, Kamailio, PostgreSQL and sipp share its cores; the load
average (/proc/loadavg) and the other processes' CPU are printed before each configuration and per step.

    .venv/bin/python scripts/bench_cluster.py --nodes 1,2,3 --rates 20,30,35,40,45,50 --json /tmp/cluster.json

(about 8-10 minutes; the default rates step from 10 to 60 calls/s.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ivr.testbed.cluster import Cluster, ClusterError, ClusterPlan, dispatcher_states, namespaces
from ivr.testbed.cluster_calls import CallBatch, ClusterCall, run

TICKS = os.sysconf("SC_CLK_TCK")
SUBSCRIBER = "79161234567"  # demo subscriber: 0505 identifies by caller ID, key 1 = the balance
PREFIX = "ivrb"
SUBNET = "10.80.0"
COMPONENTS = ("kamailio", "postgresql", "asterisk", "ivr serve", "sipp")
PASS_SHARE = 0.99
PASS_P95_S = 1.0
PG_FIGURES = ("commits", "inserted", "updated", "fetched", "blocks_hit", "blocks_read")


# ---- CPU of the namespaces' processes ------------------------------------------------------------


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def boot_ticks_now() -> float:
    """Now, in clock ticks since boot (the unit of a process's start time in /proc/<pid>/stat)."""
    return float(Path("/proc/uptime").read_text().split()[0]) * TICKS


def proc_stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds user + system, start time in ticks since boot) of a process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[19])


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Processes:
    """Which cluster component each process belongs to, by its network namespace."""

    def __init__(self, plan: ClusterPlan) -> None:
        self.roles: dict[int, str] = {}  # namespace inode -> role
        for role, _address in plan.roles():
            path = Path("/run/netns") / plan.ns(role)
            with contextlib.suppress(OSError):
                self.roles[path.stat().st_ino] = role

    def component(self, pid: int, role: str) -> str:
        if role == "sip":
            return "kamailio"
        if role == "db":
            return "postgresql"
        if role == "callers":
            return "sipp"
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "other"
        # the project's Asterisk runs through its own loader: comm is the loader's, argv names sbin/asterisk
        if comm == "asterisk" or "sbin/asterisk" in cmdline:
            return "asterisk"
        if "ivr" in cmdline and "serve" in cmdline:
            return "ivr serve"
        return f"other ({comm})"

    def scan(self) -> dict[tuple[int, int], tuple[str, float]]:
        """(pid, start time) -> (component, CPU seconds) of every process in the cluster's namespaces."""
        found: dict[tuple[int, int], tuple[str, float]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                inode = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                continue
            role = self.roles.get(inode)
            if role is None:
                continue
            stat = proc_stat(pid)
            if stat is None:
                continue
            found[(pid, stat[1])] = (self.component(pid, role), stat[0])
        return found


class Watch(threading.Thread):
    """During a step: every 0.5 s, the calls in progress on each node (their /metrics) and the CPU of every
    process in the cluster's namespaces. A process that was running when the watch began counts from its
    CPU then; one that started later counts from zero. (A process that ends between two samples loses at
    most its last 0.5 s: PostgreSQL's backends are the nodes' pooled connections, they live on.)"""

    def __init__(self, cluster: Cluster, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.cluster, self.every = cluster, every
        self.processes = Processes(cluster.plan)
        self.halt = threading.Event()
        self.began_ticks = boot_ticks_now()
        self.first = self.processes.scan()
        self.last = dict(self.first)
        self.components: dict[tuple[int, int], str] = {k: v[0] for k, v in self.first.items()}
        self.peak_calls = 0
        self.samples = 0
        self.missed = 0
        self.busy0, self.own0, self.t0 = machine_busy(), own_cpu(), time.monotonic()
        self.busy1, self.own1, self.t1 = self.busy0, self.own0, self.t0

    def run(self) -> None:
        while not self.halt.wait(self.every):
            self.sample()

    def sample(self) -> None:
        now = 0
        for n in range(1, self.cluster.plan.nodes + 1):
            try:
                now += int(self.cluster.metrics(n).get("ivr_calls_in_progress", 0))
            except OSError:
                self.missed += 1
        self.peak_calls = max(self.peak_calls, now)
        self.samples += 1
        for key, (component, seconds) in self.processes.scan().items():
            self.last[key] = (component, seconds)
            self.components.setdefault(key, component)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.sample()
        self.busy1, self.own1, self.t1 = machine_busy(), own_cpu(), time.monotonic()

    def cpu(self) -> dict[str, float]:
        """CPU seconds per component over the watch."""
        used: dict[str, float] = {}
        for key, (component, seconds) in self.last.items():
            if key in self.first:
                before = self.first[key][1]
            else:
                before = 0.0 if key[1] >= self.began_ticks - TICKS else seconds  # (seen late: no baseline)
            used[component] = used.get(component, 0.0) + max(0.0, seconds - before)
        return used

    @property
    def wall(self) -> float:
        return self.t1 - self.t0

    @property
    def machine(self) -> float:
        return self.busy1 - self.busy0

    @property
    def own(self) -> float:
        return self.own1 - self.own0


# ---- PostgreSQL -------------------------------------------------------------------------------------


def psql_ivr(cluster: Cluster, sql: str) -> str:
    """A query on the ivr database itself, as the postgres user over the server's socket folder."""
    assert cluster.db is not None
    result = subprocess.run(
        ["psql", "-h", str(cluster.db.root), "-p", "5432", "-U", "postgres", "-d", "ivr", "-tA",
         "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if result.returncode != 0:
        raise ClusterError(f"psql: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def pg_connections(cluster: Cluster) -> int:
    assert cluster.db is not None
    return int(cluster.db._psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'ivr'").strip())


def pg_stats(cluster: Cluster) -> dict[str, int]:
    assert cluster.db is not None
    return cluster.db.stats()


def last_record_id(cluster: Cluster) -> int:
    return int(psql_ivr(cluster, "SELECT coalesce(max(id), 0) FROM ivr_call") or 0)


def records_since(cluster: Cluster, after_id: int) -> tuple[int, int, dict[str, int]]:
    """(records, records with the balance read, records per node) written after `after_id`."""
    text = psql_ivr(
        cluster,
        "SELECT node, count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM json_array_elements("
        "actions::json) a WHERE a->>'name' = 'balance.report' AND a->>'status' = 'ok')) "
        f"FROM ivr_call WHERE id > {int(after_id)} GROUP BY node",
    )
    total = balance = 0
    per_node: dict[str, int] = {}
    for row in text.splitlines():
        node, count, good = row.split("|")
        total += int(count)
        balance += int(good)
        per_node[node] = int(count)
    return total, balance, per_node


def unserved(cluster: Cluster, after_id: int) -> dict[str, int]:
    """Records after `after_id` without the balance read, by how they ended: outcome/result, last tree
    node, actions that ran (name:status)."""
    text = psql_ivr(
        cluster,
        "SELECT outcome || '/' || result || ' at ' || last_node || ' [' || coalesce((SELECT string_agg("
        "(a->>'name') || ':' || (a->>'status'), ',') FROM json_array_elements(actions::json) a), '') || ']', "
        "count(*) FROM ivr_call WHERE id > "
        f"{int(after_id)} AND NOT EXISTS (SELECT 1 FROM json_array_elements(actions::json) a WHERE "
        "a->>'name' = 'balance.report' AND a->>'status' = 'ok') GROUP BY 1 ORDER BY 2 DESC LIMIT 6",
    )
    return {row.rsplit("|", 1)[0]: int(row.rsplit("|", 1)[1]) for row in text.splitlines() if "|" in row}


# ---- the steps --------------------------------------------------------------------------------------


@dataclass
class Step:
    nodes: int
    rate: float
    planned: int
    placed: int = 0
    ended_well: int = 0
    balance: int = 0
    records: int = 0
    busy: int = 0
    answer_p50_ms: float = 0.0
    answer_p95_ms: float = 0.0
    answer_max_ms: float = 0.0
    placed_per_s: float = 0.0  # INVITEs sent per second, first to last
    peak_calls: int = 0
    by_node: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    machine_pct: float = 0.0  # busy CPU of the whole machine, % of one core (200 = both cores)
    others_pct: float = 0.0  # of which not the cluster and not this script
    unserved: dict[str, int] = field(default_factory=dict)  # records without the balance, by how they ended
    pg: dict[str, int] = field(default_factory=dict)  # pg_stat_database deltas
    pg_connections: int = 0
    dispatcher: dict[str, str] = field(default_factory=dict)
    sipp_exit: int = 0
    errors: str = ""

    @property
    def ok_share(self) -> float:
        return min(self.ended_well, self.balance) / self.planned if self.planned else 0.0

    @property
    def passed(self) -> bool:
        return self.ok_share >= PASS_SHARE and self.answer_p95_ms <= 1000 * PASS_P95_S

    def ms_per_call(self, component: str) -> float:
        return 1000 * self.cpu_s.get(component, 0.0) / max(1, self.placed)

    def pg_per_call(self, name: str) -> float:
        return self.pg.get(name, 0) / max(1, self.placed)


@dataclass
class Config:
    nodes: int
    loadavg_before: str
    others_before_pct: float
    up_s: float = 0.0
    idle_cpu_pct: dict[str, float] = field(default_factory=dict)  # % of one core per component, idle
    idle_commits_per_s: float = 0.0
    idle_connections: int = 0
    steps: list[Step] = field(default_factory=list)
    error: str = ""

    @property
    def sustained(self) -> Step | None:
        passed = [s for s in self.steps if s.passed]
        return passed[-1] if passed else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def node_names(cluster: Cluster) -> dict[str, str]:
    return {cluster.node_ip(n): f"n{n}" for n in range(1, cluster.plan.nodes + 1)}


def busy_total(cluster: Cluster) -> int:
    total = 0
    for n in range(1, cluster.plan.nodes + 1):
        with contextlib.suppress(OSError):
            total += int(cluster.metrics(n).get("ivr_calls_busy_total", 0))
    return total


def calls_in_progress(cluster: Cluster) -> int:
    total = 0
    for n in range(1, cluster.plan.nodes + 1):
        with contextlib.suppress(OSError):
            total += int(cluster.metrics(n).get("ivr_calls_in_progress", 0))
    return total


def settle(cluster: Cluster, timeout: float = 20.0) -> None:
    """Wait until no node carries a call (the last records are being written), then a second more."""
    deadline = time.monotonic() + timeout
    while calls_in_progress(cluster) and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(1.0)


def place(cluster: Cluster, work: Path, count: int, rate: float, args: argparse.Namespace) -> CallBatch:
    call_s = args.first_wait + 0.5 + args.hold
    concurrency = int(rate * (call_s + 3) * 1.5) + 20
    return run(
        cluster.plan,
        [ClusterCall(SUBSCRIBER, "1") for _ in range(count)],
        work / f"sipp-{time.monotonic_ns()}",
        rate=rate,
        concurrency=concurrency,
        first_wait=args.first_wait,
        hold=args.hold,
        timeout=count / rate + call_s + 60,
    )


def run_step(cluster: Cluster, work: Path, rate: float, args: argparse.Namespace) -> Step:
    count = max(1, round(rate * args.step_seconds))
    step = Step(nodes=cluster.plan.nodes, rate=rate, planned=count)
    first_id = last_record_id(cluster)
    busy_before = busy_total(cluster)
    pg_before = pg_stats(cluster)
    watch = Watch(cluster)
    watch.start()
    try:
        batch = place(cluster, work, count, rate, args)
    finally:
        watch.stop()
    settle(cluster)
    pg_after = pg_stats(cluster)
    step.pg = {k: pg_after[k] - pg_before[k] for k in pg_after}
    step.pg_connections = pg_connections(cluster)
    step.records, step.balance, _per_node = records_since(cluster, first_id)
    if step.balance < step.records:
        step.unserved = unserved(cluster, first_id)
    step.busy = busy_total(cluster) - busy_before
    with contextlib.suppress(ClusterError, OSError, subprocess.TimeoutExpired):
        step.dispatcher = dispatcher_states(cluster.plan)

    traces = batch.traces
    started = sorted(t.started for t in traces if t.started is not None)
    step.placed = len(started)
    if len(started) > 1 and started[-1] > started[0]:
        step.placed_per_s = (len(started) - 1) / (started[-1] - started[0])
    step.ended_well = sum(1 for t in traces if t.ok)
    delays = [
        1000 * (t.answered - t.started) for t in traces if t.answered is not None and t.started is not None
    ]
    unanswered = step.placed - len(delays)
    # a call never answered counts as an infinitely late answer in the percentiles
    delays += [math.inf] * unanswered
    step.answer_p50_ms = percentile(delays, 0.50)
    step.answer_p95_ms = percentile(delays, 0.95)
    step.answer_max_ms = max(delays) if delays else 0.0
    names = node_names(cluster)
    step.by_node = {names.get(ip, ip or "?"): n for ip, n in sorted(batch.by_node().items())}
    step.peak_calls = watch.peak_calls
    step.wall_s = watch.wall
    step.cpu_s = watch.cpu()
    cluster_cpu = sum(step.cpu_s.values())
    step.machine_pct = 100 * watch.machine / watch.wall
    step.others_pct = max(0.0, 100 * (watch.machine - cluster_cpu - watch.own) / watch.wall)
    step.sipp_exit = batch.sipp_exit
    step.errors = batch.errors[-400:]
    return step


def measure_idle(cluster: Cluster, config: Config, seconds: float) -> None:
    pg_before = pg_stats(cluster)
    watch = Watch(cluster, every=1.0)
    watch.start()
    time.sleep(seconds)
    watch.stop()
    pg_after = pg_stats(cluster)
    config.idle_cpu_pct = {k: 100 * v / watch.wall for k, v in watch.cpu().items()}
    config.idle_commits_per_s = (pg_after["commits"] - pg_before["commits"]) / watch.wall
    config.idle_connections = pg_connections(cluster)


def others_pct(seconds: float = 2.0) -> float:
    """The machine's busy CPU over `seconds`, % of one core (no cluster of ours is up then)."""
    before, own_before, t0 = machine_busy(), own_cpu(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    return max(0.0, 100 * (machine_busy() - before - (own_cpu() - own_before)) / wall)


def run_config(nodes: int, rates: list[float], args: argparse.Namespace) -> Config:
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    config = Config(nodes=nodes, loadavg_before=loadavg, others_before_pct=others_pct())
    print(
        f"\n== {nodes} node(s): load average {loadavg} before; other processes "
        f"{config.others_before_pct:.0f} % of one core",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ivr-bench-cluster-") as tmp:
        work = Path(tmp)
        plan = ClusterPlan(base=work / "cluster", nodes=nodes, prefix=PREFIX, subnet=SUBNET)
        cluster = Cluster(plan)
        try:
            began = time.monotonic()
            cluster.up(log_level="WARNING", extra_env={"IVR_OVERLOAD_LAG": f"{args.overload_lag:g}"})
            config.up_s = time.monotonic() - began
            print(f"  up in {config.up_s:.1f} s", flush=True)
            # warm-up: every node answers a few calls (pools filled, prompts read once), not measured
            place(cluster, work, 3 * nodes, 3.0, args)
            settle(cluster)
            measure_idle(cluster, config, args.idle_seconds)
            idle = ", ".join(f"{k} {v:.1f}" for k, v in sorted(config.idle_cpu_pct.items()))
            print(
                f"  idle: CPU % of one core: {idle}; PostgreSQL {config.idle_commits_per_s:.1f} commits/s, "
                f"{config.idle_connections} connections to ivr",
                flush=True,
            )
            print(step_head(), flush=True)
            for rate in rates:
                step = run_step(cluster, work, rate, args)
                config.steps.append(step)
                print(step_row(step), flush=True)
                if step.unserved or step.records < step.placed:
                    why = "; ".join(f"{n} x {k}" for k, n in step.unserved.items())
                    print(f"    {step.records} records; without the balance: {why or '-'}", flush=True)
                if step.errors and not step.passed:
                    print(f"    sipp exit {step.sipp_exit}: {step.errors[-200:]!r}", flush=True)
                if not step.passed:
                    break
        except (ClusterError, OSError, subprocess.SubprocessError) as exc:
            config.error = f"{type(exc).__name__}: {exc}"
            print(f"  failed: {config.error}", flush=True)
        finally:
            cluster.down()
    return config


# ---- tables -----------------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.0f}"


def step_head() -> str:
    cpu = " / ".join(COMPONENTS)
    return (
        "| calls/s offered | placed (per s) | ended well | balance read | busy | answer p50 / p95 / max ms "
        f"| peak up | calls per node | CPU ms/call: {cpu} | machine % (others) | PG commits / ins / upd "
        "/ fetched per call | PG conns | pass |\n"
        "|---:|---|---:|---:|---:|---|---:|---|---|---|---|---:|---|"
    )


def step_row(s: Step) -> str:
    cpu = " / ".join(f"{s.ms_per_call(c):.1f}" for c in COMPONENTS)
    pg = " / ".join(f"{s.pg_per_call(k):.1f}" for k in ("commits", "inserted", "updated", "fetched"))
    spread = " ".join(f"{k}:{v}" for k, v in s.by_node.items()) or "-"
    return (
        f"| {s.rate:g} | {s.placed} ({s.placed_per_s:.1f}) | {100 * s.ended_well / max(1, s.planned):.1f} % "
        f"| {100 * s.balance / max(1, s.planned):.1f} % | {s.busy} | {fmt_ms(s.answer_p50_ms)} / "
        f"{fmt_ms(s.answer_p95_ms)} / {fmt_ms(s.answer_max_ms)} | {s.peak_calls} | {spread} | {cpu} "
        f"| {s.machine_pct:.0f} ({s.others_pct:.0f}) | {pg} | {s.pg_connections} "
        f"| {'yes' if s.passed else '**no**'} |"
    )


def summary(configs: list[Config]) -> str:
    head = (
        "| nodes | load avg before | sustained calls/s | concurrent calls | answer p95 ms | CPU ms per call: "
        "Kamailio / PostgreSQL / Asterisk / ivr serve / sipp | machine % (others) | PostgreSQL per call: "
        "commits / inserted / updated / fetched / blocks hit / CPU ms | PG connections "
        "| first failed step |\n"
        "|---:|---|---:|---:|---:|---|---|---|---:|---|"
    )
    rows = []
    for c in configs:
        best = c.sustained
        failed = next((s for s in c.steps if not s.passed), None)
        why = "-"
        if failed is not None:
            reasons = []
            if failed.ok_share < PASS_SHARE:
                reasons.append(f"{100 * failed.ok_share:.1f} % good")
            if failed.answer_p95_ms > 1000 * PASS_P95_S:
                reasons.append(f"answer p95 {fmt_ms(failed.answer_p95_ms)} ms")
            why = f"{failed.rate:g}/s: " + ", ".join(reasons)
        elif c.error:
            why = c.error[:80]
        if best is None:
            rows.append(f"| {c.nodes} | {c.loadavg_before} | none | - | - | - | - | - | - | {why} |")
            continue
        cpu = " / ".join(f"{best.ms_per_call(k):.1f}" for k in COMPONENTS)
        pg = " / ".join(f"{best.pg_per_call(k):.1f}" for k in PG_FIGURES[:5])
        rows.append(
            f"| {c.nodes} | {c.loadavg_before} | {best.rate:g} | {best.peak_calls} "
            f"| {fmt_ms(best.answer_p95_ms)} | {cpu} | {best.machine_pct:.0f} ({best.others_pct:.0f}) "
            f"| {pg} / {best.ms_per_call('postgresql'):.1f} | {best.pg_connections} | {why} |"
        )
    return "\n".join([head, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="1,2,3", help="cluster sizes to measure (comma-separated)")
    parser.add_argument(
        "--rates", default="10,20,30,35,40,45,50,60", help="offered calls per second, per step"
    )
    parser.add_argument("--step-seconds", type=float, default=15.0, help="seconds of new calls per step")
    parser.add_argument("--first-wait", type=float, default=1.0, help="seconds from the answer to key 1")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the caller listens after key 1")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle watch before the steps")
    parser.add_argument(
        "--overload-lag", type=float, default=0.25,
        help="the nodes' overload_lag (the line's own 0.25 s by default; the e2e tests use 1.0)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("network namespaces need root")
    sizes = [int(n) for n in args.nodes.split(",") if n.strip()]
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if any(ns.startswith(f"{PREFIX}-") for ns in namespaces()):
        parser.error(f"namespaces {PREFIX}-* exist: another bench_cluster run is up (or left over)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(
        f"{os.cpu_count()} CPU(s) shared by every node, Kamailio, PostgreSQL and sipp; calls of "
        f"{args.first_wait:g} s + key 1 + {args.hold:g} s; {args.step_seconds:g} s of new calls per step; "
        f"pass: >= {100 * PASS_SHARE:g} % good and answer p95 <= {PASS_P95_S:g} s",
        flush=True,
    )
    configs = [run_config(n, rates, args) for n in sizes]
    print("\n## Per configuration\n")
    for c in configs:
        print(
            f"\n{c.nodes} node(s) (load average before {c.loadavg_before}; others "
            f"{c.others_before_pct:.0f} %; up in {c.up_s:.0f} s)\n"
        )
        print(step_head())
        for s in c.steps:
            print(step_row(s))
    print("\n## Summary\n")
    print(summary(configs))
    if args.json:
        out = [{**asdict(c), "sustained_rate": c.sustained.rate if c.sustained else None} for c in configs]
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"\nfigures: {args.json}")
    return 0 if all(c.sustained is not None and not c.error for c in configs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
