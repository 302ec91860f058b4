"""Joining an operator queue (ivr.app.queueing) and the session around it, with a scripted channel: what
the caller hears for each state of the queue, when a callback is offered, which number it is booked on,
and how the call ends."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ivr.app.queueing import CALLBACK, QUEUE, CallbackAsk, QueuePolicy, enter_queue, estimated_wait
from ivr.app.records import CallTrace, record_of
from ivr.app.session import Session
from ivr.engine.commands import Collect, Command, PromptRef, Transfer
from ivr.engine.events import CallStarted, Digits, Event, NoInput, Speech
from ivr.telephony.channel import ChannelHungUp, QueueStatus

IVAN = "79161234567"


class Channel:
    def __init__(self, status: QueueStatus | None, answers: Sequence[str] = ()) -> None:
        self.status = status
        self.answers = list(answers)  # "" = no input, "hangup" = the caller hangs up
        self.heard: list[str] = []
        self.values: list[Mapping[str, Any]] = []
        self.transferred: list[Transfer] = []
        self.hung_up: list[str] = []

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        self.heard.extend(p.key for p in prompts)
        self.values.extend(p.values for p in prompts)
        return ""

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        await self.play(command.prompts, barge_in=True)
        answer = self.answers.pop(0) if self.answers else ""
        if answer == "hangup":
            raise ChannelHungUp("caller")
        return Digits(answer) if answer else NoInput()

    async def set_variable(self, name: str, value: str) -> None:
        return None

    async def set_language(self, language: str) -> None:
        return None

    async def transfer(self, command: Transfer) -> None:
        self.transferred.append(command)

    async def hangup(self, reason: str) -> None:
        self.hung_up.append(reason)

    async def queue_status(self, queue: str) -> QueueStatus | None:
        return self.status

    def trace(self, text: str) -> None:
        return None


class Booker:
    def __init__(self, answer: str = "booked") -> None:
        self.answer = answer
        self.asked: list[CallbackAsk] = []

    async def __call__(self, ask: CallbackAsk) -> str:
        self.asked.append(ask)
        return self.answer


def enter(channel: Channel, booker: Booker | None, *, caller: str = IVAN, offer_after: float = 90.0) -> str:
    return asyncio.run(
        enter_queue(
            channel,
            "operators",
            caller_id=caller,
            context={"reason": "caller_request", "subscriber_id": "1"},
            policy=QueuePolicy(callbacks=booker is not None, offer_after=offer_after),
            book=booker,
        )
    )


def status(waiting: int = 0, logged: int = 2, free: int = 0, holdtime: float = 0.0) -> QueueStatus:
    return QueueStatus(waiting=waiting, agents_logged=logged, agents_free=free, holdtime=holdtime)


def test_the_estimate() -> None:
    assert estimated_wait(status(waiting=0, free=1)) == 0
    assert estimated_wait(status(waiting=3, logged=2, free=0, holdtime=40)) == 80  # 4 callers x 40 s / 2
    assert estimated_wait(status(waiting=1, logged=1, free=0)) == 120  # no history yet: 60 s a caller


def test_a_free_agent_and_nobody_waiting_rings_at_once() -> None:
    channel = Channel(status(waiting=0, free=1))
    assert enter(channel, Booker()) == QUEUE
    assert channel.heard == []


def test_a_short_wait_is_said_without_an_offer() -> None:
    channel = Channel(status(waiting=2, logged=2, free=0, holdtime=20))  # 3 x 20 / 2 = 30 s
    assert enter(channel, Booker()) == QUEUE
    assert channel.heard == ["queue_position"]
    assert channel.values[0] == {"ahead": 2}


def test_a_long_wait_is_said_and_a_callback_on_the_callers_number_is_booked() -> None:
    channel = Channel(status(waiting=5, logged=1, free=0, holdtime=30), answers=["1", "1"])  # 6 x 30 = 180 s
    booker = Booker()
    assert enter(channel, booker) == CALLBACK
    assert channel.heard == [
        "queue_position",
        "queue_wait",
        "callback_offer",
        "callback_confirm_number",
        "callback_booked",
    ]
    assert channel.values[1] == {"wait_minutes": 3}
    assert channel.values[3] == {"callback_number": IVAN}
    (ask,) = booker.asked
    assert (ask.queue, ask.number, ask.context["subscriber_id"]) == ("operators", IVAN, "1")


def test_declining_or_saying_nothing_joins_the_queue() -> None:
    for answers in (["2"], [""]):
        channel = Channel(status(waiting=5, logged=1, holdtime=30), answers=answers)
        booker = Booker()
        assert enter(channel, booker) == QUEUE
        assert booker.asked == []


def test_another_number_is_keyed_and_checked() -> None:
    # 1: a callback; 2: not this number; a short number (refused); then a good one; then confirmed.
    channel = Channel(status(logged=0), answers=["1", "2", "0505", "89031234567", "1"])
    booker = Booker()
    assert enter(channel, booker) == CALLBACK
    assert channel.heard == [
        "callback_offer_no_agents",
        "callback_confirm_number",
        "callback_enter_number",
        "callback_number_invalid",
        "callback_enter_number",
        "callback_confirm_number",
        "callback_booked",
    ]
    assert [a.number for a in booker.asked] == ["79031234567"]


def test_a_withheld_caller_is_asked_for_a_number() -> None:
    channel = Channel(status(logged=0), answers=["1", "", "", ""])
    booker = Booker()
    assert enter(channel, booker, caller="") == QUEUE  # three tries without a number: the queue after all
    assert channel.heard.count("callback_enter_number") == 3
    assert booker.asked == []


@pytest.mark.parametrize(
    ("booked", "said", "result"),
    [("already", "callback_already", CALLBACK), ("error", "callback_failed", QUEUE)],
)
def test_what_the_booking_says(booked: str, said: str, result: str) -> None:
    channel = Channel(status(logged=0), answers=["1", "1"])
    assert enter(channel, Booker(booked)) == result
    assert channel.heard[-1] == said


def test_without_callbacks_no_agent_means_the_queue_says_so() -> None:
    channel = Channel(status(logged=0))
    assert enter(channel, None) == QUEUE
    assert channel.heard == []  # the dialplan's "no operator can answer now" follows


def test_no_queue_information_changes_nothing() -> None:
    channel = Channel(None)
    assert enter(channel, Booker()) == QUEUE
    assert channel.heard == []


# ---- the session around it ------------------------------------------------------------------------------


class TransferringEngine:
    def start(self, event: CallStarted) -> tuple[Any, list[Command]]:
        return None, [Transfer(queue="operators", reason="caller_request", context={"node": "main"})]

    def step(self, state: Any, event: Event) -> tuple[Any, list[Command]]:
        raise AssertionError("not reached")


async def _no_action(*_: Any) -> Any:
    raise AssertionError("no action expected")


def session(channel: Channel, booker: Booker | None) -> Session:
    call = CallStarted(line="operator", did="0505", caller_id=IVAN, language="ru", call_id="c1")
    return Session(
        engine=TransferringEngine(),
        channel=channel,
        invoke=_no_action,
        call=call,
        trace=CallTrace(),
        queue_policy=QueuePolicy(callbacks=booker is not None),
        book_callback=booker,
    )


def test_a_booked_callback_ends_the_call_as_transferred() -> None:
    channel = Channel(status(logged=0), answers=["1", "1"])
    s = session(channel, Booker())
    outcome = asyncio.run(s.run())
    assert outcome.result == "callback" and channel.hung_up == ["callback"] and channel.transferred == []
    record = record_of(s, 10.0, "k")
    assert record is not None and record.outcome == "transferred" and record.queue == "operators"
    assert [(i["node"], i["kind"], i["value"]) for i in record.inputs] == [
        ("queue", "digits", "1"),
        ("queue", "digits", "1"),
    ]


def test_a_hang_up_while_joining_the_queue_is_a_transfer_abandoned_in_the_queue() -> None:
    channel = Channel(status(logged=0), answers=["hangup"])
    s = session(channel, Booker())
    outcome = asyncio.run(s.run())
    assert (outcome.result, outcome.queue_result) == ("transfer", "abandoned")
    record = record_of(s, 10.0, "k")
    assert record is not None and (record.outcome, record.queue_result, record.queue_wait) == (
        "transferred",
        "abandoned",
        0.0,
    )


def test_the_transfer_carries_the_context_and_what_was_tried() -> None:
    channel = Channel(status(waiting=0, free=1))
    s = session(channel, Booker())
    s.outcome.actions.append("balance.report:ok")
    asyncio.run(s.run())
    (transfer,) = channel.transferred
    assert transfer.context["tried"] == "balance.report:ok"
    assert transfer.context["node"] == "main"


def test_a_transfer_because_the_line_failed_goes_straight_to_the_queue() -> None:
    class FailingEngine(TransferringEngine):
        def start(self, event: CallStarted) -> tuple[Any, list[Command]]:
            return None, [Transfer(queue="operators", reason="action_error", context={"node": "main"})]

    channel = Channel(status(logged=0), answers=["1", "1"])
    s = session(channel, Booker())
    s.engine = FailingEngine()
    assert asyncio.run(s.run()).result == "transfer"
    assert channel.heard == [] and len(channel.transferred) == 1  # no offer: it would need the database
