"""A record per call: where the caller went, what they entered, which actions ran, how the call ended.

`CallTrace` is filled by the Session as the call goes (nodes entered, inputs, actions, each with its time
from the call's start); at the end `call_record` turns it and the call's outcome into one `ivr_call` row,
which `CallRecords` writes in a thread of its own, in batches, never on the event loop or in an action's
thread, and never failing the call.

What is kept, and what never is:
- the caller's number only masked ("7916*****67") plus a keyed hash (HMAC-SHA256 with the installation's
  `call_record_key`), so a repeat call within 24 h is recognised without storing the number;
- inputs: a menu choice (one or two keys) as keyed; anything longer (a number, a card) only as "N digits";
  a secret input (PIN, one-time code) as "secret"; recognised speech as its text with how it was heard
  (confidence, seconds of audio, recognition latency) unless the input is secret (then only "secret"); a
  number said digit by digit as "N spoken digits"; never the audio;
- no PIN, code, password or card number, ever.

How a call ended (`outcome`):
- `transferred`: handed to an operator queue (the reason is kept);
- `failed`: the apology path (an error), or cut off at shutdown;
- `self_served`: the tree ended the call, or the caller hung up after at least one service action
  succeeded (anything but identification and one-time codes);
- `abandoned`: the caller hung up before any service action succeeded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ivr.db.models import IvrCall
from ivr.engine.commands import Collect
from ivr.engine.events import CallStarted, Digits, NoInput, Speech
from ivr.numbering.phone import masked_number, parse_caller_id

log = logging.getLogger(__name__)

# Actions that only find out who is calling: succeeding at them is not yet being served.
IDENTIFICATION = ("subscriber.", "card.identify", "otp.")
FAILED_STATUSES = frozenset({"error"})
OUTCOMES = ("self_served", "transferred", "abandoned", "failed")


@dataclass
class CallTrace:
    """Filled during the call, on the event loop. Times are milliseconds from the call's start."""

    clock: Callable[[], float] = time.monotonic
    began: float = 0.0
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    nodes: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    tree_version: str = ""
    trust: str = "none"

    def __post_init__(self) -> None:
        self.began = self.clock()

    def _ms(self) -> int:
        return int(1000 * (self.clock() - self.began))

    @property
    def last_node(self) -> str:
        return str(self.nodes[-1]["node"]) if self.nodes else ""

    def enter(self, node: str) -> None:
        if node and node != self.last_node:
            self.nodes.append({"node": node, "at_ms": self._ms()})

    def input(self, node: str, command: Collect, event: Digits | Speech | NoInput) -> None:
        if isinstance(event, NoInput):
            kind, value = "no_input", ""
        elif isinstance(event, Speech):
            kind = "speech"
            if command.secret:
                value = "secret"
            elif command.spoken_digits and len(event.text.split()) > 2:
                value = f"{len(event.text.split())} spoken digits"  # a number said, kept like keyed digits
            else:
                value = event.text
            entry: dict[str, Any] = {"node": node, "kind": kind, "value": value, "at_ms": self._ms()}
            if not command.secret:
                # How it was heard, for analytics: never the audio, never at a secret question.
                entry["confidence"] = round(event.confidence, 3)
                entry["audio_ms"] = int(1000 * event.audio_seconds)
                entry["latency_ms"] = int(1000 * event.latency)
            self.inputs.append(entry)
            return
        else:
            kind = "digits"
            if command.secret:
                value = "secret"
            elif len(event.digits) <= 2:
                value = event.digits
            else:
                value = f"{len(event.digits)} digits"
        self.inputs.append({"node": node, "kind": kind, "value": value, "at_ms": self._ms()})

    def no_match(self) -> None:
        """The engine did not take the last input (no such choice, an invalid number)."""
        if self.inputs and self.inputs[-1]["kind"] in ("digits", "speech"):
            self.inputs[-1]["kind"] = "no_match"

    def action(self, name: str, status: str, seconds: float) -> None:
        self.actions.append({"name": name, "status": status, "ms": int(1000 * seconds)})

    def state(self, vars: Mapping[str, Any], tree_version: str) -> None:
        """What the engine knows at the end: how the caller was identified, the tree's version."""
        self.tree_version = tree_version or self.tree_version
        if vars.get("authenticated"):
            self.trust = str(vars.get("auth_method") or "caller_id")[:16]


def classify(result: str, actions: list[dict[str, Any]]) -> str:
    """The record's outcome from the session's result and the actions that ran (see the module text)."""
    if result in ("transfer", "callback"):  # a booked callback is a transfer that calls back
        return "transferred"
    if result in ("error", "cancelled"):
        return "failed"
    if result == "hangup":
        return "self_served"
    served = any(
        not str(a["name"]).startswith(IDENTIFICATION) and a["status"] not in FAILED_STATUSES for a in actions
    )
    return "self_served" if served else "abandoned"


def caller_key(caller_id: str, key: str) -> str | None:
    """A keyed hash of the caller's number (to spot repeat calls), None when withheld or without a key."""
    caller = parse_caller_id(caller_id)
    if caller.kind != "number" or not caller.international or not key:
        return None
    return hmac.new(key.encode(), caller.international.encode(), hashlib.sha256).hexdigest()[:32]


def call_record(
    call: CallStarted,
    trace: CallTrace,
    *,
    result: str,
    reason: str,
    queue: str,
    subscriber_id: str,
    seconds: float,
    key: str,
    queue_result: str = "",
    node: str = "",
) -> IvrCall:
    ended_at = trace.started_at + dt.timedelta(seconds=seconds)
    outcome = classify(result, trace.actions)
    return IvrCall(
        call_id=(call.call_id or f"anon-{id(trace)}")[:64],
        line=call.line[:32],
        did=call.did[:32],
        caller_masked=masked_number(call.caller_id),
        caller_key=caller_key(call.caller_id or "", key),
        trust=trace.trust,
        tree_version=trace.tree_version[:32],
        started_at=trace.started_at,
        ended_at=ended_at,
        seconds=round(seconds, 3),
        outcome=outcome,
        result=result[:16],
        transfer_reason=(reason if outcome == "transferred" else "")[:64],
        queue=(queue if outcome == "transferred" else "")[:64],
        queue_result=queue_result[:16],
        queue_wait=0.0 if queue_result == "abandoned" else None,
        subscriber_id=int(subscriber_id) if subscriber_id.isdigit() else None,
        last_node=trace.last_node[:64],
        nodes=list(trace.nodes),
        inputs=list(trace.inputs),
        actions=list(trace.actions),
        node=node[:32],
    )


def record_of(session: Any, seconds: float, key: str) -> IvrCall | None:
    """The record of a finished `ivr.app.session.Session` (None if it kept no trace)."""
    trace: CallTrace | None = getattr(session, "trace", None)
    if trace is None:
        return None
    state = getattr(session, "state", None)
    if state is not None:
        trace.state(getattr(state, "vars", {}) or {}, str(getattr(state, "tree_version", "") or ""))
    outcome = session.outcome
    return call_record(
        session.call,
        trace,
        result=outcome.result,
        reason=outcome.reason,
        queue=outcome.queue,
        subscriber_id=outcome.subscriber_id,
        seconds=seconds,
        key=key,
        queue_result=getattr(outcome, "queue_result", ""),
    )


class CallRecords:
    """Writes call records through the line's unit-of-work factory, in a thread of its own: records queue
    up and are written in batches (one transaction for up to BATCH records), so a burst of calls ending
    never takes the action threads, and the database sees one commit per batch, not one per call.
    `submit` never blocks and never raises; `close` writes what is queued and stops the thread.

    `node`: the name of this server node (settings.node_name), put on every record that does not name one,
    so that the report of one database shared by several nodes can say which node answered which call."""

    BATCH = 200

    def __init__(self, uow_factory: Callable[..., Any], key: str, *, node: str = "") -> None:
        self.uow_factory = uow_factory
        self.key = key
        self.node = node[:32]
        self.written = 0
        self.lost = 0
        self._queue: queue.SimpleQueue[IvrCall | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, record: IvrCall) -> None:
        if not record.node:
            record.node = self.node
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="call-records", daemon=True)
                self._thread.start()
        self._queue.put(record)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self.write(batch)
            if stop:
                return

    def write(self, records: list[IvrCall]) -> bool:
        try:
            with self.uow_factory(write=True) as uow:
                uow.session.add_all(records)
                uow.commit()
            self.written += len(records)
            return True
        except Exception as exc:  # a record must never fail a call; the call itself is over
            self.lost += len(records)
            log.error("%d call record(s) not written: %s", len(records), type(exc).__name__)
            return False
