"""The FastAGI server (`ivr serve`): one asyncio task and one Session per call.

Asterisk connects for each call (`AGI(agi://127.0.0.1:4573/<line>?did=...&trust=...&roaming=...)`),
sends the AGI header, then answers our commands. The header is read by `ivr.telephony.agi.read_header`
(bounded in time and size; see that module for why panoramisk's Application is not used for it).

Overload: past `max_calls` calls, or while the event loop lags more than `overload_lag` seconds behind
(measured by `LoopLag`), or while actions wait that long for a worker thread (`action_wait`, noted by the
application), a new call is refused before its first prompt with IVR_RESULT=busy, and the dialplan tells
the caller the line is busy. The calls in progress keep their pace.

Signals: SIGTERM/SIGINT stop accepting new calls and let calls in progress finish for up to
`grace_seconds`, then cancel them (their callers fall to the dialplan's failure path: apology and an
operator). SIGHUP reloads trees and prompt texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ivr.engine.events import CallStarted
from ivr.logs import ThrottledLog
from ivr.telephony.agi import AgiProtocolError, AgiRequest, StreamTransport, parse_request, read_header
from ivr.telephony.agi_channel import AgiChannel, PromptFiles
from ivr.telephony.channel import ChannelHungUp
from ivr.telephony.latency import KeyLatency
from ivr.telephony.media_channel import MediaChannel, MediaPath

log = logging.getLogger(__name__)

MAX_LINE = 8192


def call_from_request(request: AgiRequest, default_language: str) -> CallStarted:
    """The engine's first event from the dialplan's request."""
    did = "".join(ch for ch in request.params.get("did", "") if ch.isdigit())
    return CallStarted(
        line=request.line,
        did=did or request.env.get("agi_extension", ""),
        caller_id=request.caller_id,
        language=default_language,
        facts={"caller_id_trusted": request.flag("trust"), "roaming": request.flag("roaming")},
        call_id=request.uniqueid,
    )


class AgiCallHandler(Protocol):
    """What both AGI entries need from the application (`ivr.app.session.CallHandler` is the real one;
    tests pass doubles): the prompt files, the call's defaults, a reload hook, and the call itself."""

    voice: PromptFiles
    default_language: str
    read_timeout: float
    reload: Callable[[], None] | None

    async def run_call(self, request: AgiRequest, channel: AgiChannel) -> CallEnd | None: ...


class CallEnd(Protocol):
    """How a call ended, as the drivers need it: `result` is "error" when the failure path took it."""

    result: str


@dataclass
class LoopLag:
    """How late the event loop runs: a task sleeps `interval` and measures how much longer it took. `lag`
    is the worst of the last `window` seconds, so one slow second is remembered long enough to act on."""

    interval: float = 0.1
    window: float = 2.0
    lag: float = 0.0
    worst: float = 0.0  # since start, for the shutdown summary
    _samples: list[tuple[float, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.note(now, max(0.0, now - before - self.interval))

    def note(self, now: float, late: float) -> None:
        """One sample, `late` seconds at `now` (loop.time()); call it on the event loop only."""
        self._samples.append((now, late))
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.pop(0)
        self.lag = max(s[1] for s in self._samples)
        self.worst = max(self.worst, late)


@dataclass
class FastAgiServer:
    handler: AgiCallHandler
    host: str = "127.0.0.1"
    port: int = 4573
    grace_seconds: float = 30.0
    # Asterisk sends the whole header at once; a peer that has not finished it by then is not Asterisk.
    header_timeout: float = 3.0
    # Calls served at once; one more is refused at once (the dialplan's failure path takes the caller). A
    # connection is a call only once its header is complete: idle sockets never take a caller's place.
    max_calls: int = 1000
    # Connections still sending their header; beyond this, new ones are closed at once.
    max_pending: int = 2000
    # Listen with SO_REUSEPORT: another server may share the port (an upgrade: the new one takes new calls
    # while this one finishes its own).
    reuse_port: bool = False
    # New calls are refused (busy) while the event loop runs this many seconds late; 0 turns it off.
    overload_lag: float = 0.25
    loop_lag: LoopLag = field(default_factory=LoopLag)
    # Fed by the application (note(now, seconds) on the event loop): how long actions waited to start.
    action_wait: LoopLag = field(default_factory=LoopLag)
    key_latency: KeyLatency = field(default_factory=KeyLatency)
    # The media path (AudioSocket: speech, barge-in by voice, keys at any moment); None: AGI alone.
    media: MediaPath | None = None
    busy: int = 0
    calls: set[asyncio.Task[None]] = field(default_factory=set)
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    served: int = 0
    rejected: int = 0
    cancelled: int = 0
    _server: asyncio.Server | None = None
    _stopping: asyncio.Event | None = None
    _warnings: ThrottledLog = field(default_factory=lambda: ThrottledLog(log))

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_LINE, reuse_port=self.reuse_port or None
        )
        if self.media is not None:
            await self.media.start()
        self.loop_lag.start()
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%s", self.host, self.port)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The outermost frame of the connection's task: it ends normally even when cancelled at shutdown,
        # because asyncio's stream protocol logs "Exception in callback" for a task that ends cancelled.
        transport = StreamTransport(reader, writer)
        task = asyncio.current_task()
        assert task is not None
        try:
            request = await self._read_request(task, reader, writer)
            if request is None:
                return
            refusal = self._overloaded()
            if refusal:
                self.busy += 1
                self._warnings.warning("busy", "refused a call (the caller hears: line busy): %s", refusal)
                with contextlib.suppress(Exception):
                    await transport.command('SET VARIABLE IVR_RESULT "busy"', timeout=2.0)
                return
            self.calls.add(task)
            channel = self._channel(transport, request)
            try:
                await self.handler.run_call(request, channel)
            finally:
                if isinstance(channel, MediaChannel):
                    await channel.finish()
            self.served += 1
        except asyncio.CancelledError:
            if task in self.calls:
                self.cancelled += 1
                log.warning("call cut off at shutdown: the dialplan's failure path takes the caller")
        except Exception:  # one broken call must never take the server down
            log.exception("unexpected error serving a call")
        finally:
            self.calls.discard(task)
            self.pending.discard(task)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await transport.close()

    def _channel(self, transport: StreamTransport, request: AgiRequest) -> AgiChannel:
        if self.media is not None:
            return MediaChannel(
                transport,
                self.handler.voice,
                request.line,
                self.handler.default_language,
                media=self.media,
                read_timeout=self.handler.read_timeout,
                latency=self.key_latency,
            )
        return AgiChannel(
            transport,
            self.handler.voice,
            request.line,
            self.handler.default_language,
            read_timeout=self.handler.read_timeout,
            latency=self.key_latency,
        )

    def _overloaded(self) -> str:
        """Why a new call must be refused now ("" = it is welcome)."""
        if len(self.calls) >= self.max_calls:
            return f"{len(self.calls)} calls in progress (max_calls {self.max_calls})"
        if self.overload_lag > 0 and self.loop_lag.lag > self.overload_lag:
            return f"the event loop runs {self.loop_lag.lag:.2f} s late (overload_lag {self.overload_lag:g})"
        if self.overload_lag > 0 and self.action_wait.lag > self.overload_lag:
            return (
                f"actions wait {self.action_wait.lag:.2f} s for a worker (overload_lag {self.overload_lag:g})"
            )
        return ""

    async def _read_request(
        self, task: asyncio.Task[None], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> AgiRequest | None:
        """The AGI header, within `header_timeout`; None (logged, rate-limited) for anything else."""
        if len(self.pending) >= self.max_pending:
            self.rejected += 1
            self._warnings.warning(
                "max_pending",
                "refused a connection: %d connections have not sent an AGI header",
                len(self.pending),
            )
            return None
        self.pending.add(task)
        try:
            env = await read_header(reader, timeout=self.header_timeout)
        except (AgiProtocolError, ChannelHungUp) as exc:
            self.rejected += 1
            self._warnings.warning(
                "bad_header", "rejected AGI connection from %s: %s", writer.get_extra_info("peername"), exc
            )
            return None
        finally:
            self.pending.discard(task)
        return parse_request(env)

    def figures(self) -> dict[str, object]:
        """What the server did, for `ivr serve --stats-file` and the benchmarks."""
        return {
            "served": self.served,
            "busy": self.busy,
            "rejected": self.rejected,
            "cut_off": self.cancelled,
            "in_progress": len(self.calls),
            "loop_lag_s": round(self.loop_lag.lag, 4),
            "action_wait_s": round(self.action_wait.lag, 4),
            "loop_lag_worst_s": round(self.loop_lag.worst, 4),
            "action_wait_worst_s": round(self.action_wait.worst, 4),
            "key_to_prompt": self.key_latency.summary(),
            "media": dataclasses.asdict(self.media.figures) if self.media is not None else None,
        }

    def request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def serve_until_stopped(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, drop connections that are not calls yet, let calls finish (bounded), then cut
        off what is left (those callers fall to the dialplan's failure path)."""
        if self._server is not None:
            self._server.close()
        for task in list(self.pending):
            task.cancel()
        active = set(self.calls)
        if active:
            log.info("waiting up to %.0f s for %d call(s) in progress", self.grace_seconds, len(active))
            _done, left = await asyncio.wait(active, timeout=self.grace_seconds)
            for task in left:
                task.cancel()
        remaining = self.calls | self.pending
        if remaining:
            await asyncio.wait(remaining, timeout=5.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self.loop_lag.stop()
        if self.media is not None:
            await self.media.close()
        log.info(
            "FastAGI server stopped (served %d calls, cut off %d at shutdown, refused %d as busy, rejected "
            "%d connections; the event loop ran at most %.3f s late)",
            self.served,
            self.cancelled,
            self.busy,
            self.rejected,
            self.loop_lag.worst,
        )

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        if self.handler.reload is not None:
            loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        log.info("%s: stopping", sig.name)
        self.request_stop()

    def _on_reload_signal(self) -> None:
        """SIGHUP: reload in a worker thread; parsing and checking trees never stalls the calls."""
        if self.handler.reload is None:
            return
        log.info("SIGHUP: reloading trees and texts")
        done = asyncio.get_running_loop().run_in_executor(None, self.handler.reload)
        done.add_done_callback(_report_reload)


def _report_reload(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("reload failed; the previous trees keep serving: %s", done.exception())
