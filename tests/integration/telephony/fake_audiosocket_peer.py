"""A fake Asterisk for the media path (ivr/telephony/media_channel.py), over loopback TCP.

FastAGI on one side, answered as tests/integration/telephony/fake_asterisk.py answers it (`CallScript`), and
on `EXEC AudioSocket "<uuid>,<host>:<port>"` the phone's side of AudioSocket: a `Phone` connects to that
address, sends the UUID frame and then, like a phone's RTP, sends a 20 ms frame of audio every 20 ms (the
caller's voice when the test's script gives it some, else silence), with the echo of what the server plays
mixed in when asked (weaker by `echo_db`, later by `echo_delay`). The test's script (a coroutine given the
`Phone`) presses keys (DTMF frames), speaks, drops the socket or hangs up, at moments it picks from what it
hears (`Phone.heard`).

The EXEC is answered as Asterisk answers it (docs/speech.md, "How AGI stays in control"): `200 result=0`
once the server ends the socket (hang-up frame or close), `200 result=-1` at once when Asterisk cannot
connect (`connect=False`) or when the socket was lost on the phone's side, `HANGUP` then `200 result=-1`
when the caller hung up (the channel is dead from then on: only SET VARIABLE is still taken). While the EXEC
runs Asterisk reads no other AGI command: one that arrives is noted in `MediaCall.commands_during_exec` and
answered after the EXEC.

The wire format is written out here (kind byte, 2-byte big-endian length, payload) rather than taken from
ivr.telephony.audiosocket, so the server's own codec is not what checks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fake_asterisk import CallScript
from pydub import AudioSegment

HANGUP, UUID, DTMF, AUDIO = 0x00, 0x01, 0x03, 0x10
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit mono
FRAME_SECONDS = 0.02
SILENCE = b"\0" * FRAME_BYTES
EXEC_AUDIOSOCKET = re.compile(r'^EXEC AudioSocket "([0-9a-f-]{36}),([^":]+):(\d+)"$')
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


def frames_of(pcm: bytes) -> list[bytes]:
    """PCM cut into 20 ms frames, the last one padded with silence."""
    out = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1].ljust(FRAME_BYTES, b"\0")
    return out


def segment(pcm: bytes) -> AudioSegment:
    return AudioSegment(data=pcm, sample_width=2, frame_rate=8000, channels=1)


class Phone:
    """The caller's side of one AudioSocket connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        echo_db: float | None = None,
        echo_delay: float = 0.1,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self.echo_db = echo_db
        self.echo_delay = echo_delay
        self.received: list[tuple[float, bytes]] = []  # audio frames from the server, with arrival time
        self.keys: list[tuple[float, str]] = []  # keys pressed, with the time each frame was sent
        self.said_at: list[float] = []  # when the first frame of each `say` went out
        self.sent: list[tuple[float, bytes]] = []  # every frame the phone sent (voice, echo, silence)
        self.hangup_frame = False  # the server ended the socket with a hang-up frame
        self.refused_kinds: list[int] = []  # frames from the server Asterisk would refuse (kind)
        self.ended_by = ""  # server | phone | caller_hangup
        self.ended_at = 0.0
        self.done = asyncio.Event()
        self._voice: deque[tuple[bytes, bool]] = deque()  # (frame, first of its utterance)
        self._voice_done = asyncio.Event()
        self._voice_done.set()
        self._echo: deque[tuple[float, bytes]] = deque()
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def now(self) -> float:
        return self._loop.time()

    async def start(self, call_uuid: uuid.UUID) -> None:
        self._writer.write(frame(UUID, call_uuid.bytes))
        await self._writer.drain()
        self._tasks += [self._loop.create_task(self._read()), self._loop.create_task(self._send())]

    # ---- what the server sends ---------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                kind, length = struct.unpack(">BH", await self._reader.readexactly(3))
                payload = await self._reader.readexactly(length)
                if kind == HANGUP:
                    self.hangup_frame = True
                    break
                if kind != AUDIO or len(payload) != FRAME_BYTES:
                    self.refused_kinds.append(kind)  # Asterisk 22 ends the application with an error
                    continue
                at = self.now()
                self.received.append((at, payload))
                if self.echo_db is not None:
                    self._echo.append((at, payload))
                self._arrived.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self._end("server")

    async def heard(self, wanted: Callable[[bytes], bool], *, timeout: float = 10.0) -> float:
        """The arrival time of the first frame from the server (since the start) that is `wanted`."""
        async with asyncio.timeout(timeout):
            index = 0
            while True:
                for at, pcm in self.received[index:]:
                    if wanted(pcm):
                        return at
                index = len(self.received)
                if self.done.is_set():
                    raise AssertionError("the socket ended before the frame came")
                self._arrived.clear()
                await self._arrived.wait()

    # ---- what the phone sends ----------------------------------------------------------------------

    async def _send(self) -> None:
        """A frame every 20 ms on an absolute schedule, as RTP comes from a phone."""
        start = self.now()
        tick = 0
        while not self.done.is_set():
            voice: bytes | None = None
            if self._voice:
                voice, first = self._voice.popleft()
                if first:
                    self.said_at.append(self.now())
            out = self._mix(voice)
            try:
                self._writer.write(frame(AUDIO, out))
                await self._writer.drain()
            except (ConnectionError, RuntimeError):
                break
            self.sent.append((self.now(), out))
            if not self._voice:
                self._voice_done.set()
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * FRAME_SECONDS - self.now()))

    def _mix(self, voice: bytes | None) -> bytes:
        echo = None
        if self._echo and self._echo[0][0] <= self.now() - self.echo_delay:
            echo = self._echo.popleft()[1]  # one frame a tick: the phone plays 20 ms in 20 ms
        if echo is None:
            return voice if voice is not None else SILENCE
        assert self.echo_db is not None
        weak = segment(echo).apply_gain(self.echo_db)
        mixed = weak if voice is None else segment(voice).overlay(weak)
        return bytes(mixed.raw_data)

    def dtmf(self, digit: str) -> None:
        """Press a key (Asterisk sends the frame when the key is released)."""
        self._writer.write(frame(DTMF, digit.encode("ascii")))
        self.keys.append((self.now(), digit))

    def say(self, pcm: bytes) -> None:
        """The caller speaks: `pcm` goes out frame by frame in real time (after what is still queued)."""
        frames = frames_of(pcm)
        self._voice.extend((f, i == 0) for i, f in enumerate(frames))
        if frames:
            self._voice_done.clear()

    async def said(self) -> None:
        """Until everything given to `say` has gone out."""
        await self._voice_done.wait()

    def drop(self) -> None:
        """The socket is lost (the network, Asterisk's side) while the caller is still there."""
        self._writer.transport.abort()
        self._end("phone")

    def hang_up(self) -> None:
        """The caller hangs up: Asterisk closes the socket."""
        self._writer.close()
        self._end("caller_hangup")

    def _end(self, by: str) -> None:
        if not self.ended_by:
            self.ended_by = by
            self.ended_at = self.now()
        self.done.set()
        self._arrived.set()

    async def close(self) -> None:
        """Stop everything (the test's script too: the call has left the socket)."""
        if self._closed:
            return
        self._closed = True
        self._end("phone")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a script's failure is reported by run_media_call
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


Script = Callable[[Phone], Coroutine[Any, Any, None]]


@dataclass
class MediaCall:
    """What one call did, on both sockets. Times are the event loop's clock."""

    agi: CallScript
    log: list[tuple[float, str]] = field(default_factory=list)  # every AGI command as it arrived
    exec_sent: list[float] = field(default_factory=list)
    exec_answers: list[tuple[float, str]] = field(default_factory=list)  # when and what EXEC answered
    commands_during_exec: list[str] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)
    script_errors: list[BaseException] = field(default_factory=list)

    @property
    def phone(self) -> Phone:
        assert len(self.phones) == 1, f"{len(self.phones)} AudioSocket connections"
        return self.phones[0]

    def set_variables(self) -> list[tuple[float, str, str]]:
        """Every SET VARIABLE as (arrival, name, value)."""
        out = []
        for t, command in self.log:
            match = re.match(r'SET VARIABLE (\S+) "((?:[^"\\]|\\.)*)"', command)
            if match:
                out.append((t, match.group(1), match.group(2)))
        return out


async def run_media_call(
    port: int,
    header: bytes,
    script: Script | None = None,
    *,
    agi: CallScript | None = None,
    connect: bool = True,
    exec_delay: float = 0.0,
    echo_db: float | None = None,
    echo_delay: float = 0.1,
    max_commands: int = 500,
    timeout: float = 60.0,
) -> MediaCall:
    """One call: the AGI header, then every command answered until the server closes the connection.
    `connect=False`: Asterisk cannot reach the AudioSocket server; EXEC answers -1 after `exec_delay`.
    A failure of the script (an assertion, a frame that never came) is raised here, after the call."""
    call = MediaCall(agi if agi is not None else CallScript())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    await writer.drain()
    asterisk = _Asterisk(call, reader, writer, script, connect, exec_delay, echo_db, echo_delay)
    try:
        async with asyncio.timeout(timeout):
            await asterisk.run(max_commands)
    finally:
        await asterisk.close()
    if call.script_errors:
        raise call.script_errors[0]
    return call


class _Asterisk:
    def __init__(
        self,
        call: MediaCall,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        script: Script | None,
        connect: bool,
        exec_delay: float,
        echo_db: float | None,
        echo_delay: float,
    ) -> None:
        self.call = call
        self.reader = reader
        self.writer = writer
        self.script = script
        self.connect = connect
        self.exec_delay = exec_delay
        self.echo_db = echo_db
        self.echo_delay = echo_delay
        self.hung_up = False
        self.next_line: asyncio.Task[bytes] | None = None
        self.loop = asyncio.get_running_loop()

    async def _line(self) -> str | None:
        task, self.next_line = self.next_line, None
        raw = await (task if task is not None else self.reader.readline())
        if not raw:
            return None
        command = raw.decode().rstrip("\n")
        self.call.log.append((self.loop.time(), command))
        return command

    def answer(self, command: str) -> str:
        if self.hung_up and not command.startswith("SET VARIABLE"):
            self.call.agi.commands.append(command)
            return DEAD_CHANNEL
        return self.call.agi.answer(command)

    async def run(self, max_commands: int) -> None:
        for _ in range(max_commands):
            command = await self._line()
            if command is None:
                return
            match = EXEC_AUDIOSOCKET.match(command)
            if match is None:
                reply = self.answer(command)
            else:
                self.call.agi.commands.append(command)
                self.call.exec_sent.append(self.loop.time())
                answer = await self._exec(match)
                if answer is None:
                    return  # the server closed the AGI connection while the EXEC ran
                reply = answer
            self.writer.write(reply.encode() + b"\n")
            await self.writer.drain()
        raise AssertionError("the server never ended the call")

    async def _exec(self, match: re.Match[str]) -> str | None:
        """EXEC AudioSocket: its answer once the socket has ended."""
        if not self.connect:
            await asyncio.sleep(self.exec_delay)
            self.call.exec_answers.append((self.loop.time(), "200 result=-1"))
            return "200 result=-1"
        phone = await self._audiosocket(match)
        early: list[str] = []
        while not phone.done.is_set():
            self.next_line = self.next_line or self.loop.create_task(self.reader.readline())
            ended = self.loop.create_task(phone.done.wait())
            await asyncio.wait({ended, self.next_line}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if self.next_line.done() and not phone.done.is_set():
                command = await self._line()
                if command is None:
                    await phone.close()
                    return None
                self.call.commands_during_exec.append(command)
                early.append(command)
        if phone.ended_by == "caller_hangup":
            self.hung_up = True
            reply = "HANGUP\n200 result=-1"
        elif phone.ended_by == "phone":
            reply = "200 result=-1"
        else:
            reply = "200 result=0"
        await phone.close()
        self.call.exec_answers.append((self.loop.time(), reply.splitlines()[-1]))
        return "\n".join([reply, *(self.answer(command) for command in early)])

    async def _audiosocket(self, match: re.Match[str]) -> Phone:
        """Connect to the address in the EXEC's argument, as Asterisk does, and start the test's script."""
        reader, writer = await asyncio.open_connection(match.group(2), int(match.group(3)))
        phone = Phone(reader, writer, echo_db=self.echo_db, echo_delay=self.echo_delay)
        self.call.phones.append(phone)
        await phone.start(uuid.UUID(match.group(1)))
        if self.script is not None:
            task: asyncio.Task[None] = self.loop.create_task(self.script(phone))
            task.add_done_callback(self._note_failure)
            phone._tasks.append(task)
        return phone

    def _note_failure(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.call.script_errors.append(error)

    async def close(self) -> None:
        if self.next_line is not None:
            self.next_line.cancel()
        for phone in self.call.phones:
            await phone.close()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
