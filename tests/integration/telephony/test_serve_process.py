"""`ivr serve` as a real process: it answers a call (fake Asterisk peer, real trees and actions), reloads on
SIGHUP, and exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fake_asterisk import CallScript, agi_header, run_fake_call

from ivr.config import PROJECT_ROOT, load_settings
from ivr.testbed.demo_data import init_demo


def start_serve(env: dict[str, str], *, grace: float) -> tuple[subprocess.Popen[str], int]:
    """`ivr serve` on a free port; returns once it says where it listens (its stderr stays open)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", "0", "--grace", str(grace)],
        env=env,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"FastAGI on 127\.0\.0\.1:(\d+)", line)
        if found:
            return proc, int(found.group(1))
    proc.kill()
    proc.wait()
    raise AssertionError("ivr serve never said where it listens")


@pytest.mark.timeout(120)
def test_serve_answers_reloads_and_stops(tmp_path: Path) -> None:
    var = tmp_path / "var"
    url = f"sqlite:///{tmp_path / 'ivr.sqlite3'}"
    init_demo(url)
    env = dict(os.environ)
    env.update(
        {
            "IVR_VAR_DIR": str(var),
            "IVR_DATABASE_URL": url,
            "IVR_SOUNDS_DIR": str(load_settings().sounds),
            "IVR_AMI_SECRET": "unused",
        }
    )
    proc, port = start_serve(env, grace=5)
    try:
        assert proc.stderr is not None
        header = agi_header("operator?did=0500&trust=yes&roaming=no", caller="79161234567", uniqueid="1.42")
        script = asyncio.run(run_fake_call(port, header, CallScript(keys=["1"])))
        assert ("IVR_LAST_ACTION", "balance.report:ok") in script.history
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    log = (var / "log" / "ivr.log").read_text()
    assert "[1.42] ivr.app.session: action balance.report status=ok" in log
    assert "SIGTERM: stopping" in log and "FastAGI server stopped (served 1 calls" in log
    assert "SIGHUP: reloading trees and texts" in log
    assert "reloaded trees (loyalty,operator)" in log, rest[-2000:]


@pytest.mark.timeout(120)
def test_serve_starts_against_a_database_that_never_answers(tmp_path: Path) -> None:
    """A database port that accepts and never answers once held `ivr serve` at start for minutes, not
    listening and logging nothing. Now it listens within the connect timeout, says why, and a call gets
    the failure path (IVR_RESULT=error: the dialplan's apology and operator)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        var = tmp_path / "var"
        env = dict(os.environ)
        env.update(
            {
                "IVR_VAR_DIR": str(var),
                "IVR_DATABASE_URL": f"postgresql://ivr@127.0.0.1:{silent.getsockname()[1]}/ivr",
                "IVR_DB_CONNECT_TIMEOUT": "1",
                "IVR_SOUNDS_DIR": str(load_settings().sounds),
                "IVR_AMI_SECRET": "unused",
            }
        )
        proc, port = start_serve(env, grace=1)
        try:
            header = agi_header(
                "operator?did=0505&trust=yes&roaming=no", caller="79161234567", uniqueid="1.7"
            )
            script = asyncio.run(run_fake_call(port, header, CallScript(keys=["1"])))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    log = (var / "log" / "ivr.log").read_text()
    assert "database not reachable at start (OperationalError)" in log, log[-3000:]
    assert ("IVR_LAST_ACTION", "subscriber.identify:error") in script.history
    assert script.variables.get("IVR_RESULT") == "transfer"  # the engine's apology, then the operator
