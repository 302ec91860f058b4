"""Complete calls through the real wiring (bootstrap: trees, engine, actions on a seeded SQLite database,
PromptVoice) with a fake Asterisk peer: over FastAGI (TCP on loopback) and over the stdio AGI entry
(`ivr agi` as a child process, pyst2). Fast; no Asterisk needed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest
from fake_asterisk import CallScript, agi_header, run_fake_call
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ivr.app.bootstrap import build_app
from ivr.app.session import CallHandler
from ivr.config import PROJECT_ROOT, Settings
from ivr.db.models import Subscriber
from ivr.telephony.fastagi import FastAgiServer

IVAN = "79161234567"
AGI_COMMAND = re.compile(
    r"^(STREAM FILE|WAIT FOR DIGIT|SET VARIABLE|GET FULL VARIABLE|GET DATA|ANSWER|HANGUP|VERBOSE)\b"
)


def subscriber_id(url: str, msisdn: str) -> str:
    engine = create_engine(url)
    try:
        with DbSession(engine) as db:
            return str(db.scalars(select(Subscriber.id).where(Subscriber.msisdn == msisdn)).one())
    finally:
        engine.dispose()


def test_balance_call_over_fastagi(settings: Settings, demo_db: str) -> None:
    app = build_app(settings)

    async def main() -> CallScript:
        handler = CallHandler(app.session, app.voice, read_timeout=5.0, reload=app.reload)
        server = FastAgiServer(handler, port=0)
        await server.start()
        try:
            header = agi_header("operator?did=0505&trust=yes&roaming=no", caller=IVAN)
            return await run_fake_call(server.port, header, CallScript(keys=["1"]))
        finally:
            await server.shutdown()

    try:
        script = asyncio.run(main())
    finally:
        app.close()
    actions = [value for name, value in script.history if name == "IVR_LAST_ACTION"]
    assert actions[:2] == ["subscriber.identify:found", "balance.report:ok"]
    assert script.variables["IVR_SUBSCRIBER"] == subscriber_id(demo_db, IVAN)
    assert script.variables["IVR_RESULT"] in ("hangup", "transfer")  # after the caller stays silent
    assert any("/ru/operator/" in name for name in script.streamed)


def test_unknown_line_goes_to_the_failure_path(settings: Settings) -> None:
    app = build_app(settings)

    async def main() -> CallScript:
        server = FastAgiServer(CallHandler(app.session, app.voice, read_timeout=5.0), port=0)
        await server.start()
        try:
            return await run_fake_call(server.port, agi_header("nosuchline?did=1"), CallScript())
        finally:
            await server.shutdown()

    try:
        script = asyncio.run(main())
    finally:
        app.close()
    assert script.history == [("IVR_RESULT", "error")]


@pytest.mark.timeout(120)
def test_balance_call_over_stdio_agi(settings: Settings, demo_db: str) -> None:
    env = dict(os.environ)
    env.update(
        {
            "IVR_VAR_DIR": str(settings.var),
            "IVR_DATABASE_URL": demo_db,
            "IVR_SOUNDS_DIR": str(settings.sounds),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "agi", "operator?did=0505&trust=yes&roaming=no"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(agi_header("ivr-agi", caller=IVAN).replace(b"agi_network: yes\n", b""))
    proc.stdin.flush()
    script = CallScript(keys=["1"])
    stray: list[str] = []
    for raw in proc.stdout:
        line = raw.decode().rstrip("\n")
        if not AGI_COMMAND.match(line):
            stray.append(line)
            continue
        proc.stdin.write(script.answer(line).encode() + b"\n")
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait(timeout=30)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert stray == [], f"stdout must carry only AGI commands; stderr: {err.decode()[-2000:]}"
    actions = [value for name, value in script.history if name == "IVR_LAST_ACTION"]
    assert actions[:2] == ["subscriber.identify:found", "balance.report:ok"]
    assert script.variables["IVR_SUBSCRIBER"] == subscriber_id(demo_db, IVAN)
    assert proc.returncode == 0


@pytest.mark.timeout(120)
def test_landline_pin_over_stdio_agi_leaves_no_digits_behind(settings: Settings, demo_db: str) -> None:
    """8-800: number and PIN keyed over the per-call stdio AGI; the PIN is in no output and no log."""
    env = dict(os.environ)
    env.update(
        {
            "IVR_VAR_DIR": str(settings.var),
            "IVR_DATABASE_URL": demo_db,
            "IVR_SOUNDS_DIR": str(settings.sounds),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "agi", "operator?did=88005500500&trust=no&roaming=no"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(agi_header("ivr-agi", caller="74951234567").replace(b"agi_network: yes\n", b""))
    proc.stdin.flush()
    script = CallScript(keys=[*IVAN, *"9731#"])  # a wrong PIN: its digits must appear nowhere
    for raw in proc.stdout:
        proc.stdin.write(script.answer(raw.decode().rstrip("\n")).encode() + b"\n")
        proc.stdin.flush()
        if ("IVR_LAST_ACTION", "subscriber.verify_pin:wrong") in script.history:
            break
    proc.stdin.close()
    proc.wait(timeout=30)
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    assert ("IVR_LAST_ACTION", "subscriber.verify_pin:wrong") in script.history
    logs = err + "".join(p.read_text() for p in settings.logs.glob("*.log"))
    assert "9731" not in logs
    assert "result=57" not in logs  # "9" as pyst2 would have echoed it
