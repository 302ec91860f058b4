"""EagiChannel over a scripted AGI transport and a real pipe standing in for EAGI's fd 3: the scripted
Asterisk writes caller audio into the pipe while it answers WAIT FOR DIGIT, as the real one does. A fake
recognizer decides from the audio: byte 1 is a word, zero bytes are silence. Keys win over speech;
speech gives Speech; rejected speech gives Speech(""); nothing gives NoInput; no grammar means keys only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipe_asterisk import PipeAsterisk

from ivr.engine.commands import Collect, PromptRef
from ivr.engine.events import Digits, NoInput, Speech
from ivr.telephony.agi import AgiResponse
from ivr.telephony.eagi import EagiChannel, Fd3Audio
from ivr.telephony.stdio_agi import PystTransport, make_pyst_agi

pytestmark = pytest.mark.speech

PACKET = 320  # 20 ms


@dataclass(frozen=True)
class Result:
    status: str
    text: str = ""
    confidence: float = 0.0


class FakeRecognizer:
    def __init__(self, *, confidence: float = 0.9) -> None:
        self.confidence = confidence
        self.grammars: list[list[str]] = []
        self.heard = False
        self.silence = 0
        self.timeout_bytes = 0

    def start(self, phrases: Iterable[str], *, no_speech_timeout: float | None = None) -> None:
        self.grammars.append(list(phrases))
        self.heard, self.silence = False, 0
        self.timeout_bytes = int((no_speech_timeout or 5.0) * 16000)

    async def feed_async(self, chunk: bytes) -> Result | None:
        for byte in chunk:
            if byte:
                self.heard, self.silence = True, 0
            else:
                self.silence += 1
        if self.heard and self.silence >= 3200:
            status = "match" if self.confidence >= 0.5 else "nomatch"
            text = self.grammars[-1][0] if status == "match" else "?"
            return Result(status, text, self.confidence)
        if not self.heard and self.silence >= self.timeout_bytes:
            return Result("noinput")
        return None

    async def finish_async(self) -> Result:
        return Result("noinput")


class Asterisk:
    """Answers AGI commands; on each WAIT FOR DIGIT writes the next packets of caller audio to fd 3."""

    def __init__(self, audio_fd: int, audio: bytes, *, key_at: int | None = None, key: str = "1") -> None:
        self.audio_fd = audio_fd
        self.audio = audio
        self.key_at = key_at
        self.key = key
        self.waits = 0
        self.commands: list[str] = []

    async def command(self, text: str, *, timeout: float) -> AgiResponse:
        self.commands.append(text)
        if text.startswith("WAIT FOR DIGIT"):
            self.waits += 1
            if self.key_at is not None and self.waits >= self.key_at:
                return AgiResponse(code=200, result=str(ord(self.key)))
            # 200 ms of audio per 200 ms poll: ten packets (silence once the script's audio is used up)
            data, self.audio = self.audio[: PACKET * 10], self.audio[PACKET * 10 :]
            os.write(self.audio_fd, data.ljust(PACKET * 10, b"\0"))
            await asyncio.sleep(0.005)  # let the reader thread see it (no result depends on this)
            return AgiResponse(code=200, result="0")
        return AgiResponse(code=200, result="0")

    async def close(self) -> None:
        return None


class Voice:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self, line: str, lang: str, ref: PromptRef) -> list[Path]:
        path = self.folder / f"{ref.key}.wav"
        path.touch()
        return [path]


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


MENU = Collect(
    (PromptRef("main_menu"),), max_digits=1, first_digit_timeout=1.0, grammar=("баланс", "оператор")
)
SPOKEN = b"\0" * 1600 + b"\1" * 3200 + b"\0" * 16000


def run(
    tmp_path: Path, pipe: tuple[int, int], asterisk_audio: bytes, command: Collect, **kwargs: object
) -> tuple[object, Asterisk, FakeRecognizer]:
    read_fd, write_fd = pipe
    asterisk = Asterisk(write_fd, asterisk_audio, **kwargs)  # type: ignore[arg-type]
    recognizer = FakeRecognizer()
    audio = Fd3Audio(read_fd, poll=0.05).start()
    channel = EagiChannel(
        asterisk, Voice(tmp_path), "operator", "ru", audio=audio, recognizer_factory=lambda: recognizer
    )
    try:
        event = asyncio.run(channel.collect(command, ""))
    finally:
        channel.close()
    return event, asterisk, recognizer


def test_speech_gives_the_phrase(tmp_path: Path, pipe: tuple[int, int]) -> None:
    event, asterisk, recognizer = run(tmp_path, pipe, SPOKEN, MENU)
    assert event == Speech("баланс", 0.9)
    assert recognizer.grammars == [["баланс", "оператор"]]
    assert asterisk.commands[0].startswith("STREAM FILE")  # the prompt first, then listening


def test_a_key_wins_over_speech(tmp_path: Path, pipe: tuple[int, int]) -> None:
    event, _, _ = run(tmp_path, pipe, b"\1" * 16000 * 20, MENU, key_at=3, key="2")
    assert event == Digits("2")


def test_a_key_during_the_prompt_skips_listening(tmp_path: Path, pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe

    class Barge(Asterisk):
        async def command(self, text: str, *, timeout: float) -> AgiResponse:
            if text.startswith("STREAM FILE"):
                self.commands.append(text)
                return AgiResponse(code=200, result=str(ord("0")))
            return await super().command(text, timeout=timeout)

    recognizer = FakeRecognizer()
    asterisk = Barge(write_fd, b"")
    channel = EagiChannel(
        asterisk,
        Voice(tmp_path),
        "operator",
        "ru",
        audio=Fd3Audio(read_fd).start(),
        recognizer_factory=lambda: recognizer,
    )
    try:
        assert asyncio.run(channel.collect(MENU, "")) == Digits("0")
    finally:
        channel.close()
    assert recognizer.grammars == []


def test_silence_is_no_input(tmp_path: Path, pipe: tuple[int, int]) -> None:
    event, _, _ = run(tmp_path, pipe, b"", MENU)
    assert event == NoInput()


def test_rejected_speech_is_an_empty_phrase(tmp_path: Path, pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    recognizer = FakeRecognizer(confidence=0.2)
    channel = EagiChannel(
        Asterisk(write_fd, SPOKEN),
        Voice(tmp_path),
        "operator",
        "ru",
        audio=Fd3Audio(read_fd, poll=0.05).start(),
        recognizer_factory=lambda: recognizer,
    )
    try:
        assert asyncio.run(channel.collect(MENU, "")) == Speech("", 0.2)
    finally:
        channel.close()


def test_no_grammar_is_keys_only(tmp_path: Path, pipe: tuple[int, int]) -> None:
    keys_only = Collect((PromptRef("ask_number"),), max_digits=1, first_digit_timeout=1.0)
    event, asterisk, recognizer = run(tmp_path, pipe, SPOKEN, keys_only)
    assert event == NoInput()
    assert recognizer.grammars == []
    assert [c for c in asterisk.commands if c.startswith("WAIT FOR DIGIT")] == ["WAIT FOR DIGIT 1000"]


def test_a_broken_model_falls_back_to_keys(tmp_path: Path, pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe

    def broken() -> FakeRecognizer:
        raise RuntimeError("no model")

    asterisk = Asterisk(write_fd, b"", key_at=1, key="3")
    channel = EagiChannel(
        asterisk,
        Voice(tmp_path),
        "operator",
        "ru",
        audio=Fd3Audio(read_fd).start(),
        recognizer_factory=broken,
    )
    try:
        assert asyncio.run(channel.collect(MENU, "")) == Digits("3")
    finally:
        channel.close()


def test_without_a_model_a_question_with_phrases_is_keys_only(tmp_path: Path, pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe

    def broken() -> FakeRecognizer:
        raise RuntimeError("no model")

    asterisk = Asterisk(write_fd, SPOKEN)
    channel = EagiChannel(
        asterisk,
        Voice(tmp_path),
        "operator",
        "ru",
        audio=Fd3Audio(read_fd).start(),
        recognizer_factory=broken,
    )
    try:
        assert asyncio.run(channel.collect(MENU, "")) == NoInput()
        assert "WAIT FOR DIGIT 1000" in asterisk.commands  # the question's own timeout, keys only
        assert asyncio.run(channel.collect(MENU, "")) == NoInput()
    finally:
        channel.close()


def test_a_key_while_the_model_still_loads_wins(tmp_path: Path, pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    loaded = threading.Event()
    recognizer = FakeRecognizer()

    def slow() -> FakeRecognizer:
        loaded.wait(10)
        return recognizer

    class KeyThenLoaded(Asterisk):
        async def command(self, text: str, *, timeout: float) -> AgiResponse:
            response = await super().command(text, timeout=timeout)
            if response.value > 0:
                loaded.set()  # the model finishes loading only after the key (asyncio.run joins the thread)
            return response

    asterisk = KeyThenLoaded(write_fd, b"", key_at=2, key="4")
    channel = EagiChannel(
        asterisk, Voice(tmp_path), "operator", "ru", audio=Fd3Audio(read_fd).start(), recognizer_factory=slow
    )
    try:
        assert asyncio.run(channel.collect(MENU, "")) == Digits("4")
        assert recognizer.grammars == []  # never listened: the key came first
    finally:
        loaded.set()
        channel.close()


@pytest.mark.timeout(60)
def test_speech_over_the_stdio_transport(tmp_path: Path, pipe: tuple[int, int]) -> None:
    """`ivr agi --eagi` for real: pyst2 over pipes, each command blocking the event loop until Asterisk
    answers (WAIT FOR DIGIT takes its time, as in Asterisk). The recognizer is still made in a thread
    while keys are polled, the audio from fd 3 still reaches it, and no thread is left afterwards."""
    read_fd, write_fd = pipe
    phrase = b"\0" * 3200 + b"\1" * 3200 + b"\0" * 4000  # said over and over, wherever listening begins
    sent = 0
    waits = 0

    def answer(command: str) -> str:
        nonlocal sent, waits
        if command.startswith("WAIT FOR DIGIT"):
            waits += 1
            if waits > 60:  # 12 s of polls: speech never got through; end the test with a key
                return f"200 result={ord('9')}"
            chunk = bytes(phrase[(sent + i) % len(phrase)] for i in range(PACKET * 10))
            sent += len(chunk)
            os.write(write_fd, chunk)
            time.sleep(int(command.split()[-1]) / 1000)  # Asterisk waits that long for a key
        return "200 result=0"

    recognizer = FakeRecognizer()

    def slow_model() -> FakeRecognizer:
        time.sleep(0.5)  # loading the model: the first polls happen meanwhile
        return recognizer

    previous_sighup = signal.getsignal(signal.SIGHUP)
    before = set(threading.enumerate())
    header = b"agi_request: ivr-agi\nagi_channel: PJSIP/tester-00000001\nagi_enhanced: 1.0\n\n"
    asterisk = PipeAsterisk(header, answer).start()
    agi = make_pyst_agi(asterisk.agi_stdin, asterisk.agi_stdout)
    channel = EagiChannel(
        PystTransport(agi),
        Voice(tmp_path),
        "operator",
        "ru",
        audio=Fd3Audio(read_fd, poll=0.05).start(),
        recognizer_factory=slow_model,
    )
    try:
        event = asyncio.run(channel.collect(MENU, ""))
    finally:
        channel.close()
        asterisk.close()
        agi.stderr.close()
        signal.signal(signal.SIGHUP, previous_sighup)
    assert event == Speech("баланс", 0.9), f"after {waits} WAIT FOR DIGIT"
    assert recognizer.grammars == [["баланс", "оператор"]]
    assert asterisk.commands[0].startswith("STREAM FILE")
    assert [t.name for t in threading.enumerate() if t not in before] == []
