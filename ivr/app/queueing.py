"""Joining an operator queue: what the caller hears between "connecting you" and the queue itself.

When the tree transfers a call, the session (still in control of the call over AGI) asks Asterisk how the
queue stands (`CallChannel.queue_status`), says the caller's place and the estimated wait in the caller's
language with the line's voice, and, when the wait is long or no operator is logged in, offers a callback:
1 books one (on the number the caller calls from, or one they key), anything else or nothing joins the
queue. Asterisk's own queue announcements are English recordings, so they are off (asterisk_conf/
queues.conf). Simulators have no queues: `queue_status` is None there and nothing is said.

The estimate: with a free agent and nobody ahead, no wait; otherwise Asterisk's running average wait
(QUEUEHOLDTIME; DEFAULT_HOLDTIME until the queue has answered someone) for each caller ahead and this one,
shared among the agents logged in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ivr.engine.commands import Collect, PromptRef
from ivr.engine.events import Digits, NoInput, Speech
from ivr.services.callbacks import callback_number
from ivr.telephony.channel import CallChannel, QueueStatus

log = logging.getLogger(__name__)

DEFAULT_HOLDTIME = 60.0
QUEUE = "queue"  # join the queue
CALLBACK = "callback"  # a callback is booked: the call ends


# What the queue dialog may say: every line can hand a caller to a queue (the operator key, a failure), so
# its texts must have these in every language it offers; the callback keys when callbacks are on. The
# server's acceptance check and `ivr validate` require them (a missing one would be silence).
QUEUE_PROMPTS = ("queue_first", "queue_position", "queue_wait")
CALLBACK_PROMPTS = (
    "callback_offer",
    "callback_offer_no_agents",
    "callback_confirm_number",
    "callback_enter_number",
    "callback_number_invalid",
    "callback_booked",
    "callback_already",
    "callback_failed",
)


def queue_prompt_keys(callbacks: bool) -> set[str]:
    return set(QUEUE_PROMPTS) | (set(CALLBACK_PROMPTS) if callbacks else set())


@dataclass(frozen=True)
class CallbackAsk:
    """What booking a callback needs from the call."""

    queue: str
    number: str
    context: Mapping[str, str] = field(default_factory=dict)


# Books a callback (in a worker thread): booked | already | invalid_number | error.
BookCallback = Callable[[CallbackAsk], Awaitable[str]]
# Told each input the queue dialog collected (the call's record).
OnInput = Callable[[Collect, Digits | Speech | NoInput], None]


@dataclass(frozen=True)
class QueuePolicy:
    callbacks: bool = True
    offer_after: float = 90.0  # seconds of estimated wait from which a callback is offered
    # Transfers because the line itself failed (an action's error, the database away) go straight to the
    # queue: a callback would need the very database that just failed, and the caller has waited enough.
    direct_reasons: tuple[str, ...] = ("action_error", "error")


def estimated_wait(status: QueueStatus) -> float:
    if status.agents_free > status.waiting:
        return 0.0
    per_caller = status.holdtime if status.holdtime > 0 else DEFAULT_HOLDTIME
    return per_caller * (status.waiting + 1) / max(1, status.agents_logged)


async def enter_queue(
    channel: CallChannel,
    queue: str,
    *,
    caller_id: str,
    context: Mapping[str, str],
    policy: QueuePolicy,
    book: BookCallback | None,
    on_input: OnInput | None = None,
) -> str:
    """QUEUE or CALLBACK. Raises what the channel raises (a hang-up ends the call as usual)."""
    status = await channel.queue_status(queue)
    if status is None:
        return QUEUE
    can_offer = policy.callbacks and book is not None
    if status.agents_logged == 0:
        log.info("queue %s: no agent logged in (%d waiting)", queue, status.waiting)
        if not can_offer:
            return QUEUE  # the dialplan says "no operator can answer now"
        offer = "callback_offer_no_agents"
    else:
        wait = estimated_wait(status)
        log.info(
            "queue %s: %d waiting, %d/%d agents free, estimated wait %.0f s",
            queue,
            status.waiting,
            status.agents_free,
            status.agents_logged,
            wait,
        )
        if status.waiting == 0 and wait == 0:
            return QUEUE  # an agent is free: ring at once, no announcement in the way
        said = [
            PromptRef("queue_first")
            if status.waiting == 0
            else PromptRef("queue_position", {"ahead": status.waiting})
        ]
        if wait >= 60:
            said.append(PromptRef("queue_wait", {"wait_minutes": math.ceil(wait / 60)}))
        await channel.play(said, barge_in=False)
        if not can_offer or wait < policy.offer_after:
            return QUEUE
        offer = "callback_offer"
    assert book is not None
    choice = await _ask(
        channel, Collect((PromptRef(offer),), first_digit_timeout=4.0, terminator=None), on_input
    )
    if not (isinstance(choice, Digits) and choice.digits == "1"):
        return QUEUE
    number = await _callback_number(channel, caller_id, on_input)
    if number is None:
        return QUEUE
    booked = await book(CallbackAsk(queue=queue, number=number, context=dict(context)))
    log.info("callback to queue %s: %s", queue, booked)
    if booked in ("booked", "already"):
        await channel.play(
            (PromptRef("callback_booked" if booked == "booked" else "callback_already"),), barge_in=False
        )
        return CALLBACK
    await channel.play((PromptRef("callback_failed"),), barge_in=False)
    return QUEUE


async def _ask(channel: CallChannel, command: Collect, on_input: OnInput | None) -> Digits | Speech | NoInput:
    collected = await channel.collect(command, "")
    if on_input is not None:
        on_input(command, collected)
    return collected


async def _callback_number(channel: CallChannel, caller_id: str, on_input: OnInput | None) -> str | None:
    """The number to call back: the caller's own, confirmed, or one they key. Three inputs that lead
    nowhere (silence, a wrong key, a number that cannot be called) give up: the caller joins the queue."""
    candidate = callback_number(caller_id or "")
    misses = 0
    while misses < 3:
        if candidate is not None:
            confirm = Collect(
                (PromptRef("callback_confirm_number", {"callback_number": candidate}),),
                first_digit_timeout=5.0,
                terminator=None,
            )
            answer = await _ask(channel, confirm, on_input)
            if isinstance(answer, Digits) and answer.digits == "1":
                return candidate
            if isinstance(answer, Digits) and answer.digits == "2":
                candidate = None
            else:
                misses += 1
            continue
        keyed = Collect(
            (PromptRef("callback_enter_number"),),
            max_digits=15,
            min_digits=10,
            first_digit_timeout=7.0,
            inter_digit_timeout=4.0,
            terminator="#",
        )
        answer = await _ask(channel, keyed, on_input)
        candidate = callback_number(answer.digits) if isinstance(answer, Digits) else None
        if candidate is None:
            misses += 1
            if isinstance(answer, Digits):
                await channel.play((PromptRef("callback_number_invalid"),), barge_in=False)
    return None
