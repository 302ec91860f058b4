"""EAGI: the per-call stdio AGI entry with the caller's audio, for speech input (`ivr agi --eagi`, dialplan
prefix *8).

Asterisk's EAGI application runs the same stdio AGI protocol as AGI on stdin/stdout, and also writes the
caller's audio to fd 3: 8 kHz 16-bit mono signed linear, only while RTP arrives (so reads need select with
a timeout), both while it waits for our next command and during STREAM FILE / WAIT FOR DIGIT.

`Fd3Audio` drains fd 3 all call long in a thread (a full pipe would make Asterisk drop audio and log
warnings) and keeps what arrives while the channel listens. `EagiChannel` is the AgiChannel with one
difference: for a Collect with a grammar it plays the prompts (barge-in on keys), then listens — WAIT FOR
DIGIT with a short timeout in a loop, so keys still win, while the audio read meanwhile is fed to the
recognizer in a worker thread. A recognised phrase gives `Speech(text, confidence)`; something heard but
rejected (low confidence, a decoy, `[unk]`) gives `Speech("", confidence)`, which every node treats as no
match; nothing gives `NoInput`. Speech during the prompts is not listened to (no barge-in by voice).

This module knows the recognizer only by the `Recognizer` protocol below (ivr.speech.CallRecognizer
fits it); the CLI wires the two together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from ivr.engine.commands import Collect
from ivr.engine.events import Digits, NoInput, Speech
from ivr.telephony.agi import AgiTransport
from ivr.telephony.agi_channel import AgiChannel, PromptFiles
from ivr.telephony.channel import speech_event

log = logging.getLogger(__name__)

AUDIO_FD = 3
MAX_BUFFER = 8000 * 2 * 30  # 30 s of audio at most waits for the recognizer


class RecognizerResult(Protocol):
    @property
    def status(self) -> str: ...  # match | nomatch | noinput

    @property
    def text(self) -> str: ...

    @property
    def confidence(self) -> float: ...


class Recognizer(Protocol):
    def start(self, phrases: Iterable[str], *, no_speech_timeout: float | None = None) -> None: ...

    def feed_async(self, chunk: bytes) -> Awaitable[RecognizerResult | None]: ...

    def finish_async(self) -> Awaitable[RecognizerResult]: ...


class Fd3Audio:
    """Reads the EAGI audio pipe in a daemon thread; keeps it only while `listening`."""

    def __init__(self, fd: int = AUDIO_FD, *, poll: float = 0.2) -> None:
        self.fd = fd
        self.poll = poll
        self.received = 0  # bytes read in the whole call (listening or not)
        self.eof = False
        self._buffer = bytearray()
        self._listening = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eagi-audio", daemon=True)

    @staticmethod
    def available(fd: int = AUDIO_FD) -> bool:
        try:
            os.fstat(fd)
        except OSError:
            return False
        return True

    def start(self) -> Fd3Audio:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], self.poll)
                if not ready:
                    continue
                data = os.read(self.fd, 4096)
            except (OSError, ValueError):
                data = b""
            if not data:
                self.eof = True
                return
            with self._lock:
                self.received += len(data)
                if self._listening and len(self._buffer) < MAX_BUFFER:
                    self._buffer += data

    def listen(self, on: bool) -> None:
        """Start or stop keeping audio; either way what was kept before is dropped."""
        with self._lock:
            self._listening = on
            self._buffer.clear()

    def take(self) -> bytes:
        """The audio kept since the last take."""
        with self._lock:
            data = bytes(self._buffer)
            self._buffer.clear()
        return data

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)


class EagiChannel(AgiChannel):
    def __init__(
        self,
        transport: AgiTransport,
        voice: PromptFiles,
        line: str,
        language: str,
        *,
        audio: Fd3Audio,
        recognizer_factory: Callable[[], Recognizer] | None,
        read_timeout: float = 30.0,
        key_poll: float = 0.2,
        max_utterance: float = 8.0,
    ) -> None:
        super().__init__(transport, voice, line, language, read_timeout=read_timeout)
        self.audio = audio
        self.recognizer_factory = recognizer_factory
        self.key_poll = key_poll
        self.max_utterance = max_utterance
        self._recognizer: Recognizer | None = None
        self._making: asyncio.Future[Recognizer] | None = None
        self._speech_broken = recognizer_factory is None

    async def _recognizer_or_key(self) -> Recognizer | str | None:
        """The call's recognizer, made on the first grammar. While it is still being made (the model loads
        in a thread when the call starts), keys are polled: a key pressed meanwhile is returned instead.
        None: speech is unavailable for this call (keys only from now on)."""
        if self._recognizer is not None or self._speech_broken or self.recognizer_factory is None:
            return self._recognizer
        if self._making is None:
            self._making = asyncio.ensure_future(asyncio.to_thread(self.recognizer_factory))
        while not self._making.done():
            key = await self._wait_digit(self.key_poll)
            if key:
                return key  # the recognizer goes on loading for the next question
        try:
            self._recognizer = self._making.result()
        except Exception as exc:
            self._speech_broken = True
            log.error("speech input unavailable, keys only for this call: %s", exc)
        return self._recognizer

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        if typed_ahead or not command.grammar or self._speech_broken:
            return await super().collect(command, typed_ahead)
        keys = await self.play(command.prompts, barge_in=command.barge_in)
        if keys:
            return await self._more_keys(command, keys)
        recognizer = await self._recognizer_or_key()
        if isinstance(recognizer, str):
            return await self._more_keys(command, recognizer)
        if recognizer is None:
            return await self._keys_only(command)
        try:
            recognizer.start(command.grammar, no_speech_timeout=command.first_digit_timeout)
        except ValueError:  # a grammar of nothing but punctuation: keys only
            return await self._keys_only(command)
        return await self._listen(command, recognizer)

    async def _keys_only(self, command: Collect) -> Digits | NoInput:
        keys = await self._wait_digit(command.first_digit_timeout)
        return await self._more_keys(command, keys) if keys else NoInput()

    async def _listen(self, command: Collect, recognizer: Recognizer) -> Digits | Speech | NoInput:
        # Audio arrives only while RTP does: a wall-clock guard ends a turn whose audio stopped.
        guard = command.first_digit_timeout + self.max_utterance + 2.0
        began = time.monotonic()
        fed = 0
        self.audio.listen(True)
        try:
            while True:
                key = await self._wait_digit(self.key_poll)
                if key:
                    log.debug("a key during listening: keys win")
                    return await self._more_keys(command, key)
                chunk = self.audio.take()
                result: RecognizerResult | None = None
                if chunk:
                    fed += len(chunk)
                    result = await recognizer.feed_async(chunk)
                if result is None and time.monotonic() - began > guard:
                    log.info("speech turn ended by the wall-clock guard (%d bytes of audio)", fed)
                    result = await recognizer.finish_async()
                if result is not None:
                    log.info(
                        "speech turn: %s after %.1f s of caller audio (%.1f s wall)",
                        result.status,
                        fed / 16000,
                        time.monotonic() - began,
                    )
                    return speech_event(result.status, result.text, result.confidence)
        finally:
            self.audio.listen(False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.audio.close()
