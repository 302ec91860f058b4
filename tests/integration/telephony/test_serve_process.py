"""`ivr serve` as a real process: it answers a call (fake Asterisk peer, real trees and actions), reloads on
SIGHUP, and exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fake_asterisk import CallScript, agi_header, run_fake_call

from ivr.config import PROJECT_ROOT, load_settings
from ivr.testbed.demo_data import init_demo


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", "0", "--grace", "5"],
        env=env,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:
            found = re.search(r"FastAGI on 127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "ivr serve never said where it listens"
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
