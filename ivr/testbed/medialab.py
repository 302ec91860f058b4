"""The media lab: the candidate media paths of issue 12 wired into the project-local Asterisk, for the
integration test (tests/integration/telephony/test_audiosocket_media.py) and the benchmark
(scripts/bench_media.py). Nothing here is on a caller's path: the shipped dialplan is unchanged, and the
lab's extensions exist only in a test's own Asterisk, added to its rendered configuration.

A lab call is a sipp call to `media-lab-audiosocket` or `media-lab-websocket` (context [from-callers]).
The dialplan answers and hands the call to the lab's FastAGI server, which keeps control of the call the
way `ivr serve` would:

- AudioSocket: `EXEC AudioSocket(<uuid>,<host:port>)` from inside the AGI session. The AGI session waits
  until the application ends; meanwhile our AudioSocket server (ivr.telephony.audiosocket) gets the call's
  audio and keys and plays prompts over the socket. When we end the socket, EXEC returns 0 and the AGI
  session goes on (here: it reads the channel's RTP counters and sets a variable).
- chan_websocket: `EXEC Dial(WebSocket/ivr-media-lab/c(slin)f(json)v(call=<token>),,g)`: Asterisk
  connects out to our websocket server (websocket_client.conf), bridges the caller with that channel,
  paces the audio we send, flushes it on FLUSH_MEDIA, and reports keys as DTMF_END events. When we
  hang the websocket channel up, Dial returns (option g) and the AGI session goes on.

Both are driven through one small interface (`MediaLeg`: events, play, stop, end) so the test and the
benchmark run the same call over either. A third extension, `media-lab-playback`, has no media stream at
all: the AGI session plays the prompt itself (STREAM FILE) and a barge-in stops it from outside with AMI
`ControlPlayback` (`PlaybackLeg`): the benchmark's baseline, and the barge-in an ARI snoop route (caller
audio through a snoop channel, prompts still played by AGI) would have. The websocket side is a prototype
for measuring, kept here and not under ivr/telephony/: it is not the chosen path (docs/speech.md, "The
media path").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from ivr.config import Settings
from ivr.telephony.agi import AgiResponse, StreamTransport, parse_request, quote, read_header
from ivr.telephony.audiosocket import (
    FRAME_BYTES,
    FRAME_MS,
    Audio,
    AudioSocketConnection,
    AudioSocketServer,
    Dtmf,
    MediaEvent,
    PacedSender,
    PlayResult,
    application_args,
)
from ivr.telephony.channel import ChannelFailed, ChannelHungUp
from ivr.testbed import asterisk

log = logging.getLogger(__name__)

EXTENSIONS = {
    "audiosocket": "media-lab-audiosocket",
    "websocket": "media-lab-websocket",
    "playback": "media-lab-playback",  # no media stream: the benchmark's baseline (PlaybackLeg)
}
WS_CLIENT_ID = "ivr-media-lab"
EXEC_TIMEOUT = 600.0  # seconds an EXEC may block the AGI session: the whole media part of a call


def dialplan(agi_port: int) -> str:
    lines = [
        "; The media lab (ivr/testbed/medialab.py): rendered into a test's own Asterisk only.",
        "[from-callers](+)",
    ]
    for path, exten in EXTENSIONS.items():
        lines.append(f"exten => {exten},1,Goto(ivr-media-lab,{path},1)")
    lines += ["", "[ivr-media-lab]"]
    for path in EXTENSIONS:
        lines += [
            f"exten => {path},1,Answer()",
            f" same => n,AGI(agi://127.0.0.1:{agi_port}/{path})",
            " same => n,NoOp(media lab AGISTATUS=${AGISTATUS} IVR_MEDIA_LAB=${IVR_MEDIA_LAB})",
            " same => n,Hangup(16)",
        ]
    return "\n".join(lines) + "\n"


def websocket_client(ws_port: int) -> str:
    return (
        "; The media lab's chan_websocket connection (ivr/testbed/medialab.py)\n"
        f"[{WS_CLIENT_ID}]\n"
        "type = websocket_client\n"
        "connection_type = per_call_config\n"
        f"uri = ws://127.0.0.1:{ws_port}/media\n"
        "protocols = media\n"
        "connection_timeout = 2000\n"
        "reconnect_interval = 500\n"
        "reconnect_attempts = 2\n"
        "tls_enabled = no\n"
    )


def install(settings: Settings, *, agi_port: int, ws_port: int) -> None:
    """Add the lab to the running Asterisk of `settings`: its dialplan (included from the rendered
    extensions.conf) and its websocket client, then reload both."""
    paths = asterisk.asterisk_paths(settings)
    lab = paths.etc / "media-lab.conf"
    lab.write_text(dialplan(agi_port), encoding="utf-8")
    (paths.etc / "websocket_client.conf").write_text(websocket_client(ws_port), encoding="utf-8")
    extensions = paths.etc / "extensions.conf"
    text = extensions.read_text(encoding="utf-8")
    include = f'#include "{lab}"'
    if include not in text:
        extensions.write_text(text.rstrip("\n") + f"\n\n{include}\n", encoding="utf-8")
    # app_controlplayback: AMI ControlPlayback, which PlaybackLeg stops a STREAM FILE with (the line
    # itself does not load it)
    for command in (
        "dialplan reload",
        "module reload res_websocket_client.so",
        "module load app_controlplayback.so",
    ):
        result = asterisk.cli(paths, command)
        if result.returncode != 0:
            raise asterisk.AsteriskError(f"{command}: {result.stdout}{result.stderr}")
    shown = asterisk.cli(paths, "dialplan show ivr-media-lab").stdout
    if "media-lab" not in shown and "ivr-media-lab" not in shown:
        raise asterisk.AsteriskError(f"the media lab's dialplan did not load:\n{shown}")


# ---- one interface over both candidates --------------------------------------------------------------


class MediaLeg(Protocol):
    """A call's media, whichever path carries it."""

    path: str
    connected_at: float

    def events(self) -> AsyncIterator[MediaEvent]: ...

    def play(self, pcm: bytes) -> Awaitable[PlayResult]: ...

    def stop(self) -> float:
        """Barge-in: stop the prompt now. Returns the clock time the stop was issued."""
        ...

    async def end(self) -> None: ...


class AudioSocketLeg:
    path = "audiosocket"

    def __init__(self, conn: AudioSocketConnection, pacer: PacedSender) -> None:
        self.conn = conn
        self.pacer = pacer
        self.connected_at = time.monotonic()

    async def events(self) -> AsyncIterator[MediaEvent]:
        async for event in self.conn:
            yield event

    def play(self, pcm: bytes) -> Awaitable[PlayResult]:
        return self.pacer.play(self.conn, pcm)

    def stop(self) -> float:
        now = time.monotonic()
        self.pacer.stop(self.conn)
        return now

    async def end(self) -> None:
        self.pacer.stop(self.conn)
        await self.conn.end()


class WebSocketLeg:
    """chan_websocket, JSON control messages. Asterisk paces what we send; `stop` sends FLUSH_MEDIA, which
    empties its queue. Its limits (chan_websocket.c, res_http_websocket.c, 22.10): a message of more than
    65535 bytes closes the websocket (1009), and binary messages that arrive while 1000 frames (20 s) are
    queued are dropped without a word (MEDIA_XOFF at 900). So `play` sends the prompt 1 s a message, at
    most AHEAD seconds before its time, then a MARK_MEDIA whose MEDIA_MARK_PROCESSED says it was played."""

    AHEAD = 2.0
    CHUNK = 50 * FRAME_BYTES  # 1 s of audio, 16000 bytes

    path = "websocket"

    def __init__(self, ws: ServerConnection, token: str) -> None:
        self.ws = ws
        self.token = token
        self.connected_at = time.monotonic()
        self.started: dict[str, object] = {}
        self._events: asyncio.Queue[MediaEvent | None] = asyncio.Queue()
        self._marks: dict[str, asyncio.Future[float]] = {}
        self._playing: tuple[str, asyncio.Future[PlayResult], float, int] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0  # frames of the current prompt sent to Asterisk
        self.frames_in = 0
        self.digits = 0
        self.closed = asyncio.Event()

    def start_reading(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.frames_in += 1
                    await self._events.put(Audio(message))
                    continue
                event = json.loads(message)
                name = event.get("event")
                if name == "MEDIA_START":
                    self.started = event
                elif name == "DTMF_END":
                    self.digits += 1
                    await self._events.put(Dtmf(str(event.get("digit", ""))))
                elif name == "MEDIA_MARK_PROCESSED":
                    mark = self._marks.pop(str(event.get("correlation_id", "")), None)
                    if mark is not None and not mark.done():
                        mark.set_result(time.monotonic())
                elif name == "ERROR":
                    log.warning("chan_websocket: %s", event.get("error_text"))
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for mark in self._marks.values():
                if not mark.done():
                    mark.cancel()
            await self._events.put(None)

    async def events(self) -> AsyncIterator[MediaEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def _command(self, command: str, **fields: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(json.dumps({"command": command, **fields}))

    def play(self, pcm: bytes) -> Awaitable[PlayResult]:
        return asyncio.ensure_future(self._play(pcm))

    async def _play(self, pcm: bytes) -> PlayResult:
        frames = (len(pcm) + FRAME_BYTES - 1) // FRAME_BYTES
        pcm = pcm.ljust(frames * FRAME_BYTES, b"\0")  # whole frames: chan_websocket cuts them itself
        mark_id = uuid.uuid4().hex[:12]
        loop = asyncio.get_running_loop()
        mark: asyncio.Future[float] = loop.create_future()
        self._marks[mark_id] = mark
        began = time.monotonic()
        result: asyncio.Future[PlayResult] = loop.create_future()
        self._playing = (mark_id, result, began, frames)
        self._sender = loop.create_task(self._send(pcm, began, mark_id))
        waits: list[asyncio.Future[Any]] = [mark, result]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if result.done():
            return result.result()
        self._playing = None
        if mark.cancelled():  # the websocket closed (the caller hung up) before the prompt's end
            return PlayResult(
                frames=frames, sent=self.sent, stopped=True, started=began, ended=time.monotonic()
            )
        return PlayResult(frames=frames, sent=self.sent, stopped=False, started=began, ended=mark.result())

    async def _send(self, pcm: bytes, began: float, mark_id: str) -> None:
        self.sent = 0
        with contextlib.suppress(ConnectionClosed):
            for offset in range(0, len(pcm), self.CHUNK):
                queued = offset / (FRAME_BYTES * 50) - (time.monotonic() - began)
                if queued > self.AHEAD:
                    await asyncio.sleep(queued - self.AHEAD)
                chunk = pcm[offset : offset + self.CHUNK]
                await self.ws.send(chunk)
                self.sent += len(chunk) // FRAME_BYTES
            await self._command("MARK_MEDIA", correlation_id=mark_id)

    def stop(self) -> float:
        now = time.monotonic()
        if self._sender is not None:
            self._sender.cancel()
        flush = asyncio.get_running_loop().create_task(self._command("FLUSH_MEDIA"))
        self._sending.add(flush)
        flush.add_done_callback(self._sending.discard)
        if self._playing is not None:
            mark_id, result, began, frames = self._playing
            self._playing = None
            mark = self._marks.pop(mark_id, None)
            if mark is not None and not mark.done():
                mark.cancel()
            if not result.done():
                stopped = PlayResult(frames=frames, sent=self.sent, stopped=True, started=began, ended=now)
                result.set_result(stopped)
        return now

    async def end(self) -> None:
        await self._command("HANGUP")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 5.0)
        await self.ws.close()


class PlaybackLeg:
    """No media stream: the AGI session plays a sound file (STREAM FILE, which takes no keys here), and
    `stop` has AMI stop it (ControlPlayback, `stopper`), as a barge-in detected elsewhere would."""

    path = "playback"

    def __init__(
        self, transport: StreamTransport, channel: str, stopper: Callable[[str], Awaitable[object]] | None
    ) -> None:
        self.transport = transport
        self.channel = channel
        self.stopper = stopper
        self.connected_at = time.monotonic()
        self._stopped = False
        self._tasks: set[asyncio.Task[object]] = set()

    async def play_file(self, name: str) -> PlayResult:
        began = time.monotonic()
        self._stopped = False
        response = await self.transport.command(
            f"STREAM FILE {quote(name)} {quote('')}", timeout=EXEC_TIMEOUT
        )
        if response.code != 200 or response.value < 0:
            raise ChannelFailed(f"STREAM FILE {name}: {response}")
        return PlayResult(frames=0, sent=0, stopped=self._stopped, started=began, ended=time.monotonic())

    def stop(self) -> float:
        now = time.monotonic()
        if self.stopper is None:
            raise ChannelFailed("no AMI to stop the playback with")
        self._stopped = True
        task = asyncio.ensure_future(self.stopper(self.channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return now


# ---- the lab's servers -------------------------------------------------------------------------------


@dataclass
class LabCall:
    """One lab call as the lab's AGI side saw it."""

    path: str
    uniqueid: str = ""
    caller: str = ""
    media_id: str = ""  # the AudioSocket UUID / the websocket's call token
    rtp_local: str = ""  # Asterisk's RTP address for this call (host:port)
    exec_result: int | None = None  # what EXEC returned: 0 = the media part ended gracefully
    exec_seconds: float = 0.0
    txcount: int = 0  # RTP packets Asterisk sent the caller during the call
    rxcount: int = 0
    dialstatus: str = ""
    agi_went_on: bool = False  # the AGI session issued a command after the media part
    session_result: object = None
    errors: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


Session = Callable[[LabCall, MediaLeg], Awaitable[object]]
PlaybackSession = Callable[[LabCall, PlaybackLeg], Awaitable[object]]


class MediaLab:
    """The lab's three servers in this event loop: FastAGI (the call's control), AudioSocket, and the
    chan_websocket prototype. `session` runs for each call's media, over whichever path it came by."""

    def __init__(
        self,
        session: Session,
        *,
        pacer: PacedSender | None = None,
        playback_session: PlaybackSession | None = None,
        stop_playback: Callable[[str], Awaitable[object]] | None = None,
        on_call_done: Callable[[LabCall], object] | None = None,
    ) -> None:
        self.session = session
        self.playback_session = playback_session
        self.stop_playback = stop_playback  # AMI ControlPlayback for a channel name
        self.on_call_done = on_call_done
        self.pacer = pacer or PacedSender()
        self.audiosocket = AudioSocketServer()
        self.calls: list[LabCall] = []
        self._agi: asyncio.Server | None = None
        self._ws: Server | None = None
        self._ws_waiting: dict[str, asyncio.Future[ServerConnection]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self.agi_port = 0
        self.ws_port = 0

    async def start(self) -> None:
        await self.audiosocket.start()
        self._agi = await asyncio.start_server(self._on_agi, "127.0.0.1", 0, backlog=1024)
        self.agi_port = self._agi.sockets[0].getsockname()[1]
        self._ws = await serve(
            self._on_websocket,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol("media")],
            max_size=2**20,
            compression=None,
        )
        self.ws_port = next(iter(self._ws.sockets)).getsockname()[1]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.pacer.stop_all()
        await self.audiosocket.close()
        if self._agi is not None:
            self._agi.close()
        if self._ws is not None:
            self._ws.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ws.wait_closed(), 3.0)

    def _spawn(self, coro: Awaitable[object]) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # FastAGI: the call's control
    async def _on_agi(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = StreamTransport(reader, writer)
        call = LabCall(path="?")
        try:
            request = parse_request(await read_header(reader))
            call.path, call.uniqueid = request.line, request.uniqueid
            call.caller = request.caller_id or ""
            self.calls.append(call)
            call.rtp_local = await _get(transport, "CHANNEL(rtp,src)")
            if call.path == "audiosocket":
                await self._audiosocket_call(call, transport)
            elif call.path == "websocket":
                await self._websocket_call(call, transport)
            elif call.path == "playback" and self.playback_session is not None:
                leg = PlaybackLeg(transport, request.env.get("agi_channel", ""), self.stop_playback)
                call.session_result = await self.playback_session(call, leg)
            else:
                call.errors.append(f"unknown lab path {call.path!r}")
                return
            call.txcount = _int(await _get(transport, "CHANNEL(rtcp,txcount)"))
            call.rxcount = _int(await _get(transport, "CHANNEL(rtcp,rxcount)"))
            response = await transport.command(
                f"SET VARIABLE IVR_MEDIA_LAB {quote(call.path + ' done')}", timeout=10
            )
            call.agi_went_on = response.code == 200
        except (ChannelHungUp, ChannelFailed, OSError) as exc:
            call.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            call.done.set()
            await transport.close()
            if self.on_call_done is not None:
                self.on_call_done(call)

    async def _exec(self, transport: StreamTransport, app: str, args: str, call: LabCall) -> AgiResponse:
        began = time.monotonic()
        response = await transport.command(f"EXEC {app} {quote(args)}", timeout=EXEC_TIMEOUT)
        call.exec_seconds = time.monotonic() - began
        call.exec_result = response.value if response.code == 200 else None
        return response

    async def _run_session(self, call: LabCall, leg: Awaitable[MediaLeg], timeout: float = 10.0) -> None:
        try:
            media = await asyncio.wait_for(leg, timeout)
        except (TimeoutError, asyncio.CancelledError):
            call.errors.append(f"no {call.path} connection in {timeout:.0f} s")
            return
        try:
            call.session_result = await self.session(call, media)
        except Exception as exc:  # the call's record says what failed; the lab goes on
            log.exception("media lab session failed")
            call.errors.append(f"session: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await media.end()

    async def _audiosocket_call(self, call: LabCall, transport: StreamTransport) -> None:
        call_uuid = uuid.uuid4()
        call.media_id = str(call_uuid)
        waiting = self.audiosocket.expect(call_uuid)

        async def leg() -> MediaLeg:
            return AudioSocketLeg(await waiting, self.pacer)

        session = self._spawn(self._run_session(call, leg()))
        host, port = self.audiosocket.host, self.audiosocket.port
        await self._exec(transport, "AudioSocket", application_args(call_uuid, host, port), call)
        self.audiosocket.forget(call_uuid)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(session, 10.0)

    async def _websocket_call(self, call: LabCall, transport: StreamTransport) -> None:
        token = uuid.uuid4().hex
        call.media_id = token
        waiting: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()
        self._ws_waiting[token] = waiting

        async def leg() -> MediaLeg:
            ws = await waiting
            media = WebSocketLeg(ws, token)
            media.start_reading()
            return media

        session = self._spawn(self._run_session(call, leg()))
        dial = f"WebSocket/{WS_CLIENT_ID}/c(slin)f(json)v(call={token}),,g"
        await self._exec(transport, "Dial", dial, call)
        call.dialstatus = await _get(transport, "DIALSTATUS")
        self._ws_waiting.pop(token, None)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(session, 10.0)

    async def _on_websocket(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        token = path.partition("call=")[2].partition("&")[0]
        waiting = self._ws_waiting.get(token)
        if waiting is None or waiting.done():
            await ws.close(code=1008, reason="unknown call")
            return
        waiting.set_result(ws)
        await ws.wait_closed()  # the leg reads and writes; the connection lives until it is closed


async def _get(transport: StreamTransport, name: str) -> str:
    response = await transport.command(f"GET FULL VARIABLE {quote('${' + name + '}')}", timeout=10)
    return response.data if response.code == 200 and response.value == 1 else ""


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


FRAMES_PER_SECOND = 1000 // FRAME_MS
