"""Operator queues, callbacks and the AMI link, end to end: sipp callers into the real Asterisk, sipp
softphones registered as agents (pjsip.conf agent1/agent2) and a sipp phone behind the carrier trunk that
a callback rings.

- a caller asks for an operator; the registered agent's phone rings with the caller's context in X-IVR-*
  headers (and nothing secret); the wait in the queue reaches the call record and /metrics;
- with nobody logged in, the caller books a callback on their own number; the server places it later
  through AMI: the agent's phone first, then the caller's;
- Asterisk restarts; the server's AMI link logs in again by itself and places callbacks again.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import running_line
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ivr.db.models import CallbackRequest, IvrCall
from ivr.testbed import asterisk, phones
from ivr.testbed.dialer import dial, free_udp_port
from ivr.testbed.localline import LocalLine

pytestmark = [pytest.mark.e2e]

IVAN = "79161234567"  # demo subscriber 1, calls from his own phone (caller ID trusted on 0505)
CARRIER = "127.0.0.2"
CALLEE_PORT = free_udp_port(CARRIER)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLine]:
    extra = {
        "IVR_CARRIER_CONTACT": f"sip:{CARRIER}:{CALLEE_PORT}",
        "IVR_CALLBACK_POLL": "0.5",
        "IVR_CALLBACK_RETRY_AFTER": "2",
        "IVR_CALLBACK_MAX_ATTEMPTS": "10",
        "IVR_CALLBACK_AGENT_WAIT": "20",
    }
    with running_line(tmp_path_factory.mktemp("queues") / "var", extra_env=extra) as local:
        yield local


def secrets_of(line: LocalLine) -> dict[str, str]:
    return asterisk.read_secrets(line.settings)


def rows(line: LocalLine, model: type) -> list:
    engine = create_engine(line.settings.db_url)
    try:
        with DbSession(engine) as db:
            return list(db.scalars(select(model)).all())
    finally:
        engine.dispose()


def metrics(line: LocalLine) -> str:
    url = f"http://127.0.0.1:{line.settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def wait_for(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def header(invite: str, name: str) -> str | None:
    for text in invite.splitlines():
        key, _, value = text.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


async def _agent_session(line: LocalLine, tmp: Path, user: str, **answer: object) -> phones.AnsweringPhone:
    port = free_udp_port()
    await phones.register(line.settings, user, secrets_of(line)[f"{user}_password"], port=port, workdir=tmp)
    return phones.answer(line.settings, user=user, workdir=tmp, port=port, **answer)  # type: ignore[arg-type]


async def _unregister(line: LocalLine, tmp: Path, user: str, port: int) -> None:
    await phones.register(
        line.settings, user, secrets_of(line)[f"{user}_password"], port=port, workdir=tmp, expires=0
    )


def test_the_agent_gets_the_call_with_the_callers_context(line: LocalLine, tmp_path: Path) -> None:
    async def scenario() -> tuple[object, phones.AnsweringPhone, tuple[int, str]]:
        agent = await _agent_session(line, tmp_path / "agent", "agent1")
        try:
            # The menu, then 0: "an operator"; the agent answers; the caller talks 6 s and hangs up.
            call = await dial(line.settings, "0505", caller=IVAN, keys="0", first_wait=3.0, wait=12.0)
            ended = await agent.finished(timeout=30)
        finally:
            await _unregister(line, tmp_path / "agent", "agent1", agent.port)
        return call, agent, ended

    call, agent, (agent_exit, said) = asyncio.run(scenario())
    assert agent_exit == 0, said
    invite = agent.invites()[0]  # the call; a re-INVITE (connected-line update) may follow
    assert header(invite, "X-IVR-Line") == "operator"
    assert header(invite, "X-IVR-DID") == "0505"
    assert header(invite, "X-IVR-Caller") == IVAN
    assert header(invite, "X-IVR-Subscriber") == "1"
    assert header(invite, "X-IVR-Authenticated") == "yes"
    assert header(invite, "X-IVR-Auth") == "caller_id"
    assert header(invite, "X-IVR-Node")  # where the caller left the menu
    assert header(invite, "X-IVR-Reason")
    assert "subscriber.identify:found" in (header(invite, "X-IVR-Tried") or "")
    assert header(invite, "X-IVR-Call") == call.record.uniqueid  # type: ignore[attr-defined]
    for secret in ("pin", "password", "code"):
        assert f"X-IVR-{secret}".lower() not in invite.lower()
    # How long the caller waited reaches the call record and the metrics.
    record = wait_for(
        lambda: next((r for r in rows(line, IvrCall) if r.queue_result == "answered"), None),
        15,
        "the queue wait",
    )
    assert record.outcome == "transferred" and record.queue == "operators"
    assert record.queue_wait is not None and 0 <= record.queue_wait < 15
    assert 'ivr_queue_wait_seconds_count{outcome="answered",queue="operators"} 1.0' in metrics(line)


def test_a_callback_is_booked_then_placed_agent_first(line: LocalLine, tmp_path: Path) -> None:
    before = {r.id for r in rows(line, CallbackRequest)}

    async def book() -> object:
        # Nobody is logged in: "all operators are busy; 1 to be called back" -> 1; "we will call you back on
        # <your number>, 1 if right" -> 1; "an operator will call you back" and the call ends.
        return await dial(
            line.settings, "0505", caller=IVAN, keys="011", first_wait=3.0, gap_ms=5000, wait=8.0
        )

    call = asyncio.run(book())
    assert call.variables.get("IVR_RESULT") == "hangup", call.describe()  # type: ignore[attr-defined]
    (request,) = [r for r in rows(line, CallbackRequest) if r.id not in before]
    assert request.number == IVAN and request.queue == "operators"
    assert request.context.get("subscriber_id") == "1"
    record = next(r for r in rows(line, IvrCall) if r.call_id == request.call_id)
    assert record.result == "callback" and record.outcome == "transferred"

    async def placed() -> tuple[
        phones.AnsweringPhone, phones.AnsweringPhone, tuple[int, str], tuple[int, str]
    ]:
        # The dialer keeps trying while no agent is there; then an agent logs in, and the caller's phone
        # (behind the carrier trunk) is ready to answer: the agent hears ringing, the caller picks up and
        # hangs up 2 s later.
        callee = phones.answer(
            line.settings,
            user="caller",
            workdir=tmp_path / "callee",
            address=CARRIER,
            port=CALLEE_PORT,
            hang_up_ms=2000,
        )
        agent = await _agent_session(line, tmp_path / "agent", "agent2")
        try:
            callee_end = await callee.finished(timeout=60)
            agent_end = await agent.finished(timeout=30)
        finally:
            await _unregister(line, tmp_path / "agent", "agent2", agent.port)
        return agent, callee, agent_end, callee_end

    agent, callee, (agent_exit, agent_said), (callee_exit, callee_said) = asyncio.run(placed())
    assert callee_exit == 0, callee_said
    assert agent_exit == 0, agent_said
    to_agent = agent.invites()[0]
    assert header(
        to_agent,
        "X-IVR-Callback",
    ).startswith(f"{request.id}/")  # type: ignore[union-attr]
    assert header(to_agent, "X-IVR-Caller") == IVAN
    to_caller = callee.invites()[0]
    assert to_caller.startswith(f"INVITE sip:{IVAN}@{CARRIER}")
    assert "0505" in (header(to_caller, "From") or "")
    done = wait_for(
        lambda: next(
            (r for r in rows(line, CallbackRequest) if r.id == request.id and r.status == "done"), None
        ),
        15,
        "the callback to be done",
    )
    assert done.last_result == "answered"
    assert done.attempts >= 1
    # Placed once: no other attempt after the answered one.
    time.sleep(2)
    (again,) = [r for r in rows(line, CallbackRequest) if r.id == request.id]
    assert again.attempts == done.attempts and again.status == "done"


def test_the_ami_link_recovers_after_asterisk_restarts(line: LocalLine) -> None:
    assert "ivr_ami_connected 1.0" in metrics(line)
    logins = _logins(metrics(line))
    asterisk.stop(line.settings)
    wait_for(lambda: "ivr_ami_connected 0.0" in metrics(line), 20, "the link to notice")
    asterisk.start(line.settings, env=line.env)
    wait_for(lambda: _logins(metrics(line)) > logins, 30, "the link to log in again")
    assert "ivr_ami_connected 1.0" in metrics(line)

    # The line serves calls, and the link places callbacks again: one booked now is tried (no agent is
    # logged in after the restart, so the attempt ends "agent_unavailable" and is retried).
    before = {r.id for r in rows(line, CallbackRequest)}
    call = asyncio.run(
        dial(line.settings, "0505", caller="79161110002", keys="011", first_wait=3.0, gap_ms=5000, wait=8.0)
    )
    assert call.variables.get("IVR_RESULT") == "hangup", call.describe()
    (request,) = [r for r in rows(line, CallbackRequest) if r.id not in before]
    tried = wait_for(
        lambda: next(
            (
                r
                for r in rows(line, CallbackRequest)
                if r.id == request.id and r.last_result == "agent_unavailable"
            ),
            None,
        ),
        20,
        "a callback attempt after the restart",
    )
    assert tried.status == "pending" and tried.attempts >= 1


def _logins(text: str) -> float:
    for row in text.splitlines():
        if row.startswith("ivr_ami_logins_total "):
            return float(row.split()[1])
    return 0.0
