"""A whole cluster on one machine, in network namespaces: Kamailio's dispatcher in front of N nodes (each one
Asterisk and one `ivr serve`), one PostgreSQL that the nodes share, and a namespace for the callers (sipp).
For demos (`scripts/cluster.sh up|down|status`), the e2e tests and scripts/bench_cluster.py; docs/scale-out.md
maps the same pieces onto several real machines.

    host (this namespace)  <prefix>-br   <subnet>.1     the bridge; tests and the console reach the others
    <prefix>-sip           eth0          <subnet>.2     Kamailio, SIP on 5060
    <prefix>-db            eth0          <subnet>.3     PostgreSQL on 5432 (password from <base>/secrets.toml)
    <prefix>-n1 ... nN     eth0          <subnet>.11... Asterisk (SIP 5060, RTP 10000-20000) + ivr serve
                                                        (FastAGI, AMI, AudioSocket on the node's own loopback;
                                                        /metrics on the node's address, port 9464)
    <prefix>-callers       eth0          <subnet>.100   sipp

Every namespace has a veth pair whose other end is on the bridge; nothing is routed, so traffic only goes
to those addresses. `down` kills every process in the namespaces and deletes them and the bridge.

Each node is the line exactly as on one machine (`ivr.testbed.localline.LocalLine`), with its own var dir,
its own prompts/ folder, which follows the versions published in the database (settings
follow_versions), and its own rendered audio (hard links to the project's var/sounds to start with): the
nodes share nothing but PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import PROJECT_ROOT
from ivr.testbed import asterisk
from ivr.testbed.localline import LocalLine, scrape_metrics

log = logging.getLogger(__name__)

KAMAILIO_TEMPLATE = PROJECT_ROOT / "asterisk_conf" / "kamailio" / "kamailio.cfg"
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
SIP_PORT = 5060
PG_PORT = 5432
METRICS_PORT = 9464
_NAME = re.compile(r"[a-z][a-z0-9]{1,6}")  # 7 at most: "<prefix>-callers" is a 15-character link name
_SUBNET = re.compile(r"(10|172\.(1[6-9]|2[0-9]|3[01])|192\.168)(\.[0-9]{1,3}){1,2}")


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class ClusterPlan:
    """Names and addresses of one cluster. `prefix` names its namespaces and links (so a test cluster and a
    demo cluster can run side by side on different prefixes and subnets); `subnet` is the first three
    octets of its private /24."""

    base: Path
    nodes: int = 2
    prefix: str = "ivrc"
    subnet: str = "10.77.0"
    node_timeout_ms: int = 1000  # Kamailio: no provisional reply from a node in this time = node down
    console: bool = False  # also run the staff console on the host (`ivr web`, on the bridge address)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.prefix):
            raise ClusterError(f"prefix {self.prefix!r}: 2-7 lower-case letters and digits")
        if not _SUBNET.fullmatch(self.subnet) or self.subnet.count(".") != 2:
            raise ClusterError(f"subnet {self.subnet!r}: three octets of a private range, e.g. 10.77.0")
        if not 1 <= self.nodes <= 9:
            raise ClusterError("between 1 and 9 nodes")

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def host_ip(self) -> str:
        return f"{self.subnet}.1"

    @property
    def proxy_ip(self) -> str:
        return f"{self.subnet}.2"

    @property
    def db_ip(self) -> str:
        return f"{self.subnet}.3"

    @property
    def callers_ip(self) -> str:
        return f"{self.subnet}.100"

    def node_ip(self, n: int) -> str:
        return f"{self.subnet}.{10 + n}"

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def roles(self) -> list[tuple[str, str]]:
        """(role, address) of every namespace."""
        return [
            ("sip", self.proxy_ip),
            ("db", self.db_ip),
            *((f"n{n}", self.node_ip(n)) for n in range(1, self.nodes + 1)),
            ("callers", self.callers_ip),
        ]

    @property
    def state_file(self) -> Path:
        return self.base / "cluster.json"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def in_ns(ns: str, *argv: str) -> list[str]:
    """argv run inside namespace `ns` (`ip netns exec` replaces itself with the command: same pid)."""
    return ["ip", "netns", "exec", ns, *argv]


def namespaces() -> set[str]:
    out = _ip("netns", "list", check=False).stdout
    return {row.split()[0] for row in out.splitlines() if row.strip()}


def network_up(plan: ClusterPlan) -> None:
    """The bridge (with the host's address) and one namespace per role, each with a veth pair on it."""
    if _ip("link", "show", plan.bridge, check=False).returncode == 0:
        raise ClusterError(f"{plan.bridge} exists: a cluster with prefix {plan.prefix} is up (down it first)")
    _ip("link", "add", plan.bridge, "type", "bridge")
    _ip("addr", "add", f"{plan.host_ip}/24", "dev", plan.bridge)
    _ip("link", "set", plan.bridge, "up")
    for role, address in plan.roles():
        ns = plan.ns(role)
        _ip("netns", "add", ns)
        outside = f"{plan.prefix}-{role}"
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", outside, "master", plan.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")


def kill_namespace(ns: str, sig: int = signal.SIGKILL) -> list[int]:
    """Send `sig` to every process in `ns`; returns their pids."""
    pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def network_down(prefix: str) -> None:
    """Kill what runs in the cluster's namespaces, delete them and the bridge (whatever is left of them)."""
    mine = sorted(ns for ns in namespaces() if ns.startswith(f"{prefix}-"))
    for ns in mine:
        kill_namespace(ns, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        _ip("netns", "pids", ns, check=False).stdout.strip() for ns in mine
    ):
        time.sleep(0.1)
    for ns in mine:
        kill_namespace(ns)
        _ip("netns", "del", ns, check=False)
    _ip("link", "del", f"{prefix}-br", check=False)


# ---- PostgreSQL ------------------------------------------------------------------------------------


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if not found:
        raise ClusterError("PostgreSQL is not installed (Debian package postgresql; scripts/setup.sh)")
    return found[0].parent


def pg_root(prefix: str) -> Path:
    """The server's folder: under the system's temporary folder, because the server runs as the postgres
    user, who may not enter the cluster's base (a test's temporary folder is private to root). A new one
    at every `up`; `down` removes it."""
    return Path(tempfile.gettempdir()) / f"ivr-{prefix}-pg"


def as_postgres(*argv: str) -> list[str]:
    """argv run as the postgres user when we are root (the server refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


def stop_database(prefix: str) -> None:
    """Stop the cluster's PostgreSQL (if its folder is there) and remove the folder."""
    data = pg_root(prefix) / "data"
    if data.exists():
        argv = as_postgres(str(_pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(argv, capture_output=True, timeout=60)
    shutil.rmtree(pg_root(prefix), ignore_errors=True)


def teardown(base: Path, prefix: str) -> None:
    """Whatever is left of the cluster in `base` with `prefix`: the console, PostgreSQL, every process in
    its namespaces, the namespaces and the bridge, its state file."""
    stop_console(base)
    stop_database(prefix)
    network_down(prefix)
    (base / "cluster.json").unlink(missing_ok=True)


@dataclass
class Database:
    plan: ClusterPlan
    password: str

    @property
    def root(self) -> Path:
        return pg_root(self.plan.prefix)

    @property
    def url(self) -> str:
        """The nodes' URL (secret: it holds the password; never logged)."""
        return f"postgresql+psycopg://ivr:{self.password}@{self.plan.db_ip}:{PG_PORT}/ivr"

    def start(self) -> None:
        bin_dir = _pg_bin()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        data = self.root / "data"
        if not data.exists():
            subprocess.run(
                as_postgres(
                    str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
                ),
                check=True, capture_output=True,
            )  # fmt: skip
            with (data / "pg_hba.conf").open("a", encoding="utf-8") as fh:
                fh.write(f"host ivr ivr {self.plan.subnet}.0/24 scram-sha-256\n")
        options = (
            f"-p {PG_PORT} -k {self.root} -c listen_addresses={self.plan.db_ip} -c max_connections=400 "
            "-c shared_buffers=64MB"
        )
        started = subprocess.run(
            in_ns(
                self.plan.ns("db"),
                *as_postgres(
                    str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                    "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
                ),
            ),
            capture_output=True, text=True,
        )  # fmt: skip
        if started.returncode != 0:
            raise ClusterError(f"PostgreSQL did not start: {started.stderr.strip()} (see {self.root})")
        self._psql(
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ivr') THEN "
            f"CREATE ROLE ivr LOGIN PASSWORD '{self.password}'; END IF; END$$"
        )
        exists = self._psql("SELECT 1 FROM pg_database WHERE datname = 'ivr'")
        if "1" not in exists.split():
            self._psql("CREATE DATABASE ivr OWNER ivr")

    def _psql(self, sql: str) -> str:
        result = subprocess.run(
            ["psql", "-h", str(self.root), "-p", str(PG_PORT), "-U", "postgres", "-d", "postgres",
             "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            # the statement may hold the password: say only that it failed, and psql's own words
            raise ClusterError(f"psql failed: {result.stderr.strip().splitlines()[-1:]}")
        return result.stdout

    def stats(self) -> dict[str, int]:
        """The ivr database's counters (pg_stat_database): commits, rollbacks, blocks read and hit,
        tuples returned, fetched, inserted, updated, deleted."""
        row = self._psql(
            "SELECT xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched, "
            "tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = 'ivr'"
        ).strip()
        names = ("commits", "rollbacks", "blocks_read", "blocks_hit", "returned", "fetched", "inserted",
                 "updated", "deleted")  # fmt: skip
        return dict(zip(names, (int(v) for v in row.split("|")), strict=True))


# ---- Kamailio --------------------------------------------------------------------------------------


def render_kamailio(plan: ClusterPlan) -> Path:
    run = plan.base / "kamailio"
    run.mkdir(parents=True, exist_ok=True)
    values = {
        "ADDRESS": plan.proxy_ip,
        "PORT": str(SIP_PORT),
        "MODULES": str(KAMAILIO_MODULES),
        "RUN": str(run),
        "NODE_TIMEOUT_MS": str(plan.node_timeout_ms),
    }
    text = KAMAILIO_TEMPLATE.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.search(r"@@[A-Z_]+@@", text)
    if left:
        raise ClusterError(f"kamailio.cfg: no value for {left.group(0)}")
    (run / "kamailio.cfg").write_text(text, encoding="utf-8")
    # set 1: every node; flags 0, priority 0; the attribute names the node for `status`
    rows = [f"1 sip:{plan.node_ip(n)}:{SIP_PORT} 0 0 node=n{n}\n" for n in range(1, plan.nodes + 1)]
    (run / "dispatcher.list").write_text("".join(rows), encoding="utf-8")
    return run / "kamailio.cfg"


def kamcmd(plan: ClusterPlan, *command: str) -> str:
    socket_path = plan.base / "kamailio" / "kamailio_ctl"
    result = subprocess.run(
        ["kamcmd", "-s", f"unix:{socket_path}", *command], capture_output=True, text=True, timeout=10
    )
    if result.returncode != 0:
        raise ClusterError(f"kamcmd {' '.join(command)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def dispatcher_states(plan: ClusterPlan) -> dict[str, str]:
    """Node address -> Kamailio's flags for it ("AP": active and probed; "IP": inactive, probing)."""
    return parse_dispatcher_list(kamcmd(plan, "dispatcher.list"))


def parse_dispatcher_list(text: str) -> dict[str, str]:
    """`kamcmd dispatcher.list` output -> node address -> flags."""
    states: dict[str, str] = {}
    uri = ""
    for row in text.splitlines():
        row = row.strip()
        if row.startswith("URI:"):
            uri = row.split(":", 1)[1].strip()
        elif row.startswith("FLAGS:") and uri:
            address = uri.removeprefix("sip:").split(":")[0]
            states[address] = row.split(":", 1)[1].strip()
    return states


# ---- the cluster -----------------------------------------------------------------------------------


def own_files(var: Path) -> Path:
    """A node's (or the console's) own prompts/ and sounds under `var`, as on a machine of its own: a copy
    of the project's prompts/, and its rendered audio as hard links to the project's var/sounds (no copy
    of the bytes; rendering replaces files by rename, never writes into one, so a node rendering a new text
    never touches what another node plays). Returns the prompts folder."""
    from ivr.config import load_settings

    prompts = var / "prompts"
    if not prompts.exists():
        shutil.copytree(PROJECT_ROOT / "prompts", prompts)
    sounds = var / "sounds"
    if not sounds.exists():
        var.mkdir(parents=True, exist_ok=True)
        source = str(load_settings().sounds)
        if subprocess.run(["cp", "-al", source, str(sounds)], capture_output=True).returncode != 0:
            # another file system (hard links cannot cross it): a copy, some megabytes
            shutil.rmtree(sounds, ignore_errors=True)
            subprocess.run(["cp", "-a", source, str(sounds)], check=True)
    return prompts


@dataclass
class Cluster:
    plan: ClusterPlan
    db: Database | None = None
    nodes: list[LocalLine] = field(default_factory=list)
    kamailio: subprocess.Popen[bytes] | None = None
    console: subprocess.Popen[bytes] | None = None

    def secrets(self) -> dict[str, str]:
        path = self.plan.base / "secrets.toml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("# The local cluster's secrets (scripts/cluster.sh); keep private.\n")
                fh.write(f'db_password = "{secrets.token_hex(16)}"\n')
        with path.open("rb") as fh:
            return {k: str(v) for k, v in tomllib.load(fh).items()}

    def up(self, *, log_level: str = "INFO", extra_env: dict[str, str] | None = None) -> None:
        """Everything, in order: network, PostgreSQL (migrated and seeded), Kamailio, the nodes."""
        if shutil.which("kamailio") is None:
            raise ClusterError("Kamailio is not installed (Debian package kamailio; scripts/setup.sh)")
        self.plan.base.mkdir(parents=True, exist_ok=True)
        network_up(self.plan)
        self.plan.state_file.write_text(
            json.dumps({"prefix": self.plan.prefix, "subnet": self.plan.subnet, "nodes": self.plan.nodes})
        )
        try:
            self.start_database()
            self.start_kamailio()
            for n in range(1, self.plan.nodes + 1):
                self.start_node(n, log_level=log_level, extra_env=extra_env)
            if self.plan.console:
                self.start_console()
        except BaseException:
            self.down()
            raise

    def start_database(self) -> None:
        from ivr.testbed.demo_data import init_demo

        self.db = Database(self.plan, self.secrets()["db_password"])
        self.db.start()
        init_demo(self.db.url)

    def start_kamailio(self) -> None:
        config = render_kamailio(self.plan)
        run = config.parent
        check = subprocess.run(["kamailio", "-c", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise ClusterError(f"kamailio.cfg does not check: {check.stderr.strip()[-2000:]}")
        logfile = (run / "kamailio.log").open("ab")
        self.kamailio = subprocess.Popen(
            in_ns(
                self.plan.ns("sip"), "kamailio", "-f", str(config), "-DD", "-E", "-m", "64", "-M", "8",
                "-Y", str(run), "-w", str(run), "-P", str(run / "kamailio.pid"),
            ),
            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        logfile.close()
        deadline = time.monotonic() + 20
        while not (run / "kamailio_ctl").exists():
            if self.kamailio.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"Kamailio did not start; see {run / 'kamailio.log'}")
            time.sleep(0.1)

    def node_var(self, n: int) -> Path:
        return self.plan.base / f"n{n}"

    def node_env(self, n: int) -> dict[str, str]:
        ip = self.node_ip(n)
        assert self.db is not None
        return {
            "IVR_NODE_NAME": f"n{n}",
            "IVR_SIP_HOST": ip,
            "IVR_SIP_PORT": str(SIP_PORT),
            "IVR_AGI_PORT": "4573",
            "IVR_AMI_PORT": "5038",
            "IVR_METRICS_HOST": ip,
            "IVR_METRICS_PORT": str(METRICS_PORT),
            "IVR_RTP_START": "10000",
            "IVR_RTP_END": "20000",
            # calls come from the proxy: it is the node's carrier (the caller's number in P-Asserted-Identity)
            "IVR_CARRIER_ADDRESS": self.plan.proxy_ip,
            "IVR_CARRIER_CONTACT": f"sip:{self.plan.proxy_ip}:{SIP_PORT}",
            "IVR_FOLLOW_VERSIONS": "true",
            "IVR_PROMPTS_DIR": str(self.node_var(n) / "prompts"),
            "IVR_SOUNDS_DIR": str(self.node_var(n) / "sounds"),
        }

    def node_ip(self, n: int) -> str:
        return self.plan.node_ip(n)

    def start_node(self, n: int, *, log_level: str = "INFO", extra_env: dict[str, str] | None = None) -> None:
        assert self.db is not None
        var = self.node_var(n)
        own_files(var)
        node = LocalLine.prepare(
            var,
            database_url=self.db.url,
            log_level=log_level,
            seed=False,
            netns=self.plan.ns(f"n{n}"),
            extra_env={**self.node_env(n), **(extra_env or {})},
        )
        node.start()
        if len(self.nodes) >= n:
            self.nodes[n - 1] = node
        else:
            self.nodes.append(node)

    def restart_node(self, n: int) -> None:
        """Start node n again after `kill_node` (same var dir, same settings)."""
        node = self.nodes[n - 1]
        asterisk.stop(node.settings)
        node.start()

    def kill_node(self, n: int) -> list[int]:
        """SIGKILL the node's Asterisk and server at once, as a machine that loses power."""
        pids = kill_namespace(self.plan.ns(f"n{n}"))
        node = self.nodes[n - 1]
        if node.server is not None:
            node.server.wait(timeout=10)
            node.server = None
        return pids

    def start_console(self) -> None:
        assert self.db is not None
        var = self.plan.base / "console"
        prompts = own_files(var)
        # A settings file of its own (it holds the database password: 0600), so that `ivr staff add` can
        # be pointed at the cluster's database: IVR_CONFIG=<base>/console.toml ivr staff add NAME ...
        config = self.plan.base / "console.toml"
        values = {
            "var_dir": str(var),
            "database_url": self.db.url,
            "prompts_dir": str(prompts),
            "web_host": self.plan.host_ip,
            "sounds_dir": str(var / "sounds"),
        }
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# The local cluster's staff console (scripts/cluster.sh); keep private.\n")
            fh.writelines(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        env["IVR_CONFIG"] = str(config)
        (var / "log").mkdir(parents=True, exist_ok=True)
        logfile = (var / "log" / "web.stderr").open("ab")
        self.console = subprocess.Popen(
            [sys.executable, "-m", "ivr.cli", "web"],
            env=env, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
            start_new_session=True,
        )  # fmt: skip
        logfile.close()
        (self.plan.base / "console.pid").write_text(f"{self.console.pid}\n")

    def down(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        if self.console is not None:
            self.console.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.console.wait(timeout=10)
        teardown(self.plan.base, self.plan.prefix)
        if self.kamailio is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.kamailio.wait(timeout=5)

    def metrics(self, n: int) -> dict[str, float]:
        """GET /metrics of node n's server: sample name with labels -> value."""
        return scrape_metrics(self.node_ip(n), METRICS_PORT)


def stop_console(base: Path) -> None:
    pidfile = base / "console.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    pidfile.unlink(missing_ok=True)


# ---- scripts/cluster.sh ----------------------------------------------------------------------------


def status(base: Path) -> tuple[int, str]:
    """What runs of the cluster in `base`: (exit code, text). 0 = every piece up."""
    try:
        state = json.loads((base / "cluster.json").read_text())
    except (OSError, ValueError):
        return 3, "cluster: not up"
    plan = ClusterPlan(base=base, nodes=state["nodes"], prefix=state["prefix"], subnet=state["subnet"])
    rows = [f"cluster {plan.prefix}: {plan.nodes} node(s) on {plan.subnet}.0/24 (bridge {plan.bridge})"]
    ok = True
    try:
        states = dispatcher_states(plan)
        rows.append(f"  kamailio   {plan.proxy_ip}:{SIP_PORT}  up")
    except (ClusterError, OSError, subprocess.TimeoutExpired) as exc:
        states = {}
        ok = False
        rows.append(f"  kamailio   {plan.proxy_ip}:{SIP_PORT}  DOWN ({exc})")
    pg_up = (pg_root(plan.prefix) / "data" / "postmaster.pid").exists()
    ok &= pg_up
    rows.append(f"  postgresql {plan.db_ip}:{PG_PORT}  {'up' if pg_up else 'DOWN'}")
    for n in range(1, plan.nodes + 1):
        ip = plan.node_ip(n)
        flags = states.get(ip, "?")
        try:
            samples = scrape_metrics(ip, METRICS_PORT)
            active = samples.get("ivr_calls_in_progress")
            lines = {
                name.split('"')[1]: value
                for name, value in samples.items()
                if name.startswith("ivr_published_version{")
            }
            published = [f"{line} v{number:g}" for line, number in sorted(lines.items())]
            server = f"server up, {'?' if active is None else f'{active:g}'} call(s)"
            if published:
                server += f", published {', '.join(published)}"
        except (OSError, ValueError):
            server = "server DOWN"
            ok = False
        in_set = {"AP": "in the set", "AX": "in the set", "IP": "OUT (probing)", "DX": "disabled"}.get(
            flags, f"dispatcher {flags}"
        )
        ok &= flags.startswith("A")
        rows.append(f"  node n{n}    {ip}:{SIP_PORT}  {in_set}, {server}")
    console = base / "console.pid"
    if console.exists():
        rows.append(
            f"  console    http://{plan.host_ip}:8480/  (a first account: "
            f"IVR_CONFIG={base / 'console.toml'} .venv/bin/ivr staff add NAME --role admin)"
        )
    return (0 if ok else 1), "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ivr.config import load_settings

    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--prefix", default="ivrc")
    parser.add_argument("--subnet", default="10.77.0")
    parser.add_argument("--base", type=Path, default=None, help="default: var/cluster")
    parser.add_argument("--no-console", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="cluster: %(message)s")
    base = (args.base or load_settings().var / "cluster").resolve()
    if args.command == "status":
        code, text = status(base)
        print(text)
        return code
    if args.command == "down":
        try:
            state = json.loads((base / "cluster.json").read_text())
            prefix = state["prefix"]
        except (OSError, ValueError, KeyError):
            prefix = args.prefix
        teardown(base, prefix)
        print(f"cluster {prefix}: down")
        return 0
    plan = ClusterPlan(
        base=base, nodes=args.nodes, prefix=args.prefix, subnet=args.subnet, console=not args.no_console
    )
    cluster = Cluster(plan)
    cluster.up()
    # the processes outlive this command: `down` finds them by namespace, pid file and data folder
    for node in cluster.nodes:
        node.server = None
    code, text = status(base)
    print(text)
    print(f"calls go to {plan.proxy_ip}:{SIP_PORT} from namespace {plan.ns('callers')} (docs/scale-out.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
