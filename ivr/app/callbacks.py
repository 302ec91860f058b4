"""Placing callbacks, and noting how long callers waited in the operator queues: `ivr serve`'s AMI side.

`CallbackDialer` polls the database every `callback_poll` seconds for due callback requests
(ivr.services.callbacks), claims them (one server wins each claim), and places each through AMI Originate:
a Local channel whose second half waits in the request's queue for an agent (dialplans/ivr.conf,
[ivr-callback-agent]); once an agent answers, the first half dials the caller ([ivr-callback-caller]). The
agent's phone shows the caller's context in the same X-IVR-* headers as a live transfer, with
X-IVR-Callback set. How it went comes back from AMI:
- the Originate fails (no agent answered in `callback_agent_wait`) -> retried later;
- UserEvent IVRCallback Stage: caller, Status: ANSWER -> done; any other status -> retried later;
after `callback_max_attempts` the request fails. While AMI is down nothing is claimed.

`QueueWaits` turns the queue's own events (AgentConnect, QueueCallerAbandon) into the call record's
`queue_wait` and the `ivr_queue_wait_seconds` metric.

None of this runs on a call's path: the event handlers only start tasks; database work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from ivr.config import Settings
from ivr.db.models import IvrCall
from ivr.services import callbacks
from ivr.services.callbacks import CallbackJob
from ivr.telephony.agi_channel import context_variables
from ivr.telephony.ami import AmiLink

log = logging.getLogger(__name__)

ACTION_PREFIX = "ivr-cb-"  # ActionID of a callback's Originate: ivr-cb-<request>-<attempt>
# A claim whose outcome never came back is given up (never redialled) after this long.
STALE_AFTER = 900.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


class CallbackDialer:
    def __init__(
        self,
        uow_factory: Callable[..., Any],
        ami: AmiLink,
        settings: Settings,
        *,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        if "{number}" not in settings.callback_dial or any(c in settings.callback_dial for c in "\r\n,"):
            raise ValueError(f"callback_dial {settings.callback_dial!r}: a dial string with {{number}}")
        self.uow_factory = uow_factory
        self.ami = ami
        self.settings = settings
        self.on_result = on_result
        self.worker = worker_name()
        self.placing: dict[int, CallbackJob] = {}  # by request id, until its outcome is known
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="callback-dialer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)

    async def _run(self) -> None:
        rounds = 0
        while True:
            try:
                if self.ami.connected:
                    if rounds % 60 == 0:
                        await asyncio.to_thread(self._expire)
                    rounds += 1
                    jobs = await asyncio.to_thread(self._claim)
                    for job in jobs:
                        await self._place(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a while; try again next round
                log.exception("callback round failed")
            await asyncio.sleep(self.settings.callback_poll)

    def _claim(self) -> list[CallbackJob]:
        with self.uow_factory(write=True) as uow:
            return callbacks.claim_due(uow, worker=self.worker)

    def _expire(self) -> None:
        with self.uow_factory(write=True) as uow:
            lost = callbacks.expire_lost_claims(uow, stale_after=STALE_AFTER)
        if lost:
            log.warning("%d callbacks lost their outcome and were given up (never placed twice)", lost)

    async def _place(self, job: CallbackJob) -> None:
        dial = self.settings.callback_dial.replace("{number}", job.number)
        # The same context as a live transfer's (X-IVR-* headers on the agent's phone), with the callback's
        # own facts over it.
        context = {
            **job.context,
            "line": job.line,
            "did": job.did,
            "caller": job.number,
            "callback": f"{job.id}/{job.attempt}",
        }
        variables = {
            "IVR_CALLBACK_ID": str(job.id),
            "IVR_CALLBACK_DIAL": dial,
            "IVR_CALLBACK_FROM": job.did,
            "IVR_CALLBACK_RING": str(int(self.settings.callback_ring)),
            "IVR_CALLBACK_AGENT_WAIT": str(int(self.settings.callback_agent_wait)),
            "CHANNEL(language)": job.language,
            **context_variables(context),
        }
        fields = {
            "Channel": f"Local/{job.queue}@ivr-callback-agent",
            "Context": "ivr-callback-caller",
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int((self.settings.callback_agent_wait + 15) * 1000)),
            "CallerID": f'"Callback" <{job.did}>',
            "ActionID": f"{ACTION_PREFIX}{job.id}-{job.attempt}",
            "Variable": [f"{k}={v.replace(',', ' ')}" for k, v in variables.items() if v],
        }
        self.placing[job.id] = job
        log.info("callback %d attempt %d: finding an agent in %s", job.id, job.attempt, job.queue)
        task = asyncio.get_running_loop().create_task(self._originate(job, fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _originate(self, job: CallbackJob, fields: dict[str, Any]) -> None:
        outcome = await self.ami.originate(fields, timeout=self.settings.callback_agent_wait + 30)
        if outcome == "failure":
            self._finish(job.id, "agent_unavailable")
        elif outcome == "refused":
            self._finish(job.id, "ami_error")
        # success: an agent answered; the caller's leg reports itself (UserEvent IVRCallback). unknown: the
        # events may still come; if they never do, the claim is given up as lost, never redialled.

    def on_event(self, name: str, event: dict[str, str]) -> None:
        if name == "UserEvent" and event.get("UserEvent") == "IVRCallback":
            request = _request_id(event.get("Id", ""))
            if request is None or event.get("Stage") != "caller":
                return
            status = event.get("Status", "").upper()
            self._finish(request, callbacks.ANSWERED if status == "ANSWER" else (status.lower() or "unknown"))

    def _finish(self, request: int, result: str) -> None:
        job = self.placing.pop(request, None)
        if job is None:
            return  # not ours, or already finished (Stage caller comes from the extension and from h)
        task = asyncio.get_running_loop().create_task(self._finish_in_thread(job, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_in_thread(self, job: CallbackJob, result: str) -> None:
        def run() -> str:
            with self.uow_factory(write=True) as uow:
                return callbacks.finish(
                    uow,
                    job.id,
                    worker=self.worker,
                    result=result,
                    max_attempts=self.settings.callback_max_attempts,
                    retry_after=self.settings.callback_retry_after,
                )

        try:
            status = await asyncio.to_thread(run)
        except Exception:
            log.exception("callback %d: its outcome %s was not saved", job.id, result)
            return
        log.info("callback %d attempt %d: %s -> %s", job.id, job.attempt, result, status or "-")
        if self.on_result is not None:
            self.on_result(result)


class QueueWaits:
    """How long each caller waited in a queue, from the queue's own AMI events, into the call record
    (matched by the caller channel's unique id, the record's call id) and a metric."""

    def __init__(
        self,
        uow_factory: Callable[..., Any] | None,
        *,
        on_wait: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.on_wait = on_wait
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, name: str, event: dict[str, str]) -> None:
        if name not in ("AgentConnect", "QueueCallerAbandon"):
            return
        outcome = "answered" if name == "AgentConnect" else "abandoned"
        try:
            wait = float(event.get("HoldTime", "0") or 0)
        except ValueError:
            return
        queue = event.get("Queue", "")
        call_id = event.get("Uniqueid", "")
        if self.on_wait is not None:
            self.on_wait(queue, outcome, wait)
        if self.uow_factory is None or not call_id:
            return
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._save, call_id, wait, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _save(self, call_id: str, wait: float, outcome: str) -> None:
        # The record is written when the IVR part ends, just before the queue: it is normally there. A
        # record still in the writer's batch is retried once a moment later.
        for attempt in range(3):
            assert self.uow_factory is not None
            with self.uow_factory(write=True) as uow:
                done = uow.session.execute(
                    update(IvrCall)
                    .where(IvrCall.call_id == call_id)
                    .values(queue_wait=wait, queue_result=outcome)
                    .execution_options(synchronize_session=False)
                )
                uow.commit()
            if getattr(done, "rowcount", 0):
                return
            if attempt < 2:
                time.sleep(1.0)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)


def _request_id(text: str) -> int | None:
    return int(text) if text.isdigit() else None
