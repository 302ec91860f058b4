"""Every action runs under a time limit: a database that hangs (frozen PostgreSQL, a held SQLite lock) or
an action that never returns once gave callers minutes of silence. Now the caller hears the hold prompt,
then, past the limit, the engine's apology and the operator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ivr.app.session import Session
from ivr.engine.commands import Collect, Command, HangUp, InvokeAction, PromptRef, Transfer
from ivr.engine.events import ActionResult, CallStarted, CallTimeExceeded, Digits, Event, NoInput, Speech

HOLD = PromptRef("please_wait")


class OneAction:
    """Runs one action; reports the result it got and hangs up (or transfers on error, like the engine)."""

    def __init__(self, command: InvokeAction) -> None:
        self.command = command
        self.results: list[ActionResult] = []

    def start(self, event: CallStarted) -> tuple[Any, list[Command]]:
        return {}, [self.command]

    def step(self, state: Any, event: Event) -> tuple[Any, list[Command]]:
        assert isinstance(event, ActionResult)
        self.results.append(event)
        if event.status == "error":
            return state, [Transfer("operators", reason="error")]
        return state, [HangUp()]


class Channel:
    def __init__(self) -> None:
        self.heard: list[str] = []
        self.transferred: list[str] = []

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        self.heard.extend(p.key for p in prompts)
        return ""

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        return NoInput()

    async def set_variable(self, name: str, value: str) -> None:
        return None

    async def set_language(self, language: str) -> None:
        return None

    async def transfer(self, command: Transfer) -> None:
        self.transferred.append(command.queue)

    async def hangup(self, reason: str) -> None:
        return None

    def trace(self, text: str) -> None:
        return None


CALL = CallStarted(line="operator", did="0505", caller_id="79161234567", language="ru", call_id="c1")


def run(command: InvokeAction, invoke: Any) -> tuple[OneAction, Channel, str]:
    engine, channel = OneAction(command), Channel()
    session = Session(engine, channel, invoke, CALL)
    outcome = asyncio.run(session.run())
    return engine, channel, outcome.result


def test_an_action_that_never_answers_ends_in_hold_then_apology_and_operator() -> None:
    release = threading.Event()

    async def stuck(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        await asyncio.to_thread(release.wait, 5)  # a worker blocked on the database
        return ActionResult("ok")

    command = InvokeAction("balance.report", timeout=0.4, hold=HOLD, hold_after=0.05)
    threading.Timer(0.8, release.set).start()  # the database comes back after the caller was served
    engine, channel, result = run(command, stuck)
    assert channel.heard == ["please_wait"]
    assert engine.results == [ActionResult("error", {"reason": "timeout"})]
    assert channel.transferred == ["operators"] and result == "transfer"


def test_a_quick_action_plays_no_hold_prompt() -> None:
    async def quick(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        return ActionResult("ok", {"balance": 1})

    engine, channel, result = run(InvokeAction("balance.report", timeout=5, hold=HOLD, hold_after=1), quick)
    assert channel.heard == [] and engine.results == [ActionResult("ok", {"balance": 1})]
    assert result == "hangup"


def test_a_slow_action_within_its_limit_gets_the_hold_prompt_and_its_result() -> None:
    async def slow(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        await asyncio.sleep(0.2)
        return ActionResult("ok")

    engine, channel, result = run(InvokeAction("balance.report", timeout=5, hold=HOLD, hold_after=0.05), slow)
    assert channel.heard == ["please_wait"] and engine.results == [ActionResult("ok")]
    assert result == "hangup"


def test_an_action_that_raises_is_an_error_result() -> None:
    async def broken(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        raise RuntimeError("bug")

    engine, channel, _ = run(InvokeAction("balance.report", timeout=5, hold=HOLD, hold_after=1), broken)
    assert engine.results == [ActionResult("error")] and channel.transferred == ["operators"]


def test_a_tree_that_only_runs_actions_still_ends_at_the_call_time_limit() -> None:
    """The call-time limit was checked only before asking the caller something: a loop of actions (the
    validator allows one) would never reach it."""

    class ActionLoop:
        def __init__(self) -> None:
            self.timed_out = False

        def start(self, event: CallStarted) -> tuple[Any, list[Command]]:
            return {}, [InvokeAction("balance.report", timeout=5)]

        def step(self, state: Any, event: Event) -> tuple[Any, list[Command]]:
            if isinstance(event, CallTimeExceeded):
                self.timed_out = True
                return state, [HangUp("max_call_time")]
            return state, [InvokeAction("balance.report", timeout=5)]

    now = [0.0]

    async def quick(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        now[0] += 10.0  # each action takes ten seconds of the call
        return ActionResult("ok")

    engine = ActionLoop()
    session = Session(engine, Channel(), quick, CALL, max_call_seconds=60, clock=lambda: now[0])
    outcome = asyncio.run(session.run())
    assert engine.timed_out and outcome.result == "hangup"
    assert len(outcome.actions) == 7  # 0, 10, ... 60 s: the seventh still starts at the limit, then it ends
