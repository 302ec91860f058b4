"""What the engine asks a driver to do. Drivers execute these over AGI, stdio AGI, or a console.

Contract for drivers: `step()` returns a list of commands; all but the last are fire-and-forget (`Play`,
`SetVariable`, `SetLanguage`); the last is the one the call waits on:
  - `Collect`      -> answer with Digits | Speech | NoInput
  - `InvokeAction` -> answer with ActionResult
  - `Transfer`, `HangUp` -> the call leaves the engine; no further event is sent.
If the caller presses a key during a barge-in `Play`, the driver stops that `Play` (and skips the other
queued barge-in `Play`s) and prepends the key to the next `Collect`'s input.
`barge_in=False` (a `Play`, or a `Collect`'s prompts) is VoiceXML 2.1's bargein="false": the prompts play
to their end whatever the caller does (no escape digits, no listening for speech meanwhile), keys pressed
during them are not input, and keys typed ahead before them are dropped (VoiceXML 2.0, 4.1.5); such a
`Play` is never skipped by a key pressed during an earlier one. A `Collect` takes input once its prompts
end.
A `spoken_digits` `Collect` needs nothing special: its grammar holds the digit words, the driver sends what
was recognised as `Speech` (words, never turned into digits by the driver), and keys still work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PromptRef:
    """A prompt by key, with values for its placeholders (e.g. {"balance": Decimal("12.50")})."""

    key: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Play:
    prompts: tuple[PromptRef, ...]
    barge_in: bool = True


@dataclass(frozen=True)
class Collect:
    """Play `prompts` (interruptible by keys and speech unless `barge_in` is False) and collect one input."""

    prompts: tuple[PromptRef, ...]
    max_digits: int = 1
    min_digits: int = 1
    first_digit_timeout: float = 5.0  # seconds after the prompts end
    inter_digit_timeout: float = 3.0
    terminator: str | None = "#"
    # Phrases the speech recogniser may return here (the menu's grammar). Empty: keys only.
    grammar: tuple[str, ...] = ()
    # Keys whose press ends collection at once (universal keys such as 0 or *), even for long inputs.
    escape_keys: str = ""
    # A secret input (PIN, code): drivers must never log or echo the digits.
    secret: bool = False
    # False: the prompts are heard whole (a node's `barge_in: false`): neither a key nor the caller's voice
    # stops them; input is taken once they end.
    barge_in: bool = True
    # The grammar is digit words (a node's `spoken_digits: true`): a recognised sequence of them answers
    # like the same keys. Never for a secret input.
    spoken_digits: bool = False


@dataclass(frozen=True)
class InvokeAction:
    name: str  # from the action registry, e.g. "balance.report"
    args: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""  # call id + node id + attempt: a retry never applies a change twice
    # The driver waits at most `timeout` seconds for the result (then: status "error", reason timeout);
    # after `hold_after` seconds it plays `hold` once, so the caller is never left in silence.
    timeout: float | None = None
    hold: PromptRef | None = None
    hold_after: float | None = None


@dataclass(frozen=True)
class Transfer:
    """Send the caller to a human: an operator queue, with context for the agent's screen."""

    queue: str
    reason: str = ""
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SetVariable:
    """Publish a (non-secret) channel variable, e.g. IVR_LAST_ACTION for tests and CDR."""

    name: str
    value: str


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class HangUp:
    reason: str = "normal"


Command = Play | Collect | InvokeAction | Transfer | SetVariable | SetLanguage | HangUp
