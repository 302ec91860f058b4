"""CallChannel over AGI commands: the same driver for FastAGI (TCP) and stdio AGI (pyst2).

- Prompts: STREAM FILE per audio file, with every DTMF key as escape digit when barge-in is allowed.
- Collection: keys pressed during the prompts count first; then WAIT FOR DIGIT with the first-digit
  timeout, then the inter-digit timeout, until max digits, the terminator, or an escape key. A multi-digit
  input that reached max digits still takes its terminator (up to TERMINATOR_GRACE), so the `#` the
  prompt asked for never leaks into the next question.
- Variables: SET VARIABLE; language: SET VARIABLE CHANNEL(language).
- Transfer / hang-up: publish IVR_RESULT (and IVR_QUEUE) and return; the dialplan acts on them.
Collected digits of a secret input are never logged.
"""

from __future__ import annotations

import logging
import os
import re
import time
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import quote_plus

from ivr.engine.commands import Collect, PromptRef, Transfer
from ivr.engine.events import Digits, NoInput, Speech
from ivr.telephony.agi import AgiResponse, AgiTransport, quote
from ivr.telephony.channel import ChannelHungUp, QueueStatus, prompt_keys
from ivr.telephony.latency import KeyLatency

log = logging.getLogger(__name__)

# Seconds a full-length input waits for the terminator its prompt asked for.
TERMINATOR_GRACE = 2.0

ALL_KEYS = "0123456789*#"
AUDIO_SUFFIXES = frozenset({".wav", ".gsm", ".sln", ".ulaw", ".alaw", ".g722"})


class PromptFiles(Protocol):
    """The part of ivr.prompts.voice.PromptVoice this driver needs."""

    def files(self, line: str, lang: str, ref: PromptRef) -> list[Path]: ...


# Prompt file -> ((size, mtime), seconds). A prompt is played thousands of times and re-rendered rarely:
# one stat per play tells whether the file is there and whether its length is still known, instead of
# opening and parsing the WAV header every time (measured: the largest cost of a play on the event loop).
_LENGTHS: dict[str, tuple[tuple[int, int], float]] = {}
_LENGTHS_MAX = 50_000


def _seconds(path: str, stamp: tuple[int, int]) -> float:
    known = _LENGTHS.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    try:
        with wave.open(path, "rb") as wav:
            seconds = wav.getnframes() / float(wav.getframerate() or 8000)
    except (OSError, wave.Error, EOFError):
        seconds = stamp[0] / 8000.0  # not a WAV we can read: at least one byte per sample at 8 kHz
    if len(_LENGTHS) >= _LENGTHS_MAX:
        _LENGTHS.clear()
    _LENGTHS[path] = (stamp, seconds)
    return seconds


def _stat(path: Path) -> tuple[int, int] | None:
    """(size, mtime) of a prompt file, None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class AgiChannel:
    def __init__(
        self,
        transport: AgiTransport,
        voice: PromptFiles,
        line: str,
        language: str,
        *,
        read_timeout: float = 30.0,
        latency: KeyLatency | None = None,
    ) -> None:
        self.transport = transport
        # When the caller's last input was complete (perf_counter), until the next prompt is sent.
        self.latency = latency
        self._input_at: float | None = None
        self._asterisk_wait = 0.0  # seconds spent awaiting Asterisk's answers, in all
        self._asterisk_wait_at_input = 0.0
        self.voice = voice
        self.line = line
        self.language = language
        self.read_timeout = read_timeout
        self.result_published = False
        # A key read while waiting for a terminator that was not the terminator: the caller is already
        # answering the next question. It answers the next prompt (barge-in) or the next collect.
        self.typed_ahead = ""

    def _take_typed_ahead(self) -> str:
        keys, self.typed_ahead = self.typed_ahead, ""
        return keys

    async def _cmd(self, text: str, *, extra: float = 0.0) -> AgiResponse:
        if self._input_at is None:
            return await self.transport.command(text, timeout=self.read_timeout + extra)
        began = time.perf_counter()  # between an input and the next prompt: Asterisk's share is not ours
        try:
            return await self.transport.command(text, timeout=self.read_timeout + extra)
        finally:
            self._asterisk_wait += time.perf_counter() - began

    def _existing(self, prompts: Sequence[PromptRef]) -> list[tuple[Path, tuple[int, int]]]:
        """The audio files of `prompts` that exist, each with its (size, mtime) from one stat."""
        out: list[tuple[Path, tuple[int, int]]] = []
        for ref in prompts:
            try:
                files = self.voice.files(self.line, self.language, ref)
            except KeyError:
                log.warning("prompt %s has no text for %s/%s", ref.key, self.line, self.language)
                continue
            for path in files:
                stamp = _stat(path)
                if stamp is not None:
                    out.append((path, stamp))
                else:
                    log.warning("audio missing: %s (prompt %s)", path, ref.key)
        return out

    def _files(self, prompts: Sequence[PromptRef]) -> list[tuple[Path, float]]:
        """The audio files of `prompts` that exist, each with its length in seconds."""
        return [(path, _seconds(str(path), stamp)) for path, stamp in self._existing(prompts)]

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        if barge_in and self.typed_ahead:
            return self._take_typed_ahead()
        escape = ALL_KEYS if barge_in else ""
        log.info(
            "play %s lang=%s%s", prompt_keys(prompts), self.language, "" if barge_in else " (no barge-in)"
        )
        for path, seconds in self._files(prompts):
            # Asterisk picks the format itself: STREAM FILE takes the name without the extension.
            name = str(path.with_suffix("")) if path.suffix in AUDIO_SUFFIXES else str(path)
            if self._input_at is not None:
                if self.latency is not None:
                    whole = time.perf_counter() - self._input_at
                    self.latency.record(whole - (self._asterisk_wait - self._asterisk_wait_at_input), whole)
                self._input_at = None
            if path.parent.name != "words":  # a prompt's own audio (never the words of a caller's values)
                log.debug("stream %s", name)
            response = await self._cmd(f"STREAM FILE {quote(name)} {quote(escape)}", extra=seconds)
            if response.code != 200:
                log.warning("STREAM FILE refused (%s)", response.code)
                continue
            if response.value < 0:
                raise ChannelHungUp("STREAM FILE -1")
            if response.value > 0:
                return chr(response.value)
        return ""

    async def _wait_digit(self, seconds: float) -> str:
        ms = max(1, int(seconds * 1000))
        response = await self._cmd(f"WAIT FOR DIGIT {ms}", extra=seconds)
        if response.code != 200:
            raise ChannelHungUp(f"WAIT FOR DIGIT refused ({response.code})")
        if response.value < 0:
            raise ChannelHungUp("WAIT FOR DIGIT -1")
        return chr(response.value) if response.value > 0 else ""

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        if not command.barge_in:  # heard whole: keys pressed before it are not its answer
            typed_ahead = self._take_typed_ahead() and ""
        keys = typed_ahead or self._take_typed_ahead()
        if not keys:
            keys = await self.play(command.prompts, barge_in=command.barge_in)
        if not keys:
            keys = await self._wait_digit(command.first_digit_timeout)
            if not keys:
                return NoInput()
        collected = await self._more_keys(command, keys)
        if isinstance(collected, Digits):
            self._input_at = time.perf_counter()
            self._asterisk_wait_at_input = self._asterisk_wait
        return collected

    async def _more_keys(self, command: Collect, keys: str) -> Digits | NoInput:
        """Keys pressed so far -> the whole input: more keys until max digits, terminator or escape."""
        while True:
            last = keys[-1]
            if command.terminator and last == command.terminator:
                keys = keys[:-1]
                break
            if last in command.escape_keys and (len(keys) == 1 or not last.isdigit()):
                break  # a universal key (operator, repeat, back) ends the input at once
            if len(keys) >= command.max_digits:
                if command.terminator and command.max_digits > 1:
                    # "Enter the 11 digits and press #": the # the prompt asked for belongs to this
                    # question. Left unread it would answer the next one (an empty PIN, "no input").
                    key = await self._wait_digit(min(command.inter_digit_timeout, TERMINATOR_GRACE))
                    if key and key != command.terminator:
                        self.typed_ahead = key  # the caller went on to the next question
                break
            key = await self._wait_digit(command.inter_digit_timeout)
            if not key:
                break
            keys += key
        if not keys:
            return NoInput()
        return Digits(keys)

    async def set_variable(self, name: str, value: str) -> None:
        await self._cmd(f"SET VARIABLE {name} {quote(value)}")

    async def set_language(self, language: str) -> None:
        self.language = language
        await self._cmd(f"SET VARIABLE CHANNEL(language) {quote(language)}")

    async def _function(self, expression: str) -> str:
        """The value of a dialplan expression such as QUEUE_WAITING_COUNT(operators) ("" when unset)."""
        response = await self._cmd(f"GET FULL VARIABLE {quote('${' + expression + '}')}")
        return response.data if response.value == 1 else ""

    async def queue_status(self, queue: str) -> QueueStatus | None:
        if not _QUEUE_NAME.fullmatch(queue):
            return None
        if await self._function(f"QUEUE_EXISTS({queue})") != "1":
            return None
        waiting = await self._function(f"QUEUE_WAITING_COUNT({queue})")
        logged = await self._function(f"QUEUE_MEMBER({queue},logged)")
        free = await self._function(f"QUEUE_MEMBER({queue},free)")
        # Reading QUEUE_VARIABLES sets QUEUEHOLDTIME (and others) on the channel.
        await self._function(f"QUEUE_VARIABLES({queue})")
        holdtime = await self._function("QUEUEHOLDTIME")
        return QueueStatus(
            waiting=_int(waiting),
            agents_logged=_int(logged),
            agents_free=_int(free),
            holdtime=float(_int(holdtime)),
        )

    async def transfer(self, command: Transfer) -> None:
        for name, value in context_variables(command.context).items():
            await self.set_variable(name, value)
        await self.set_variable("IVR_QUEUE", command.queue)
        if command.reason:
            await self.set_variable("IVR_TRANSFER_REASON", command.reason)
        await self.set_variable("IVR_RESULT", "transfer")
        self.result_published = True

    async def hangup(self, reason: str) -> None:
        await self.set_variable("IVR_RESULT", "hangup")
        self.result_published = True

    async def publish_error(self) -> None:
        """Best effort after a failed call: the dialplan's [ivr-failure] path takes over."""
        await self.set_variable("IVR_RESULT", "error")
        self.result_published = True

    def trace(self, text: str) -> None:
        log.debug("%s", text)


_QUEUE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CONTEXT_NAME = re.compile(r"[^A-Za-z0-9_]")
_SECRET_NAME = re.compile(r"PIN|PASSWORD|CODE|SECRET|CARD_NUMBER")
_CONTEXT_VALUE = re.compile(r"[^\w .,:;@+/=-]", re.UNICODE)


def context_variables(context: Mapping[str, object]) -> dict[str, str]:
    """The caller's context as the channel variables that travel with the call to the agent: inheritable
    (`__`), so the agent's channel has them too, and put into X-IVR-* SIP headers by the dialplan
    ([ivr-agent-headers]): `__IVR_CTX_<NAME>` each, and `__IVR_CONTEXT` with all of them URL-encoded.
    The engine leaves secret variables out; a name that looks secret is dropped anyway, and values are
    cut to one short safe line. Used for live transfers and for callbacks (ivr.app.callbacks)."""
    variables: dict[str, str] = {}
    parts = []
    for key, value in sorted(context.items()):
        name = _CONTEXT_NAME.sub("_", str(key)).upper()[:32]
        text = _context_value(value)
        if not name or not text or _SECRET_NAME.search(name):
            continue
        variables[f"__IVR_CTX_{name}"] = text
        parts.append(f"{key}={quote_plus(text)}")
    if parts:
        variables["__IVR_CONTEXT"] = "&".join(parts)[:900]
    return variables


def _context_value(value: object) -> str:
    """A context value safe for a channel variable and a SIP header: one line, no quotes or angle
    brackets, at most 120 characters."""
    return _CONTEXT_VALUE.sub("", str(value).replace("\n", " ").replace("\r", " ")).strip()[:120]


def _int(text: str) -> int:
    try:
        return max(0, int(text.strip() or "0"))
    except ValueError:
        return 0
