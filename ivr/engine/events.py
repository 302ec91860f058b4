"""What happens to a call, as the engine sees it. Drivers translate wire protocols into these.

Keys and speech are one kind of input: a driver sends `Digits` for DTMF and `Speech` for a recognised
phrase; a menu choice matches either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallStarted:
    """First event of every call."""

    line: str  # which tree runs: "operator", "loyalty"
    did: str  # the service number dialled, normalised digits (e.g. "0505", "79221110505", "88005500500")
    caller_id: str | None  # as received; None when withheld/anonymous
    language: str = "ru"
    # Facts the dialplan knows about this entry point: roaming, caller_id_trusted, ...
    facts: Mapping[str, Any] = field(default_factory=dict)
    call_id: str = ""  # Asterisk's uniqueid (or a simulator id); used for idempotency keys


@dataclass(frozen=True)
class Digits:
    """DTMF keys the caller pressed during one collect (terminator stripped). May start with keys pressed
    during a preceding barge-in prompt."""

    digits: str


@dataclass(frozen=True)
class Speech:
    """A phrase recognised during one collect."""

    text: str
    confidence: float = 1.0
    # How it was heard, for the call's record and metrics (the engine decides on text alone): seconds of
    # the caller's audio in the turn, and seconds our recognition took after the utterance ended.
    audio_seconds: float = 0.0
    latency: float = 0.0


@dataclass(frozen=True)
class NoInput:
    """The collect timed out with nothing pressed or said."""


@dataclass(frozen=True)
class ActionResult:
    """Outcome of an `InvokeAction`. `status` selects the tree's branch; `values` become call variables."""

    status: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallTimeExceeded:
    """The driver's clock passed the tree's maximum call length."""


@dataclass(frozen=True)
class HungUp:
    """The caller hung up. The engine only records it; no more commands are executed."""


Event = CallStarted | Digits | Speech | NoInput | ActionResult | CallTimeExceeded | HungUp
