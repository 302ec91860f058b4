"""CLI: `ivr serve` (the FastAGI server) and `ivr agi` (one call over stdio AGI)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.logs import setup_logging

log = logging.getLogger(__name__)

# Actions run in worker threads (asyncio.to_thread). On SQLite the work is CPU in this process: more
# threads than cores only fight over the GIL (measured: 16 threads cost twice the CPU per action of one,
# and finish later). On PostgreSQL an action mostly waits on the network, so more threads keep the
# queue short.
WORKERS_SQLITE = 4
WORKERS_SERVER_DB = 16


def raise_open_files(max_calls: int) -> int:
    """Each call holds one socket (plus the database's and the logs' few): lift the soft open-file limit
    to the hard one, and say so when even that is too low for max_calls. Returns the limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_calls + 256
    if soft < want and soft != resource.RLIM_INFINITY:
        soft = hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, 2 * want))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < want:
        log.warning(
            "open-file limit %d is too low for max_calls %d (need about %d): raise LimitNOFILE / ulimit -n",
            soft,
            max_calls,
            want,
        )
    return int(soft)


def action_workers(settings: Settings) -> int:
    if settings.action_workers > 0:
        return settings.action_workers
    return WORKERS_SQLITE if settings.db_url.startswith("sqlite") else WORKERS_SERVER_DB


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the FastAGI server (Asterisk's AGI(agi://...) lands here)")
    serve.add_argument("--host", help="bind address (default settings.agi_host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default settings.agi_port, 4573)")
    serve.add_argument("--grace", type=float, default=30.0, help="seconds calls may finish after SIGTERM")
    serve.add_argument(
        "--max-calls", type=int, help="calls at once; more hear 'the line is busy' (settings.max_calls)"
    )
    serve.add_argument(
        "--stats-file",
        help="at exit, write the server's figures (calls, busy, loop lag, key-to-prompt latency) as JSON",
    )
    serve.set_defaults(func=cmd_serve)

    agi = sub.add_parser("agi", help="one call over stdio AGI (started by Asterisk; stdout is the protocol)")
    agi.add_argument("request", nargs="?", help="line?did=...&trust=...&roaming=... (default: agi_arg_1)")
    agi.add_argument(
        "--eagi", action="store_true", help="started by EAGI: caller audio on fd 3, speech input (Vosk)"
    )
    agi.set_defaults(func=cmd_agi)


# ---- serve ------------------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    setup_logging(settings, to_stderr=True, filename="ivr.log")
    if args.host:
        settings.agi_host = args.host
    if args.port:
        settings.agi_port = args.port
    if args.max_calls:
        settings.max_calls = args.max_calls
    raise_open_files(settings.max_calls)
    return asyncio.run(_serve(settings, grace=args.grace, stats_file=args.stats_file))


async def _serve(settings: Settings, *, grace: float, stats_file: str | None = None) -> int:
    following = _follow_versions(settings)
    try:
        return await _serve_calls(settings, following, grace=grace, stats_file=stats_file)
    finally:
        if following is not None:
            follower, database = following
            follower.stop()
            database.dispose()


def _follow_versions(settings: Settings) -> tuple[Any, Any] | None:
    """A node of a cluster (settings.follow_versions, docs/scale-out.md): the live versions in the database
    written under prompts/ now, before the trees load, so the node serves them from its first call (a
    database out of reach is logged and the node starts on its files). The follower and its database;
    its polling thread starts once the trees are loaded (a write during the first load would hold it off)."""
    if not settings.follow_versions:
        return None
    from ivr.app.bootstrap import db_timeouts
    from ivr.cluster.follow import VersionFollower
    from ivr.db.session import make_uow_factory

    log.info(
        "node %s follows the versions in the database every %g s",
        settings.node_name or "(unnamed)",
        settings.follow_seconds,
    )
    database = make_uow_factory(settings.db_url, timeouts=db_timeouts(settings))
    follower = VersionFollower(settings, database)
    follower.apply_once()
    return follower, database


async def _serve_calls(
    settings: Settings, following: tuple[Any, Any] | None, *, grace: float, stats_file: str | None
) -> int:
    from ivr.app.bootstrap import build_app
    from ivr.app.metrics import LineMetrics, VersionCollector, serve_metrics
    from ivr.app.session import CallHandler
    from ivr.telephony.fastagi import FastAgiServer

    app = build_app(settings, serving=True)
    if following is not None:
        following[0].start()
    metrics = LineMetrics()
    app.on_action_done = metrics.action_done
    call_end, records = _call_end_hook(app, metrics)
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=action_workers(settings), thread_name_prefix="action")
    )
    handler = CallHandler(
        app.session,
        app.voice,
        default_language=settings.default_language,
        read_timeout=settings.agi_read_timeout,
        reload=app.reload,
        on_call_end=call_end,
    )
    server = FastAgiServer(
        handler,
        host=settings.agi_host,
        port=settings.agi_port,
        grace_seconds=grace,
        max_calls=settings.max_calls,
        overload_lag=settings.overload_lag,
        reuse_port=settings.agi_reuse_port,
        media=await _media_path(settings, app, metrics),
    )
    loop = asyncio.get_running_loop()
    app.on_action_wait = lambda waited: server.action_wait.note(loop.time(), waited)
    await server.start()
    server.install_signal_handlers(asyncio.get_running_loop())
    if settings.metrics_port:
        follower = following[0] if following is not None else None
        metrics.registry.register(
            VersionCollector(
                app.trees.versions,
                (lambda: dict(follower.applied)) if follower is not None else None,
            )
        )
        try:
            port = serve_metrics(metrics, server, settings.metrics_host, settings.metrics_port)
            log.info("metrics on http://%s:%s/metrics", settings.metrics_host, port)
        except OSError as exc:  # the line runs without its metrics rather than not at all
            log.error("metrics not served on %s:%s: %s", settings.metrics_host, settings.metrics_port, exc)
    ami_side = await _start_ami_side(settings, app, metrics)
    print(
        f"ivr serve: FastAGI on {settings.agi_host}:{server.port} (pid {os.getpid()})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await server.serve_until_stopped()
    finally:
        await _stop_ami_side(ami_side)
        if records is not None:
            records.close()  # the records of the last calls, before the database goes
        app.close()
        if stats_file:
            Path(stats_file).write_text(json.dumps(server.figures(), indent=2) + "\n", encoding="utf-8")
    return 0


def speech_config(settings: Settings) -> Any:
    """The recognisers' settings, the same for the media path and the EAGI route."""
    from ivr.speech.recognizer import SpeechConfig

    return SpeechConfig(
        min_confidence=settings.speech_min_confidence,
        end_silence=settings.speech_end_silence,
        max_utterance=settings.speech_max_utterance,
    )


async def _media_path(settings: Settings, app: Any, metrics: Any) -> Any:
    """The media path (docs/speech.md): the AudioSocket server, the pacer, and speech with the model of
    every language the lines speak, loaded now (in a thread: the models take seconds), never during a
    call. `media = "off"`: None, every call over AGI alone."""
    from ivr.config import StartupRefused
    from ivr.speech.bargein import BargeInConfig
    from ivr.speech.model import SpeechUnavailable, speech_languages
    from ivr.speech.service import SpeechService
    from ivr.telephony.audiosocket import AudioSocketServer
    from ivr.telephony.media_channel import MediaPath

    if settings.media not in ("audiosocket", "always", "off"):
        raise StartupRefused(f"media = {settings.media!r}: use audiosocket, always or off")
    if settings.media == "off":
        log.info("media path off: calls run over AGI alone (keys only)")
        return None
    languages = {lang for line in app.trees.lines() for lang in app.trees.get(line).settings.languages}
    try:
        directories = speech_languages(settings, sorted(languages))
    except SpeechUnavailable as exc:  # a model setting that names no model: say so, do not start
        raise StartupRefused(str(exc)) from exc
    # Without the vosk library every language's load says so once and runs keys-only.
    speech = await asyncio.to_thread(
        SpeechService.start, directories, speech_config(settings), workers=settings.speech_workers
    )
    return MediaPath(
        AudioSocketServer(settings.media_host, settings.media_port),
        speech=speech,
        barge_in=BargeInConfig(echo_loss_db=settings.barge_in_echo_loss_db),
        always=settings.media == "always",
        max_call_seconds=float(settings.max_call_seconds),
        on_result=metrics.speech_result,
    )


async def _start_ami_side(settings: Settings, app: Any, metrics: Any) -> tuple[Any, ...] | None:
    """The AMI link (reconnecting by itself), the callback dialer and the queue-wait recorder. The line
    serves calls without them: no AMI secret, or AMI down, only delays callbacks and queue-wait figures."""
    from ivr.app.callbacks import CallbackDialer, QueueWaits
    from ivr.telephony.ami import AmiLink

    if not settings.ami_secret:
        log.warning("no AMI secret: callbacks are not placed and queue waits are not recorded")
        return None
    database = app.database()
    waits = QueueWaits(database if settings.call_records else None, on_wait=metrics.queue_waited)
    dialer: Any = None
    handlers = [waits.on_event]

    def on_event(name: str, event: dict[str, str]) -> None:
        for handler in handlers:
            handler(name, event)

    link = AmiLink(settings, on_event, on_state=metrics.ami_state)
    if settings.callbacks:
        dialer = CallbackDialer(database, link, settings, on_result=metrics.callback_result)
        handlers.append(dialer.on_event)
    link.start()
    if dialer is not None:
        dialer.start()
    return link, dialer, waits


async def _stop_ami_side(side: tuple[Any, ...] | None) -> None:
    if side is None:
        return
    link, dialer, waits = side
    if dialer is not None:
        await dialer.stop()
    await waits.drain()
    await link.close()


def _call_end_hook(app: Any, metrics: Any) -> tuple[Any, Any]:
    """What happens when a call ends: its metrics, and its record queued for the records' writer (returned
    too: close it when the server or the one-call process ends, which writes what is queued)."""
    from ivr.app.records import record_of

    records = app.call_records()

    def ended(session: Any, seconds: float) -> None:
        if metrics is not None:
            outcome = session.outcome
            metrics.call_ended(session.call.line, outcome.result, seconds, outcome.reason)
        if records is None:
            return
        record = record_of(session, seconds, records.key)
        if record is not None:
            records.submit(record)

    return ended, records


# ---- agi --------------------------------------------------------------------------------------------


def cmd_agi(settings: Settings, args: argparse.Namespace) -> int:
    """One call: pyst2 on the main thread, each command's read bounded by select (ivr.telephony.stdio_agi),
    so the call ends by itself however Asterisk behaves and the process returns normally: no thread is left
    reading stdin."""
    # stdout belongs to the protocol: the CLI's logging already goes to stderr; add the shared log file.
    setup_logging(settings, to_stderr=True, filename="ivr-agi.log")
    from ivr.app.bootstrap import build_app
    from ivr.app.session import CallHandler
    from ivr.telephony.channel import ChannelFailed, ChannelHungUp
    from ivr.telephony.stdio_agi import make_pyst_agi, run_stdio_call

    try:
        agi = make_pyst_agi()  # reads the AGI header first, so Asterisk never waits on our start-up
    except (ChannelFailed, ChannelHungUp) as exc:
        log.error("no AGI call on stdin: %s", exc)
        return 1
    try:
        app = build_app(settings)
    except Exception:
        log.exception("cannot start the line; the dialplan's failure path takes over")
        return 1
    call_end, records = _call_end_hook(app, None)
    handler = CallHandler(
        app.session,
        app.voice,
        default_language=settings.default_language,
        read_timeout=settings.agi_read_timeout,
        on_call_end=call_end,
    )
    make_channel = _eagi_channel_factory(settings, handler) if args.eagi else None

    async def call() -> int:
        try:
            return await run_stdio_call(handler, args.request, agi, make_channel)
        finally:
            # The call is over: give stdout back to Asterisk at once. Asterisk goes on with the dialplan
            # when it reads end of file on our stdout, not when the process ends, and the process may
            # still wait a moment for helper threads (a speech model half loaded cannot be stopped). fd 1
            # becomes /dev/null rather than closed, so no file opened later takes its number.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)

    try:
        return asyncio.run(call())
    except (ChannelFailed, ChannelHungUp) as exc:  # e.g. an empty header: no call to run
        log.error("stdio AGI call not run: %s", exc)
        return 1
    finally:
        if records is not None:
            records.close()
        app.close()


def _eagi_channel_factory(settings: Settings, handler: Any) -> Any:
    """EagiChannel builder for `ivr agi --eagi`: starts reading fd 3 and loading the speech model (in a
    thread, while the first prompt plays); each call's recognizer waits for the model on its first grammar."""
    from concurrent.futures import Future

    from ivr.speech import CallRecognizer, load_model
    from ivr.telephony.agi import AgiRequest
    from ivr.telephony.eagi import EagiChannel, Fd3Audio
    from ivr.telephony.stdio_agi import PystTransport

    if not Fd3Audio.available():
        log.error("--eagi but no audio on fd 3 (not started by EAGI?): keys only")
    audio = Fd3Audio()
    if Fd3Audio.available():
        audio.start()
    model: Future[Any] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speech-model").submit(
        load_model, settings
    )
    config = speech_config(settings)

    def recognizer() -> CallRecognizer:
        if not Fd3Audio.available():
            raise RuntimeError("no EAGI audio on fd 3")
        return CallRecognizer(model.result(), config)

    def make(request: AgiRequest, transport: PystTransport) -> EagiChannel:
        return EagiChannel(
            transport,
            handler.voice,
            request.line,
            handler.default_language,
            audio=audio,
            recognizer_factory=recognizer,
            read_timeout=handler.read_timeout,
            max_utterance=settings.speech_max_utterance,
        )

    return make
