"""A complete line on loopback in its own var dir: the project-local Asterisk plus `ivr serve`, a fresh
SQLite database seeded with the demo data, its own free ports and AMI secret. Used by the e2e tests and
scripts/bench_calls.py; a developer can use it to try a change without touching var/.

Prompt audio is shared: the project's var/sounds (rendered by `ivr prompts render` if missing).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.testbed import asterisk

log = logging.getLogger(__name__)


def free_port(*, udp: bool = False) -> int:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int, netns: str | None) -> bool:
    if netns is None:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    # the namespace's own loopback: only a process inside it can connect there
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1).close()"
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", probe]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _wait_port(
    port: int, proc: subprocess.Popen[bytes], stderr: Path, timeout: float = 60.0, netns: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ivr serve exited with {proc.returncode}:\n{stderr.read_text()[-3000:]}")
        if _port_open(port, netns):
            return
        time.sleep(0.1 if netns is None else 0.3)
    raise RuntimeError(f"ivr serve did not listen on {port} in {timeout} s:\n{stderr.read_text()[-3000:]}")


def scrape_metrics(host: str, port: int) -> dict[str, float]:
    """GET /metrics of a running server: sample name with labels -> value."""
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for row in text.splitlines():
        if row and not row.startswith("#"):
            name, _, value = row.rpartition(" ")
            samples[name] = float(value)
    return samples


def missing_pieces() -> list[str]:
    """What a local line needs but this machine lacks (empty: ready)."""
    import shutil

    missing = []
    if shutil.which("sipp") is None:
        missing.append("sipp (Debian package sip-tester)")
    if not asterisk.installed(load_settings()):
        missing.append("Asterisk (scripts/install_asterisk.sh)")
    return missing


@dataclass
class LocalLine:
    settings: Settings
    env: dict[str, str]
    var: Path
    server: subprocess.Popen[bytes] | None = None
    asterisk_boot_seconds: float = 0.0
    server_stderr: list[Path] = field(default_factory=list)
    netns: str | None = None

    def _wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    @classmethod
    def prepare(
        cls,
        var: Path,
        *,
        log_level: str = "INFO",
        database_url: str | None = None,
        rtp_ports: int = 1000,
        max_calls: int | None = None,
        overload_lag: float | None = 1.0,
        extra_env: Mapping[str, str] | None = None,
        seed: bool = True,
        netns: str | None = None,
    ) -> LocalLine:
        """Create the var dir, the seeded database and the settings; render prompts if there are none.
        `database_url`: another database than a fresh SQLite file under `var` (e.g. a PostgreSQL one).
        `rtp_ports`: the size of Asterisk's RTP range (two ports per call). `overload_lag`: by default 1 s
        rather than the line's 0.25 s, so that a test on a busy shared machine is not turned away as busy
        by its neighbours' load (None: the line's own setting; the benchmarks measure with that).
        `extra_env`: more settings as IVR_* variables (e.g. IVR_CALLBACK_POLL). `seed`: False for a
        database another node already migrated and seeded. `netns`: run Asterisk and the server inside
        this network namespace (a node of ivr.testbed.cluster)."""
        rtp_start = 30000 + (os.getpid() % 100) * 50 if rtp_ports <= 1000 else 20000
        (var / "log").mkdir(parents=True, exist_ok=True)
        base = load_settings()
        env = dict(os.environ)
        env.update(
            {
                "IVR_HOME": str(PROJECT_ROOT),
                "IVR_VAR_DIR": str(var),
                "IVR_DATABASE_URL": database_url or f"sqlite:///{var / 'ivr.sqlite3'}",
                "IVR_SOUNDS_DIR": str(base.sounds),
                "IVR_AGI_PORT": str(free_port()),
                "IVR_AMI_PORT": str(free_port()),
                "IVR_METRICS_PORT": str(free_port()),
                "IVR_SIP_PORT": str(free_port(udp=True)),
                "IVR_AMI_SECRET": secrets.token_hex(16),
                "IVR_RTP_START": str(rtp_start),
                "IVR_RTP_END": str(min(65000, rtp_start + rtp_ports)),
                "IVR_ASTERISK_ROOT": str(asterisk.asterisk_paths(base).root),
                "IVR_ASTERISK_ETC": str(var / "asterisk" / "etc"),
                "IVR_LOG_LEVEL": log_level,
            }
        )
        if max_calls is not None:
            env["IVR_MAX_CALLS"] = str(max_calls)
        if overload_lag is not None:
            env["IVR_OVERLOAD_LAG"] = str(overload_lag)
        env.update(extra_env or {})
        if not any(base.sounds.glob("ru/operator/*.wav")):
            cls._ivr(env, "prompts", "render", "--no-progress")
        if seed:
            cls._ivr(env, "db", "init")
        saved = dict(os.environ)
        os.environ.update(env)  # load_settings() reads the environment: the same view as the servers
        try:
            settings = load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return cls(settings=settings, env=env, var=var, netns=netns)

    @staticmethod
    def _ivr(env: dict[str, str], *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "ivr.cli", *args],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    @property
    def server_log(self) -> Path:
        return self.settings.logs / "ivr.log"

    def start(self) -> None:
        _pid, self.asterisk_boot_seconds = asterisk.start(
            self.settings, env=self.env, wrap=("ip", "netns", "exec", self.netns) if self.netns else ()
        )
        try:
            self.start_server()
        except Exception:
            asterisk.stop(self.settings)
            raise

    def stop(self) -> None:
        try:
            self.stop_server()
        finally:
            asterisk.stop(self.settings)

    def start_server(self, *extra_args: str) -> None:
        """Start `ivr serve` (with `extra_args`, e.g. --stats-file) and wait until it listens."""
        stderr = self.var / "log" / f"serve-{len(self.server_stderr)}.stderr"
        self.server_stderr.append(stderr)
        with stderr.open("wb") as err:
            self.server = subprocess.Popen(
                self._wrap([sys.executable, "-m", "ivr.cli", "serve", "--grace", "10", *extra_args]),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=PROJECT_ROOT,
            )
        _wait_port(self.settings.agi_port, self.server, stderr, netns=self.netns)

    def stop_server(self) -> int:
        if self.server is None:
            return 0
        self.server.send_signal(signal.SIGTERM)
        try:
            code = self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            code = self.server.wait()
        self.server = None
        return code

    def log_for(self, uniqueid: str) -> list[str]:
        """Server log lines of one call (every record carries the call's unique id)."""
        text = self.server_log.read_text(encoding="utf-8") if self.server_log.exists() else ""
        return [line for line in text.splitlines() if f"[{uniqueid}]" in line]
