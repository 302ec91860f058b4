"""README command 1 (scripts/run.sh) keeps the line up: a server that dies is restarted with a back-off
while Asterisk keeps running, so the call in progress gets the failure path (apology, then an operator)
and the next call reaches the new server. A crashed `ivr serve` once took the whole line down: run.sh
stopped Asterisk, cut the apology off after 0.24 s, and restarted nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import require_line_pieces

from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.testbed.dialer import DialResult, dial
from ivr.testbed.localline import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IVAN = "79161234567"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(what: str, ready: object, proc: subprocess.Popen[bytes], seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        if proc.poll() is not None:
            raise AssertionError(f"run.sh exited ({proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {seconds:.0f} s")


@pytest.fixture
def command_one(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Settings, Path]]:
    require_line_pieces()
    base = load_settings()
    var = tmp_path / "var"
    # The installed Asterisk is shared (installing it again would take a download); the rest is private.
    (var / "asterisk").mkdir(parents=True)
    (var / "asterisk" / "root").symlink_to(base.var / "asterisk" / "root")
    for name in ("installed", "mode"):
        if (base.var / "asterisk" / name).exists():
            shutil.copyfile(base.var / "asterisk" / name, var / "asterisk" / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(
        {
            "IVR_VAR_DIR": str(var),
            "IVR_SOUNDS_DIR": str(base.sounds),
            "IVR_AGI_PORT": str(free_port()),
            "IVR_AMI_PORT": str(free_port()),
            "IVR_METRICS_PORT": str(free_port()),
            "IVR_WEB_PORT": str(free_port()),
            "IVR_SIP_PORT": str(free_port(udp=True)),
            "IVR_RTP_START": str(31000 + (os.getpid() % 100) * 40),
            "IVR_RTP_END": str(31000 + (os.getpid() % 100) * 40 + 998),
            "IVR_SKIP_APT": "1",
            "IVR_SKIP_TTS": "1",
        }
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            _wait_for("the secrets file", lambda: (var / "secrets.toml").exists(), proc)
            settings = load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        _wait_for("the FastAGI server", lambda: _listening(settings.agi_port), proc)
        yield proc, settings, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _call(settings: Settings, keys: str, wait: float) -> DialResult:
    return asyncio.run(dial(settings, "0505", caller=IVAN, keys=keys, first_wait=4.0, wait=wait))


def test_a_server_killed_mid_call_is_restarted_and_the_caller_gets_the_failure_path(
    command_one: tuple[subprocess.Popen[bytes], Settings, Path],
) -> None:
    proc, settings, log = command_one
    pidfile = settings.var / "run" / "ivr-serve.pid"
    first_pid = int(pidfile.read_text())

    results: list[DialResult] = []
    calling = threading.Thread(target=lambda: results.append(_call(settings, "1", 3.0)))
    calling.start()
    time.sleep(2.5)  # the call is in the main menu now
    os.kill(first_pid, signal.SIGKILL)
    calling.join(120)
    (cut,) = results
    assert cut.sipp_exit == 0, cut.describe()
    failures = [e for e in cut.user_events if e.get("UserEvent") == "IVRFailure"]
    assert failures, f"the cut call did not get the failure path: {cut.describe()}"
    operators = [e for e in cut.user_events if e.get("UserEvent") == "IVROperator"]
    assert operators, "the apology was cut off before the operator transfer"

    _wait_for(
        "a restarted server",
        lambda: (
            pidfile.exists()
            and pidfile.read_text().strip() not in ("", str(first_pid))
            and _listening(settings.agi_port)
        ),
        proc,
        seconds=60,
    )
    after = _call(settings, "1", 3.0)
    assert after.sipp_exit == 0, after.describe()
    done = [
        value
        for name, value in (after.record.variable_history if after.record else [])
        if name == "IVR_LAST_ACTION"
    ]
    assert "balance.report:ok" in done, after.describe()
    assert "ivr serve died" in log.read_text(encoding="utf-8", errors="replace")
    # Command 1 runs the staff console too, on loopback, and says where
    _wait_for("the staff console", lambda: _listening(settings.web_port), proc)
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/login", timeout=10) as page:
        assert page.status == 200 and b'id="login"' in page.read()
    printed = log.read_text(encoding="utf-8", errors="replace")
    assert (
        f"Staff console (edit, hear, try and publish the menus): http://127.0.0.1:{settings.web_port}/"
        in printed
    )
