"""The console simulator: a CallChannel on a terminal. Shows what the caller hears (as text) and reads
what the caller does:

    123#            keys (a trailing # ends a long input)
    say: баланс     a spoken phrase
    (empty line)    silence: the collect times out
    hangup / EOF    the caller hangs up
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from ivr.engine.commands import Collect, PromptRef, Transfer
from ivr.engine.events import Digits, NoInput, Speech
from ivr.telephony.channel import ChannelHungUp

VALID_KEYS = set("0123456789*#")


def parse_input(text: str) -> Digits | Speech | NoInput | None:
    """One typed line as a caller's input; None for 'hangup'. Raises ValueError on nonsense."""
    text = text.strip()
    if not text:
        return NoInput()
    if text.lower() in ("hangup", "bye", "q", "quit"):
        return None
    if text.lower().startswith("say:"):
        return Speech(text[4:].strip())
    if set(text) <= VALID_KEYS:
        return Digits(text)
    raise ValueError("type keys (0-9 * #), 'say: phrase', an empty line for silence, or 'hangup'")


class ConsoleChannel:
    def __init__(
        self,
        describe: Callable[[str, PromptRef], str],
        *,
        language: str = "ru",
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.language = language
        self.describe = describe
        self.stdin = stdin or sys.stdin
        self.out = stdout or sys.stdout

    def _say(self, prompts: Sequence[PromptRef]) -> None:
        for ref in prompts:
            print(f"  🔊 {self.describe(self.language, ref)}", file=self.out)

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        self._say(prompts)
        return ""

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        self._say(command.prompts)
        hint = (
            f"{command.min_digits}-{command.max_digits} keys"
            if command.max_digits > 1
            else "a key or 'say: ...'"
        )
        while True:
            print(f"  [{hint}{', secret' if command.secret else ''}] > ", end="", file=self.out, flush=True)
            line = await asyncio.to_thread(self.stdin.readline)
            if line == "":
                raise ChannelHungUp()
            try:
                event = parse_input(line)
            except ValueError as exc:
                print(f"  ! {exc}", file=self.out)
                continue
            if event is None:
                raise ChannelHungUp()
            if isinstance(event, Digits) and command.terminator and event.digits.endswith(command.terminator):
                event = Digits(event.digits[: -len(command.terminator)])
            return event

    async def set_variable(self, name: str, value: str) -> None:
        print(f"  · {name}={value}", file=self.out)

    async def set_language(self, language: str) -> None:
        self.language = language
        print(f"  · language {language}", file=self.out)

    async def queue_status(self, queue: str) -> None:
        return None  # the simulator has no operator queues: a transfer ends the simulated call

    async def transfer(self, command: Transfer) -> None:
        context = ", ".join(f"{k}={v}" for k, v in command.context.items())
        print(f"  ☎ transfer to queue {command.queue} ({command.reason}) [{context}]", file=self.out)

    async def hangup(self, reason: str) -> None:
        print(f"  ☎ hang up ({reason})", file=self.out)

    def trace(self, text: str) -> None:
        print(f"  # {text}", file=self.out)
