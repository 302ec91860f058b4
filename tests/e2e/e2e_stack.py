"""Helpers of the e2e fixture: free ports and the running line (Asterisk + `ivr serve`)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import PROJECT_ROOT, Settings


def free_port(*, udp: bool = False) -> int:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ivr serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"ivr serve did not listen on {port} in {timeout} s:\n{log.read_text()[-3000:]}")


@dataclass
class LineStack:
    settings: Settings
    env: dict[str, str]
    var: Path
    server: subprocess.Popen[bytes] | None = None
    boot_seconds: float = 0.0
    server_logs: list[Path] = field(default_factory=list)

    @property
    def server_log(self) -> Path:
        return self.settings.logs / "ivr.log"

    def start_server(self) -> None:
        stderr = self.var / "log" / f"serve-{len(self.server_logs)}.stderr"
        self.server_logs.append(stderr)
        with stderr.open("wb") as err:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "ivr.cli", "serve", "--grace", "10"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=PROJECT_ROOT,
            )
        _wait_port(self.settings.agi_port, self.server, stderr)

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
