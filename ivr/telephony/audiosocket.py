"""AudioSocket, server side: Asterisk streams a call's audio and keys to us over TCP, and plays what we send.

The media path for speech (docs/speech.md, "The media path"). Asterisk's `AudioSocket(uuid,host:port)`
application, started by the dialplan or from inside an AGI session (`EXEC AudioSocket`), connects to this
server, sends the call's UUID, then for as long as it runs:

- every 20 ms of caller audio as one frame of 8 kHz 16-bit mono signed linear (320 bytes), while RTP
  arrives (a phone that sends no RTP in silence sends nothing);
- every key the caller presses as one DTMF frame (Asterisk 22.4 and later), the digit as one ASCII byte;
- and it writes every audio frame we send straight to the channel, at once: Asterisk does not pace or
  queue it (app_audiosocket.c reads a frame whenever the socket is readable and `ast_write`s it). Audio
  must therefore be sent in real time, 20 ms a frame: sent faster, it reaches the phone in a burst; and
  what was sent cannot be taken back, so barge-in stops a prompt by not sending the next frame
  (`PacedSender.stop`).

The application ends when the caller hangs up (Asterisk closes the socket, the AGI command returns -1), or
when we send a hang-up frame or close the socket (it returns 0: the dialplan, or the AGI session that ran
it, goes on with the call). It also ends, with an error (-1, the call itself goes on), when nothing came from
either side for 2 s, or when we send anything but audio or hang-up: Asterisk 22.10 refuses the other kinds.
`AudioSocketConnection` sends only those two, and a 20 ms silence frame after a second with nothing sent
(`keepalive`), so a caller who sends no RTP while we send nothing keeps the socket.

The wire format (res/res_audiosocket.c, include/asterisk/res_audiosocket.h): each frame is one kind byte,
a 2-byte big-endian payload length, the payload. Kinds: 0x00 hang-up (no payload), 0x01 the UUID (16
bytes, Asterisk to us, first), 0x03 DTMF (1 byte), 0x10 signed linear 8 kHz audio, 0xff an error (an
optional code byte). 0x11-0x18 are audio at 12-192 kHz, which the application never sends (it sets the
channel to 8 kHz) and this driver refuses.

Why no library: the protocol is these few lines, and no maintained Python package implements it with the
DTMF frames (checked for the platform notes, 2026-12). Here every call is a pair of asyncio streams in the
server's own event loop, and the pacing of every call's audio runs on one shared 20 ms clock instead of a
timer per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
import uuid
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from ivr.telephony.channel import ChannelFailed

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit, host byte order (little-endian on the machines we run on)
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * SAMPLE_WIDTH * FRAME_MS // 1000  # 320
SILENCE_FRAME = b"\0" * FRAME_BYTES
HEADER_BYTES = 3
MAX_PAYLOAD = 0xFFFF
UUID_TIMEOUT = 5.0  # seconds from the connection to its UUID frame (Asterisk sends it at once)
KEEPALIVE = 1.0  # seconds without anything sent before a silence frame (Asterisk gives up after 2 s)


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10  # signed linear, 8 kHz
    ERROR = 0xFF


class AudioSocketError(ChannelFailed):
    """The peer broke the protocol (a frame we cannot take, no UUID first) or reported an error."""


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes = b""


@dataclass(frozen=True)
class Audio:
    """20 ms (usually) of the caller's audio: 8 kHz 16-bit mono signed linear."""

    pcm: bytes


@dataclass(frozen=True)
class Dtmf:
    """A key the caller pressed (sent by Asterisk when the key is released)."""

    digit: str


MediaEvent = Audio | Dtmf


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """One frame on the wire: kind, big-endian length, payload."""
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"frame kind {kind} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes: at most {MAX_PAYLOAD}")
    return bytes((kind, len(payload) >> 8, len(payload) & 0xFF)) + payload


def audio_frame(pcm: bytes) -> bytes:
    return encode_frame(Kind.AUDIO, pcm)


HANGUP_FRAME = encode_frame(Kind.HANGUP)


class FrameDecoder:
    """Turns the bytes of a stream, in whatever pieces TCP delivers them, into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= HEADER_BYTES:
            length = (buffer[offset + 1] << 8) | buffer[offset + 2]
            end = offset + HEADER_BYTES + length
            if end > len(buffer):
                break
            frames.append(Frame(buffer[offset], bytes(buffer[offset + HEADER_BYTES : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)


def event_of(frame: Frame) -> MediaEvent | None:
    """The media event a frame from Asterisk carries; None for a hang-up. Raises AudioSocketError for an
    error frame and for kinds a call in progress never sends (a second UUID, wideband audio)."""
    if frame.kind == Kind.AUDIO:
        return Audio(frame.payload)
    if frame.kind == Kind.DTMF:
        if len(frame.payload) != 1:
            raise AudioSocketError(f"DTMF frame of {len(frame.payload)} bytes")
        return Dtmf(chr(frame.payload[0]))
    if frame.kind == Kind.HANGUP:
        return None
    if frame.kind == Kind.ERROR:
        code = frame.payload[0] if frame.payload else 0
        raise AudioSocketError(f"Asterisk reported AudioSocket error {code:#04x}")
    raise AudioSocketError(f"unexpected AudioSocket frame kind {frame.kind:#04x}")


def parse_uuid(frame: Frame) -> uuid.UUID:
    if frame.kind != Kind.UUID or len(frame.payload) != 16:
        raise AudioSocketError(
            f"first frame is kind {frame.kind:#04x} ({len(frame.payload)} bytes), not a UUID"
        )
    return uuid.UUID(bytes=frame.payload)


def split_frames(pcm: bytes) -> list[bytes]:
    """PCM cut into 20 ms frames; the last one padded with silence."""
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1].ljust(FRAME_BYTES, b"\0")
    return frames


def wav_pcm(path: Path) -> bytes:
    """The samples of a WAV file that is already telephone audio (8 kHz, 16-bit, mono)."""
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getframerate(), wav.getsampwidth(), wav.getnchannels())
        if shape != (SAMPLE_RATE, SAMPLE_WIDTH, 1):
            raise ValueError(
                f"{path}: {shape[0]} Hz, {8 * shape[1]}-bit, {shape[2]} channels; need 8 kHz 16-bit mono"
            )
        return wav.readframes(wav.getnframes())


def application_args(call_uuid: uuid.UUID | str, host: str, port: int) -> str:
    """The argument of `AudioSocket(...)` (the dialplan application; `EXEC AudioSocket <this>` in AGI)."""
    return f"{uuid.UUID(str(call_uuid))},{host}:{port}"


class AudioSocketConnection:
    """One call's AudioSocket: read its audio and keys, send audio, end it. Built by AudioSocketServer."""

    def __init__(
        self,
        call_uuid: uuid.UUID,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        decoder: FrameDecoder | None = None,
        pending: list[Frame] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uuid = call_uuid
        self._reader = reader
        self._writer = writer
        self._decoder = decoder or FrameDecoder()
        self._pending: list[Frame] = list(pending or [])
        self._clock = clock
        self._ended = False  # Asterisk closed or hung up the stream
        self._closing = False  # we ended it
        self.last_sent = clock()
        self.frames_in = 0
        self.frames_out = 0
        self.digits = 0
        self._keepalive: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._ended or self._closing or self._writer.is_closing()

    async def read(self) -> MediaEvent | None:
        """The next audio chunk or key; None once the stream has ended (the caller hung up, or the
        application stopped)."""
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                event = event_of(frame)
                if event is None:
                    self._ended = True
                    self._pending.clear()
                    return None
                if isinstance(event, Audio):
                    self.frames_in += 1
                else:
                    self.digits += 1
                return event
            if self._ended:
                return None
            try:
                data = await self._reader.read(8192)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self._ended = True
                return None
            self._pending.extend(self._decoder.feed(data))

    def __aiter__(self) -> AudioSocketConnection:
        return self

    async def __anext__(self) -> MediaEvent:
        event = await self.read()
        if event is None:
            raise StopAsyncIteration
        return event

    def send_audio(self, pcm: bytes) -> bool:
        """Queue one frame of audio for Asterisk (it plays at once: pace it, see PacedSender). False when
        the stream is gone."""
        if self.closed:
            return False
        self._writer.write(audio_frame(pcm))
        self.frames_out += 1
        self.last_sent = self._clock()
        return True

    def start_keepalive(self, interval: float = KEEPALIVE) -> None:
        """Send a 20 ms silence frame whenever nothing was sent for `interval` seconds."""
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive(interval))

    async def _keep_alive(self, interval: float) -> None:
        while not self.closed:
            idle = self._clock() - self.last_sent
            if idle >= interval:
                self.send_audio(SILENCE_FRAME)
                idle = 0.0
            await asyncio.sleep(interval - idle)

    async def end(self) -> None:
        """End the application gracefully (hang-up frame, then close): Asterisk goes on with the call in
        the dialplan, or returns 0 to the AGI session that started it. The call is not hung up."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self.closed:
            self._writer.write(HANGUP_FRAME)
        self._closing = True
        await self._close_writer()

    async def _close_writer(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)

    def abort(self) -> None:
        """Drop the connection at once (server shutdown)."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._closing = True
        self._writer.transport.abort()


Handler = Callable[[AudioSocketConnection], Awaitable[None]]


class AudioSocketServer:
    """Accepts Asterisk's AudioSocket connections and hands each, by its UUID, to whoever waits for it.

    The normal order: a call's code makes a UUID, calls `expect(uuid)`, then has Asterisk run
    `AudioSocket(uuid,host:port)`; the future resolves with the connection. A connection whose UUID nobody
    expects goes to `handler` when one is given (a dialplan that starts AudioSocket by itself), else it is
    ended at once (the application returns and the call goes on).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        handler: Handler | None = None,
        uuid_timeout: float = UUID_TIMEOUT,
        keepalive: float | None = KEEPALIVE,
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.uuid_timeout = uuid_timeout
        self.keepalive = keepalive
        self._server: asyncio.Server | None = None
        self._waiting: dict[uuid.UUID, asyncio.Future[AudioSocketConnection]] = {}
        self._connections: set[AudioSocketConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.refused = 0

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port, backlog=1024)
        sock = self._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        log.info("AudioSocket server listening on %s:%s", self.host, self.port)
        return self.host, self.port

    def expect(self, call_uuid: uuid.UUID | str) -> asyncio.Future[AudioSocketConnection]:
        key = uuid.UUID(str(call_uuid))
        future: asyncio.Future[AudioSocketConnection] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        return future

    def forget(self, call_uuid: uuid.UUID | str) -> None:
        future = self._waiting.pop(uuid.UUID(str(call_uuid)), None)
        if future is not None and not future.done():
            future.cancel()

    async def accept(self, call_uuid: uuid.UUID | str, timeout: float) -> AudioSocketConnection:
        """Wait for the connection of `call_uuid` (registered now if it was not expected yet)."""
        key = uuid.UUID(str(call_uuid))
        future = self._waiting.get(key) or self.expect(key)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if not future.done():
                self.forget(key)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = FrameDecoder()
        frames: list[Frame] = []
        try:
            async with asyncio.timeout(self.uuid_timeout):
                while not frames:
                    data = await reader.read(4096)
                    if not data:
                        raise AudioSocketError("closed before its UUID")
                    frames = decoder.feed(data)
            call_uuid = parse_uuid(frames[0])
        except (TimeoutError, AudioSocketError, ConnectionError, OSError) as exc:
            log.warning("AudioSocket connection refused: %s", exc or "no UUID in time")
            self.refused += 1
            writer.close()
            return
        conn = AudioSocketConnection(call_uuid, reader, writer, decoder=decoder, pending=frames[1:])
        future = self._waiting.pop(call_uuid, None)
        if future is not None and not future.done():
            self._adopt(conn)
            future.set_result(conn)
        elif self.handler is not None:
            self._adopt(conn)
            task = asyncio.get_running_loop().create_task(self._run_handler(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            log.warning("AudioSocket %s: nobody expects this call; ending it", call_uuid)
            self.refused += 1
            await conn.end()

    def _adopt(self, conn: AudioSocketConnection) -> None:
        self.accepted += 1
        self._connections.add(conn)
        if self.keepalive:
            conn.start_keepalive(self.keepalive)

    async def _run_handler(self, conn: AudioSocketConnection) -> None:
        assert self.handler is not None
        try:
            await self.handler(conn)
        except Exception:
            log.exception("AudioSocket %s: handler failed", conn.uuid)
        finally:
            self._connections.discard(conn)
            if not conn.closed:
                await conn.end()

    def release(self, conn: AudioSocketConnection) -> None:
        """The consumer is done with `conn` (ended or gone): stop tracking it."""
        self._connections.discard(conn)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        for conn in list(self._connections):
            conn.abort()
        self._connections.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


# ---- pacing ------------------------------------------------------------------------------------------


@dataclass
class PlayResult:
    frames: int  # frames of the prompt
    sent: int  # frames handed to Asterisk
    stopped: bool  # stop() (barge-in) or the stream went away before the end
    started: float  # clock time of the first frame
    ended: float  # clock time of the end: the last frame played out, or the stop
    unplayed_ms: float = 0.0  # at a stop: audio already sent whose time had not come (the lead)

    @property
    def complete(self) -> bool:
        return not self.stopped


class Sink(Protocol):
    """What PacedSender writes to: an AudioSocketConnection fits."""

    @property
    def closed(self) -> bool: ...

    def send_audio(self, pcm: bytes) -> bool: ...


@dataclass(eq=False)
class _Stream:
    sink: Sink
    frames: list[bytes]
    start: float
    future: asyncio.Future[PlayResult]
    sent: int = 0
    shifted: float = 0.0  # seconds the schedule moved because the clock ran late


@dataclass
class PacerStats:
    ticks: int = 0
    frames: int = 0
    late_ticks: int = 0  # ticks that came a frame or more after their time
    reanchored: int = 0  # streams whose schedule moved rather than send a burst
    max_late_ms: float = 0.0
    lateness_ms: list[float] = field(default_factory=list)  # of the last ticks, for percentiles

    def note_late(self, late: float) -> None:
        self.lateness_ms.append(late * 1000)
        if len(self.lateness_ms) > 20000:
            del self.lateness_ms[:10000]
        self.max_late_ms = max(self.max_late_ms, late * 1000)


class PacedSender:
    """Plays audio to many calls in real time on one clock: every 20 ms it sends each playing call its
    next frame, so the event loop wakes 50 times a second whatever the number of calls.

    Frames go out `lead` frames ahead of their time (default 2, i.e. 40 ms) so a late tick does not leave
    the phone without audio; that lead is all that can still reach the caller after `stop()`, which takes
    effect at once: no further frame of that prompt is sent. A tick more than `max_burst` frames late moves
    the prompt's schedule instead of sending the missed frames in one burst (the caller hears it a little
    later, never faster). `play()` returns when the last frame's time has come (the prompt was heard to the
    end) or at the stop.
    """

    def __init__(
        self,
        *,
        lead: int = 2,
        max_burst: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if lead < 0 or max_burst < 1:
            raise ValueError("lead >= 0 and max_burst >= 1")
        self.lead = lead
        self.max_burst = max_burst
        self.period = FRAME_MS / 1000
        self._clock = clock
        self._sleep = sleep
        self._streams: dict[int, _Stream] = {}  # id(sink) -> its stream
        self._runner: asyncio.Task[None] | None = None
        self._epoch = clock()
        self.stats = PacerStats()

    @property
    def playing(self) -> int:
        return len(self._streams)

    def is_playing(self, sink: Sink) -> bool:
        return id(sink) in self._streams

    def play(self, sink: Sink, pcm: bytes) -> asyncio.Future[PlayResult]:
        """Start playing `pcm` to `sink` (replacing what it was playing); the future resolves when it has
        played out or was stopped."""
        self.stop(sink)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PlayResult] = loop.create_future()
        now = self._clock()
        stream = _Stream(sink=sink, frames=split_frames(pcm), start=now, future=future)
        self._streams[id(sink)] = stream
        self._send_due(stream, now)  # the lead goes out at once: no wait for the next tick
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        return future

    def stop(self, sink: Sink) -> PlayResult | None:
        """Barge-in: no further frame of what `sink` plays is sent. Returns the result (None if it was not
        playing); the audio already sent (`unplayed_ms`, at most the lead) still reaches the caller."""
        stream = self._streams.pop(id(sink), None)
        if stream is None:
            return None
        return self._finish(stream, self._clock(), stopped=True)

    def _finish(self, stream: _Stream, now: float, *, stopped: bool) -> PlayResult:
        played = max(0.0, now - stream.start - stream.shifted)
        unplayed = max(0.0, stream.sent * self.period - played) if stopped else 0.0
        result = PlayResult(
            frames=len(stream.frames),
            sent=stream.sent,
            stopped=stopped,
            started=stream.start,
            ended=now,
            unplayed_ms=round(unplayed * 1000, 1),
        )
        if not stream.future.done():
            stream.future.set_result(result)
        return result

    def _send_due(self, stream: _Stream, now: float) -> None:
        elapsed = now - stream.start - stream.shifted
        due = min(len(stream.frames), self.lead + math.floor(elapsed / self.period + 1e-9) + 1)
        missing = due - stream.sent
        if missing > self.max_burst and stream.sent:
            # The clock ran late: shift the rest of the prompt instead of bursting it out.
            lag = (missing - self.max_burst) * self.period
            stream.shifted += lag
            self.stats.reanchored += 1
            due = stream.sent + self.max_burst
        for index in range(stream.sent, due):
            if not stream.sink.send_audio(stream.frames[index]):
                break
            stream.sent += 1
            self.stats.frames += 1

    def tick(self, now: float) -> int:
        """Send every stream's due frames and finish the streams that played out. Returns how many are
        still playing. The loop calls it every 20 ms; tests call it with their own clock."""
        self.stats.ticks += 1
        for key, stream in list(self._streams.items()):
            if stream.sink.closed:
                del self._streams[key]
                self._finish(stream, now, stopped=True)
                continue
            self._send_due(stream, now)
            end = stream.start + stream.shifted + len(stream.frames) * self.period
            if stream.sent >= len(stream.frames) and now >= end - 1e-9:
                del self._streams[key]
                self._finish(stream, now, stopped=False)
        return len(self._streams)

    def _next_tick(self, now: float) -> float:
        """The next point of the shared 20 ms grid after `now`."""
        return self._epoch + (math.floor((now - self._epoch) / self.period) + 1) * self.period

    async def _run(self) -> None:
        due = self._next_tick(self._clock())
        while self._streams:
            now = self._clock()
            if now < due:
                await self._sleep(due - now)
                now = self._clock()
            late = now - due
            if late >= self.period:
                self.stats.late_ticks += 1
            self.stats.note_late(max(0.0, late))
            if not self.tick(now):
                break
            due = self._next_tick(now)

    def stop_all(self) -> None:
        for stream in list(self._streams.values()):
            self.stop(stream.sink)

    async def close(self) -> None:
        """Stop everything and the clock."""
        self.stop_all()
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._runner = None
