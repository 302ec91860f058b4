"""One call: runs the pure engine over a CallChannel, invokes actions, and guarantees an ending.

Whatever goes wrong (the engine raises, an action fails, the database is down), the caller hears an
apology and is transferred to an operator: never dead air. A hang-up at any moment stops the loop;
actions run in their own transaction in a worker thread, so a hang-up during one never leaves half an
operation (it either commits whole or rolls back whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ivr.app.queueing import CALLBACK, BookCallback, QueuePolicy, enter_queue
from ivr.app.records import CallTrace
from ivr.engine.commands import (
    Collect,
    Command,
    HangUp,
    InvokeAction,
    Play,
    PromptRef,
    SetLanguage,
    SetVariable,
    Transfer,
)
from ivr.engine.events import ActionResult, CallStarted, CallTimeExceeded, Event
from ivr.logs import call_id_var
from ivr.telephony.agi import AgiRequest
from ivr.telephony.agi_channel import AgiChannel, PromptFiles
from ivr.telephony.channel import CallChannel, ChannelFailed, ChannelHungUp, render_collected
from ivr.telephony.fastagi import call_from_request

log = logging.getLogger(__name__)

ERROR_PROMPT = "error_apology"
# The step between the menu and the operator queue, as the call record names it (not a tree node).
QUEUE_STEP = "queue"

# Called with the action command and the call's variables; returns the result. Runs the domain code (in a
# worker thread, see bootstrap). Must not raise for domain errors; may raise for bugs.
ActionInvoker = Callable[[InvokeAction, Mapping[str, Any]], Awaitable[ActionResult]]


class DialogEngine(Protocol):
    def start(self, event: CallStarted) -> tuple[Any, list[Command]]: ...

    def step(self, state: Any, event: Event) -> tuple[Any, list[Command]]: ...


@dataclass
class CallOutcome:
    # hangup | transfer | callback (booked instead of queueing) | caller_hangup | error | cancelled (shutdown)
    result: str = "hangup"
    queue: str = ""
    reason: str = ""
    actions: list[str] = field(default_factory=list)  # "name:status" in order
    subscriber_id: str = ""
    # "abandoned": the caller hung up while being put into the queue (place and wait said, callback
    # offered): the IVR had already decided to transfer, so the call still counts as transferred.
    queue_result: str = ""


@dataclass
class Session:
    engine: DialogEngine
    channel: CallChannel
    invoke: ActionInvoker
    call: CallStarted
    operator_queue: str = "operators"
    max_call_seconds: float = 900.0
    # Time limit for an action whose command carries none (trees always give one: the line's setting).
    action_timeout: float = 6.0
    clock: Callable[[], float] = time.monotonic
    outcome: CallOutcome = field(default_factory=CallOutcome)
    # The call's record as it goes (ivr.app.records); None keeps none.
    trace: CallTrace | None = None
    state: Any = None  # the engine's last state
    # Joining the operator queue (ivr.app.queueing): place and wait said, a callback offered. None: the
    # transfer goes straight to the dialplan.
    queue_policy: QueuePolicy | None = None
    book_callback: BookCallback | None = None
    # The prompts of the set the call started with (ivr.prompts.voice.VoiceView, from
    # LineApp.session): CallHandler gives them to the AGI channel, so the call plays that version's texts
    # and audio to its end. None: the channel keeps the voice it was built with.
    prompts: PromptFiles | None = None

    async def run(self) -> CallOutcome:
        token = call_id_var.set(self.call.call_id or "-")
        started = self.clock()
        log.info(
            "call started line=%s did=%s caller=%s lang=%s",
            self.call.line,
            self.call.did,
            self.call.caller_id or "withheld",
            self.call.language,
        )
        try:
            await self._loop(started)
        except asyncio.CancelledError:
            # The server is stopping and the grace period is over: not the caller's doing.
            self.outcome.result = "cancelled"
            self.outcome.reason = "server_shutdown"
            raise
        except ChannelHungUp:
            if self.outcome.queue_result == "abandoned":
                log.info("caller hung up while joining queue %s", self.outcome.queue)
            else:
                self.outcome.result = "caller_hangup"
                log.info("caller hung up")
        except (TimeoutError, ChannelFailed, OSError) as exc:
            self.outcome.result = "error"
            self.outcome.reason = type(exc).__name__
            log.warning("channel failed: %s", type(exc).__name__)
        except Exception:
            log.exception("call failed; apologising and transferring")
            await self._fail_safe()
        finally:
            log.info(
                "call ended result=%s queue=%s actions=%s seconds=%.1f",
                self.outcome.result,
                self.outcome.queue or "-",
                ",".join(self.outcome.actions) or "-",
                self.clock() - started,
            )
            call_id_var.reset(token)
        return self.outcome

    async def _loop(self, started: float) -> None:
        state, commands = self.engine.start(self.call)
        self.state = state
        trace = self.trace
        if trace is not None:
            trace.enter(str(getattr(state, "node", "")))
        typed_ahead = ""
        while True:
            event: Event | None = None
            for command in commands:
                if isinstance(command, Play):
                    if typed_ahead:  # the caller already answered: skip the rest, as barge-in promises
                        continue
                    typed_ahead = await self.channel.play(command.prompts, barge_in=command.barge_in)
                elif isinstance(command, SetVariable):
                    await self.channel.set_variable(command.name, command.value)
                elif isinstance(command, SetLanguage):
                    await self.channel.set_language(command.language)
                elif isinstance(command, Collect):
                    if self.clock() - started > self.max_call_seconds:
                        event = CallTimeExceeded()
                        break
                    collected = await self.channel.collect(command, typed_ahead)
                    typed_ahead = ""
                    log.info("input %s", render_collected(command, collected))
                    if trace is not None:
                        trace.input(str(getattr(state, "node", "")), command, collected)
                    event = collected
                    break
                elif isinstance(command, InvokeAction):
                    # Checked here too: a tree may run actions back to back without asking the caller.
                    if self.clock() - started > self.max_call_seconds:
                        event = CallTimeExceeded()
                        break
                    event = await self._invoke(command, state)
                    break
                elif isinstance(command, Transfer):
                    await self._transfer(command)
                    return
                elif isinstance(command, HangUp):
                    self.outcome.result = "hangup"
                    self.outcome.reason = command.reason
                    log.info("hangup reason=%s", command.reason)
                    await self.channel.hangup(command.reason)
                    return
            if event is None:
                # The engine gave nothing to wait on: a tree bug the validator should have caught.
                raise RuntimeError("engine returned no waiting command")
            no_match = getattr(state, "no_match", 0)
            state, commands = self.engine.step(state, event)
            self.state = state
            if trace is not None:
                if getattr(state, "no_match", 0) > no_match:
                    trace.no_match()
                trace.enter(str(getattr(state, "node", "")))

    async def _invoke(self, command: InvokeAction, state: Any) -> ActionResult:
        variables: Mapping[str, Any] = getattr(state, "vars", {}) or {}
        began = self.clock()
        result = await self._result_in_time(command, variables)
        if self.trace is not None:
            self.trace.action(command.name, result.status, self.clock() - began)
        self.outcome.actions.append(f"{command.name}:{result.status}")
        log.info("action %s status=%s", command.name, result.status)
        await self.channel.set_variable("IVR_LAST_ACTION", f"{command.name}:{result.status}")
        subscriber = result.values.get("subscriber_id") if result.values else None
        if subscriber is not None and str(subscriber) != self.outcome.subscriber_id:
            self.outcome.subscriber_id = str(subscriber)
            await self.channel.set_variable("IVR_SUBSCRIBER", str(subscriber))
        return result

    async def _result_in_time(self, command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        """The action's result, or status "error" when it fails or runs past its time limit. While it runs
        the caller is not left in silence: the hold prompt plays after `hold_after` seconds."""
        task = asyncio.ensure_future(self.invoke(command, variables))
        limit = command.timeout or self.action_timeout
        began = self.clock()
        try:
            if command.hold is not None and command.hold_after is not None and command.hold_after < limit:
                done, _ = await asyncio.wait({task}, timeout=command.hold_after)
                if not done:
                    log.info(
                        "action %s still running after %.1f s: hold prompt", command.name, command.hold_after
                    )
                    await self.channel.play((command.hold,), barge_in=False)
            left = max(0.0, limit - (self.clock() - began))
            done, _ = await asyncio.wait({task}, timeout=left)
            if not done:
                log.warning(
                    "action %s gave no result within %.1f s: apology and operator", command.name, limit
                )
                # The action's own transaction commits whole or not at all; its late result is logged.
                task.add_done_callback(_late_result(command.name))
                return ActionResult(status="error", values={"reason": "timeout"})
            return task.result()
        except asyncio.CancelledError:
            task.cancel()
            raise
        except (ChannelHungUp, ChannelFailed):
            task.add_done_callback(_late_result(command.name))
            raise
        except Exception:
            log.exception("action %s raised", command.name)
            return ActionResult(status="error")

    async def _transfer(self, command: Transfer) -> None:
        self.outcome.result = "transfer"
        self.outcome.queue = command.queue or self.operator_queue
        self.outcome.reason = command.reason
        context = dict(command.context)
        if self.outcome.actions:  # what the caller tried, so the operator does not ask again
            context["tried"] = ",".join(self.outcome.actions[-6:])
        if self.queue_policy is not None and command.reason not in self.queue_policy.direct_reasons:
            trace = self.trace
            if trace is not None:
                trace.enter(QUEUE_STEP)  # the report's "queue" row: what callers did there (no input, ...)

            def heard(asked: Collect, collected: Any) -> None:
                log.info("input %s", render_collected(asked, collected))
                if trace is not None:
                    trace.input(QUEUE_STEP, asked, collected)

            try:
                choice = await enter_queue(
                    self.channel,
                    self.outcome.queue,
                    caller_id=self.call.caller_id or "",
                    context=context,
                    policy=self.queue_policy,
                    book=self.book_callback,
                    on_input=heard,
                )
            except ChannelHungUp:
                self.outcome.queue_result = "abandoned"
                raise
            if choice == CALLBACK:
                self.outcome.result = "callback"
                log.info("callback booked queue=%s reason=%s", self.outcome.queue, command.reason or "-")
                await self.channel.hangup("callback")
                return
        log.info("transfer queue=%s reason=%s", self.outcome.queue, command.reason or "-")
        await self.channel.transfer(
            Transfer(queue=self.outcome.queue, reason=command.reason, context=context)
        )

    async def _fail_safe(self) -> None:
        """Apology and operator, whatever state the call is in. Errors here are logged, not raised."""
        self.outcome.result = "error"
        try:
            await self.channel.play((PromptRef(ERROR_PROMPT),), barge_in=False)
        except Exception:  # the apology audio itself may be what failed; the transfer still matters
            log.warning("could not play the apology")
        try:
            await self.channel.transfer(Transfer(queue=self.operator_queue, reason="error"))
            self.outcome.queue = self.operator_queue
        except Exception:
            log.warning("could not transfer after an error")


def _late_result(name: str) -> Callable[[asyncio.Future[ActionResult]], None]:
    """Logs how an action the caller stopped waiting for ended (it may still have committed)."""

    def report(task: asyncio.Future[ActionResult]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        status = "raised" if error is not None else task.result().status
        log.warning("action %s finished after the caller stopped waiting: %s", name, status)

    return report


class CallHandler:
    """The application's side of both AGI entries (`ivr.telephony.fastagi.AgiCallHandler`): a Session for
    each call from `session_factory` (`ivr.app.bootstrap.LineApp.session`; tests pass doubles), run to its
    end, with the call id on every log record."""

    def __init__(
        self,
        session_factory: Callable[[CallStarted, CallChannel], Session],
        voice: PromptFiles,
        *,
        default_language: str = "ru",
        read_timeout: float = 30.0,
        reload: Callable[[], None] | None = None,
        on_call_end: Callable[[Session, float], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        # Told of each finished call and how long it took (metrics, the call's record).
        self.on_call_end = on_call_end
        self.voice = voice
        self.default_language = default_language
        self.read_timeout = read_timeout
        self.reload = reload

    def _report(self, session: Session, seconds: float) -> None:
        if self.on_call_end is None:
            return
        try:
            self.on_call_end(session, seconds)
        except Exception:  # a metric must never end a call badly
            log.exception("call-end hook failed")

    async def run_call(self, request: AgiRequest, channel: AgiChannel) -> CallOutcome | None:
        call = call_from_request(request, self.default_language)
        token = call_id_var.set(call.call_id or "-")
        log.info(
            "agi request line=%s did=%s trust=%s roaming=%s",
            call.line,
            call.did,
            "yes" if call.facts.get("caller_id_trusted") else "no",
            "yes" if call.facts.get("roaming") else "no",
        )
        try:
            try:
                session = self.session_factory(call, channel)
            except LookupError:
                log.error("no line %r (did=%s): sending the caller to the failure path", call.line, call.did)
                with contextlib.suppress(ChannelFailed, ChannelHungUp, OSError):
                    await channel.publish_error()
                return None
            # The service-number table may have chosen another line than the dialplan named: prompts come
            # from the line that actually runs, in the version of its texts the call started with.
            channel.line = session.call.line
            if session.prompts is not None:
                channel.voice = session.prompts
            # A broken channel is not asked for anything more: with IVR_RESULT unset the dialplan takes
            # its failure path (apology, operator) by itself.
            began = time.monotonic()
            try:
                outcome = await session.run()
            except asyncio.CancelledError:
                self._report(session, time.monotonic() - began)
                raise
            self._report(session, time.monotonic() - began)
            return outcome
        finally:
            call_id_var.reset(token)
