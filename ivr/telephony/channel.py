"""The CallChannel port: what a Session needs from a telephony driver.

Drivers (FastAGI, stdio AGI, the console simulator, the staff web's simulator) implement it; they own
every wire format and resolve prompt keys to audio (or text) themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ivr.engine.commands import Collect, PromptRef, Transfer
from ivr.engine.events import Digits, NoInput, Speech


class ChannelHungUp(Exception):
    """The caller is gone (AGI returned -1 / HANGUP, the socket closed). Raised by any channel method."""


class ChannelFailed(Exception):
    """The channel cannot go on (protocol garbage, timeout waiting for Asterisk)."""


@dataclass(frozen=True)
class QueueStatus:
    """An operator queue as the call is about to join it (Asterisk's QUEUE_* functions)."""

    waiting: int  # callers already waiting
    agents_logged: int  # agents whose softphones are registered (members not unavailable)
    agents_free: int  # of those, not on a call and not paused
    holdtime: float  # seconds: Asterisk's running average of the wait before an agent answered


class CallChannel(Protocol):
    language: str

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        """Play prompts in order. With barge_in, stop at the first key and return it ('' if none)."""
        ...

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        """Play the command's prompts interruptibly and collect one input. `typed_ahead` holds keys
        pressed during an earlier barge-in Play; they count as the first keys of this input."""
        ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_language(self, language: str) -> None: ...

    async def transfer(self, command: Transfer) -> None:
        """Hand the call to a human. The driver publishes IVR_RESULT=transfer and IVR_QUEUE for the
        dialplan (FastAGI/AGI) or prints it (simulator)."""
        ...

    async def hangup(self, reason: str) -> None: ...

    async def queue_status(self, queue: str) -> QueueStatus | None:
        """The queue's state, or None where the driver has no queues (simulators) or Asterisk does not
        know the queue."""
        ...

    def trace(self, text: str) -> None:
        """Optional: show what happened (simulator). Drivers for real calls may ignore it."""
        ...


def render_collected(command: Collect, event: Digits | Speech | NoInput) -> str:
    """A log-safe description of collected input: secret inputs show only their length."""
    if isinstance(event, NoInput):
        return "no input"
    if isinstance(event, Speech):
        return "speech (secret)" if command.secret else f"speech {event.text!r} conf={event.confidence:.2f}"
    if command.secret:
        return f"{len(event.digits)} digits (secret)"
    return f"digits {event.digits!r}"


def prompt_keys(prompts: Sequence[PromptRef]) -> str:
    return ",".join(p.key for p in prompts)


def speech_event(
    status: str, text: str, confidence: float, *, audio_seconds: float = 0.0, latency: float = 0.0
) -> Speech | NoInput:
    """A recogniser's decision (match | nomatch | noinput) as the engine's event: a match is its text; a
    phrase heard but rejected is `Speech("")`, which every node takes as no match; nothing is `NoInput`."""
    if status == "noinput":
        return NoInput()
    return Speech(text if status == "match" else "", confidence, audio_seconds=audio_seconds, latency=latency)
