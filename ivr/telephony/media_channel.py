"""The media path's call channel: AGI keeps the call, AudioSocket carries its dialog.

`MediaChannel` is the AgiChannel of a FastAGI call with the caller's audio and keys streamed into the
server (docs/speech.md, "The media path"). At the call's first prompt it makes a UUID, expects it on the
shared AudioSocket server and sends `EXEC AudioSocket <uuid>,<host>:<port>`; that one AGI command stays
open while the dialog runs over the socket:

- prompts: the same rendered WAV files, sent in real time by the shared `PacedSender`;
- keys: DTMF frames, read all call long, so a key pressed during a prompt, during an action or between
  two commands is never lost; a key stops a prompt that allows barge-in and always wins over speech;
- speech: in a menu with phrases, while its prompts play, `BargeInDetector` watches the caller's audio
  against the echo of the prompt; when the caller starts speaking the prompt stops (barge-in by voice) and
  the audio from just before that point goes to the call's recogniser, decoded in the speech pool. A node
  with `barge_in: false` is heard whole: listening starts when its prompts end;
- variables: AGI cannot take a command while EXEC runs, so SET VARIABLE and the language wait, in order,
  until the dialog leaves the socket (a transfer, a hang-up, the end of the call, a queue lookup), then go
  out over AGI as before. The dialplan sees the same variables as with the AGI-only channel.

Fallback, never dead air: when Asterisk cannot connect (EXEC returns at once, or after its 2 s connect
timeout), or the socket is lost mid-call while the caller is still there, the AGI session is still open:
the call goes on keys-only over AGI from the command it was at (a prompt cut by the loss starts again). A
language without a speech model, or a grammar-less question (a PIN), is keys-only over the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.engine.commands import Collect, PromptRef, Transfer
from ivr.engine.events import Digits, NoInput, Speech
from ivr.speech.bargein import (
    BargeInConfig,
    BargeInDetector,
    echo_reference,
    frame_levels,
    reference_at,
)
from ivr.speech.recognizer import CallRecognizer, SpeechResult
from ivr.speech.service import SpeechService
from ivr.telephony.agi import AgiResponse, AgiTransport, quote
from ivr.telephony.agi_channel import AgiChannel, PromptFiles
from ivr.telephony.audiosocket import (
    FRAME_BYTES,
    FRAME_MS,
    AudioSocketConnection,
    AudioSocketServer,
    Dtmf,
    PacedSender,
    application_args,
    wav_pcm,
)
from ivr.telephony.channel import ChannelFailed, ChannelHungUp, QueueStatus, prompt_keys, speech_event
from ivr.telephony.latency import KeyLatency

log = logging.getLogger(__name__)

FRAME_SECONDS = FRAME_MS / 1000
# Seconds from the EXEC to the connection: Asterisk connects at once, and gives up after 2 s by itself.
CONNECT_TIMEOUT = 3.0
# Seconds the EXEC may take to return once the socket is ended (Asterisk answers at once).
EXEC_RETURN_TIMEOUT = 5.0
# Seconds a recogniser's decode may run after its turn is over (keys won) before a new turn begins.
DECODE_SETTLE = 2.0
# Spoken digits: the longest pause between two digits that does not end the number, and the time a
# caller may take per digit (an 11-digit phone number said slowly takes more than a menu phrase).
SPOKEN_DIGIT_PAUSE = 1.5
SPOKEN_DIGIT_SECONDS = 1.2
# Seconds without a frame of caller audio after which the line counts as quiet (a phone without RTP).
AUDIO_STOPPED = 0.5
# Bytes of caller audio per hop to the decoding pool: 60 ms (three frames).
DECODE_CHUNK = 3 * FRAME_BYTES


@dataclass
class MediaFigures:
    """What the media path did, for `ivr serve --stats-file`, metrics and the benchmarks."""

    started: int = 0  # calls whose dialog ran over AudioSocket
    no_connection: int = 0  # calls that fell back to AGI because Asterisk did not connect
    lost: int = 0  # calls whose socket was lost mid-call (caller still there): keys-only over AGI
    barge_in_voice: int = 0
    barge_in_keys: int = 0
    turns: int = 0  # speech turns decided
    results: dict[str, int] = field(default_factory=dict)  # match / nomatch / noinput


@dataclass
class MediaPath:
    """What every MediaChannel of a server shares."""

    server: AudioSocketServer
    pacer: PacedSender = field(default_factory=PacedSender)
    speech: SpeechService | None = None
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    # True: every call runs over the socket, with or without speech (`media = "always"`).
    always: bool = False
    connect_timeout: float = CONNECT_TIMEOUT
    # The EXEC's AGI timeout: it returns when the dialog ends, so it is the call's length, not seconds.
    max_call_seconds: float = 900.0
    figures: MediaFigures = field(default_factory=MediaFigures)
    # Told of each speech turn's result (metrics): status, our processing after the utterance ended.
    on_result: Callable[[str, float | None], None] | None = None

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.pacer.close()
        await self.server.close()
        if self.speech is not None:
            self.speech.close()


class _MediaLost(Exception):
    """The socket ended while the call is (maybe) still there: go on over AGI."""


# Prompt audio by file: (size, mtime) -> samples and frame levels. Prompts are few and played thousands of
# times; a bounded cache keeps them in memory (least recently used out first past PCM_CACHE_BYTES).
PCM_CACHE_BYTES = 64 * 1024 * 1024
_PCM: OrderedDict[str, tuple[tuple[int, int], bytes, list[float]]] = OrderedDict()
_pcm_bytes = 0


def prompt_pcm(path: str, stamp: tuple[int, int]) -> tuple[bytes, list[float]] | None:
    """The samples of a rendered prompt (8 kHz 16-bit mono WAV) and each frame's level, cached by the
    file's (size, mtime) `stamp`; None if it is not telephone audio (logged)."""
    global _pcm_bytes
    known = _PCM.get(path)
    if known is not None and known[0] == stamp:
        _PCM.move_to_end(path)
        return known[1], known[2]
    try:
        pcm = wav_pcm(Path(path))
    except (OSError, ValueError, EOFError) as exc:
        log.warning("prompt audio %s cannot be streamed: %s", path, exc)
        return None
    levels = frame_levels(pcm, FRAME_BYTES)
    if known is not None:
        _pcm_bytes -= len(known[1])
    _PCM[path] = (stamp, pcm, levels)
    _pcm_bytes += len(pcm)
    while _pcm_bytes > PCM_CACHE_BYTES and len(_PCM) > 1:
        _, (_, old, _) = _PCM.popitem(last=False)
        _pcm_bytes -= len(old)
    return pcm, levels


class MediaChannel(AgiChannel):
    def __init__(
        self,
        transport: AgiTransport,
        voice: PromptFiles,
        line: str,
        language: str,
        *,
        media: MediaPath,
        read_timeout: float = 30.0,
        latency: KeyLatency | None = None,
    ) -> None:
        super().__init__(transport, voice, line, language, read_timeout=read_timeout, latency=latency)
        self.media = media
        self.state = "new"  # new -> media -> agi (after the dialog left the socket, or never reached it)
        self.conn: AudioSocketConnection | None = None
        self._exec: asyncio.Task[AgiResponse] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keys: deque[str] = deque()
        self._changed = asyncio.Event()
        self._lost = False
        self._listener: Callable[[bytes], None] | None = None
        self._deferred: dict[str, str] = {}  # variable -> value, in the order last set
        self._recognizers: dict[str, CallRecognizer | None] = {}
        self._decode: asyncio.Task[SpeechResult | None] | None = None
        self._audio = bytearray()
        self._audio_at = 0.0  # loop time the last caller frame arrived
        self._stop_decoding = False
        self._audio_ready = asyncio.Event()
        self._speech_result_at: float | None = None

    # ---- the socket --------------------------------------------------------------------------------

    def _wants_media(self) -> bool:
        """Does this call need the socket now? Where its language has a speech model, or always when
        the path is forced (`media = "always"`). A call without speech stays on AGI: keys work there as
        before, without 50 audio frames a second to read (the DTMF capacity of docs/benchmarks.md)."""
        if self.media.always:
            return True
        return self.media.speech is not None and self.language in self.media.speech.languages

    async def _media_ready(self) -> bool:
        """True while the dialog runs over the socket (starting it at the first prompt that needs it)."""
        if self.state == "new" and self._wants_media():
            await self._start_media()
        if self.state == "media" and self._lost:
            await self._fall_back("the media stream ended")
        return self.state == "media"

    async def _start_media(self) -> None:
        server = self.media.server
        call_uuid = uuid.uuid4()
        waiting = server.expect(call_uuid)
        args = application_args(call_uuid, server.host, server.port)
        loop = asyncio.get_running_loop()
        self._exec = loop.create_task(
            self.transport.command(
                f"EXEC AudioSocket {quote(args)}", timeout=self.media.max_call_seconds + 120.0
            )
        )
        pending: set[asyncio.Future[Any]] = {waiting, self._exec}
        done, _ = await asyncio.wait(
            pending, timeout=self.media.connect_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting in done and not waiting.cancelled() and waiting.exception() is None:
            self.conn = waiting.result()
            self.state = "media"
            self.media.figures.started += 1
            self._reader = loop.create_task(self._read(self.conn))
            log.debug("media path: AudioSocket %s connected", call_uuid)
            return
        server.forget(call_uuid)
        self.state = "agi"
        self.media.figures.no_connection += 1
        answer = await self._exec_answer()
        log.warning("media path: Asterisk did not connect (EXEC answered %s): keys only over AGI", answer)

    async def _exec_answer(self) -> str:
        """Wait for the EXEC's answer (it comes when the socket ends); raises ChannelHungUp when the caller
        is gone, ChannelFailed when Asterisk does not answer."""
        task = self._exec
        self._exec = None
        if task is None:
            return "-"
        try:
            response = await asyncio.wait_for(asyncio.shield(task), EXEC_RETURN_TIMEOUT)
        except TimeoutError as exc:
            task.cancel()
            raise ChannelFailed("EXEC AudioSocket did not return") from exc
        return f"{response.code} result={response.value}"

    async def _read(self, conn: AudioSocketConnection) -> None:
        """All call long: keys into the queue, audio to whoever listens."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                event = await conn.read()
                if event is None:
                    break
                if isinstance(event, Dtmf):
                    self._keys.append(event.digit)
                    self._changed.set()
                elif self._listener is not None:
                    self._audio_at = loop.time()
                    self._listener(event.pcm)
        except ChannelFailed as exc:
            log.warning("media path: %s", exc)
        except Exception:
            log.exception("media path: reading the stream failed")
        finally:
            self._lost = True
            self._changed.set()

    async def _leave_media(self) -> None:
        """End the socket (the EXEC returns, AGI takes commands again) and send what waited."""
        if self.state != "media":
            return
        self.state = "agi"
        conn = self.conn
        if conn is not None:
            self.media.pacer.stop(conn)
            await conn.end()
            self.media.server.release(conn)
        await self._settle_decoding()
        try:
            await self._exec_answer()
        finally:
            if self._reader is not None:
                self._reader.cancel()
            await self._flush_variables()

    async def _fall_back(self, why: str) -> None:
        await self._leave_media()  # raises ChannelHungUp when Asterisk already said the caller left
        # The stream ends the same way when the caller hangs up (EXEC answers -1, and Asterisk's HANGUP
        # may come only after it): ask whether the channel is still there before calling it a loss.
        # (A dead channel answers 511, which raises ChannelHungUp; a live one its state, 6 when up.)
        status = await self.transport.command("CHANNEL STATUS", timeout=self.read_timeout)
        if status.code == 200 and status.value < 0:
            raise ChannelHungUp("the caller hung up during the media dialog")
        self.media.figures.lost += 1
        log.warning("media path: %s: the call goes on keys-only over AGI", why)

    async def _flush_variables(self) -> None:
        variables, self._deferred = self._deferred, {}
        for name, value in variables.items():
            await self.transport.command(
                f"SET VARIABLE {name} {quote(value)}", timeout=self.read_timeout, after_hangup=True
            )

    async def finish(self) -> None:
        """The call is over for the server: leave the socket and send the variables that waited (also
        after the caller hung up: a dead channel still takes SET VARIABLE)."""
        with contextlib.suppress(ChannelHungUp, ChannelFailed, OSError):
            await self._leave_media()
        if self._deferred:
            with contextlib.suppress(ChannelHungUp, ChannelFailed, OSError):
                await self._flush_variables()

    # ---- waiting for what the caller does ------------------------------------------------------------

    def _take_key(self) -> str:
        """The caller's next key (a key typed ahead over AGI first): one key, as STREAM FILE's escape
        gives one; the keys after it stay queued for `_wait_digit` (the rest of this input) or the next
        question, so two keys typed ahead answer two one-key questions."""
        if self.typed_ahead:
            return self._take_typed_ahead()
        return self._keys.popleft() if self._keys else ""

    def _drop_keys(self) -> None:
        """A question heard whole: keys pressed before or during it are not its answer."""
        self._take_typed_ahead()
        self._keys.clear()

    async def _wait_changed(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))

    async def _wait_digit(self, seconds: float) -> str:
        if not await self._media_ready():
            return await super()._wait_digit(seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if self._keys:
                return self._keys.popleft()
            if self._lost:
                await self._fall_back("the media stream ended while waiting for a key")
                return await super()._wait_digit(max(0.001, deadline - loop.time()))
            left = deadline - loop.time()
            if left <= 0:
                return ""
            await self._wait_changed(left)

    # ---- prompts -----------------------------------------------------------------------------------

    def _prompt_audio(self, prompts: Sequence[PromptRef]) -> tuple[bytes, list[float]]:
        pcm: list[bytes] = []
        levels: list[float] = []
        for path, stamp in self._existing(prompts):
            found = prompt_pcm(str(path), stamp)
            if found is None:
                continue
            audio, frame_db = found
            if path.parent.name != "words":  # as AgiChannel logs what it streams (tests read it)
                log.debug("stream %s", path.with_suffix(""))
            if len(audio) % FRAME_BYTES:  # keep every file on the 20 ms grid
                audio = audio + b"\0" * (FRAME_BYTES - len(audio) % FRAME_BYTES)
            pcm.append(audio)
            levels.extend(frame_db)
        return b"".join(pcm), levels

    def _note_prompt_start(self) -> None:
        if self._speech_result_at is not None:
            log.info(
                "reply began %.1f ms after the speech result",
                1000 * (time.perf_counter() - self._speech_result_at),
            )
            self._speech_result_at = None
        if self._input_at is not None:
            if self.latency is not None:
                whole = time.perf_counter() - self._input_at
                self.latency.record(whole, whole)  # no Asterisk round trip: the whole wait is ours
            self._input_at = None

    async def play(self, prompts: Sequence[PromptRef], *, barge_in: bool) -> str:
        if not await self._media_ready():
            return await super().play(prompts, barge_in=barge_in)
        if barge_in and (self.typed_ahead or self._keys):
            return self._take_key()
        log.info(
            "play %s lang=%s%s", prompt_keys(prompts), self.language, "" if barge_in else " (no barge-in)"
        )
        waiting = len(self._keys)
        try:
            outcome = await self._play_pcm(*self._prompt_audio(prompts), stop_on_key=barge_in)
        except _MediaLost:
            await self._fall_back("the media stream ended during a prompt")
            return await super().play(prompts, barge_in=barge_in)
        if outcome == "key":
            return self._take_key()
        while not barge_in and len(self._keys) > waiting:
            self._keys.pop()  # heard whole: keys pressed during it are not input (as over AGI)
        return ""

    async def _play_pcm(
        self,
        pcm: bytes,
        levels: list[float],
        *,
        stop_on_key: bool,
        detector: BargeInDetector | None = None,
    ) -> str:
        """Play to the caller; "done" at its end, "key" at a key (when allowed), "voice" when the caller
        started speaking (with a detector)."""
        conn = self.conn
        assert conn is not None
        self._note_prompt_start()
        if not pcm:
            return "done"
        pacer = self.media.pacer
        loop = asyncio.get_running_loop()
        playing = pacer.play(conn, pcm)
        playing.add_done_callback(lambda _f: self._changed.set())
        if detector is not None:
            began = loop.time()
            window = detector.echo_frames_window
            reference = echo_reference(levels, window)
            lead = pacer.lead

            def hear(frame: bytes) -> None:
                index = int((loop.time() - began) / FRAME_SECONDS) + lead
                if detector.heard(frame, reference_at(reference, index, window)):
                    self._changed.set()

            self._listener = hear
        try:
            while True:
                if playing.done():
                    return "done"
                if self._lost:
                    pacer.stop(conn)
                    raise _MediaLost
                if stop_on_key and self._keys:
                    pacer.stop(conn)
                    self.media.figures.barge_in_keys += 1
                    log.info("barge-in: key")
                    return "key"
                if detector is not None and detector.started:
                    result = pacer.stop(conn)
                    self.media.figures.barge_in_voice += 1
                    log.info(
                        "barge-in: voice after %.2f s of the prompt, decided on %.0f ms of voice",
                        (result.ended - result.started) if result else 0.0,
                        detector.decision_ms,
                    )
                    return "voice"
                await self._wait_changed(1.0)
        finally:
            if detector is not None:
                self._listener = None

    # ---- input -------------------------------------------------------------------------------------

    def _recognizer(self) -> CallRecognizer | None:
        speech = self.media.speech
        if speech is None:
            return None
        if self.language not in self._recognizers:
            self._recognizers[self.language] = speech.recognizer(self.language)
        return self._recognizers[self.language]

    async def collect(self, command: Collect, typed_ahead: str) -> Digits | Speech | NoInput:
        if not await self._media_ready():
            return await super().collect(command, typed_ahead)
        speech = self.media.speech
        recognizer = self._recognizer() if command.grammar else None
        if speech is None or recognizer is None:
            return await self._keys_collect(command, typed_ahead)
        if not command.barge_in:
            typed_ahead = ""  # a question heard whole: keys pressed before it are not its answer
            self._drop_keys()
        keys = typed_ahead or self._take_key()
        if keys:
            return await self._digits(command, keys)
        try:
            return await self._speech_collect(command, speech, recognizer)
        except _MediaLost:
            await self._fall_back("the media stream ended during a question")
            return await super().collect(command, "")

    async def _keys_collect(self, command: Collect, typed_ahead: str) -> Digits | NoInput:
        """A question without speech, over the socket: AgiChannel's logic on our play and keys."""
        if not command.barge_in:
            self._drop_keys()
            await self.play(command.prompts, barge_in=False)
            self._keys.clear()  # heard whole: keys pressed during it are not an answer
            keys = await self._wait_digit(command.first_digit_timeout)
            if not keys:
                return NoInput()
            return await self._digits(command, keys)
        collected = await super().collect(command, typed_ahead)
        assert not isinstance(collected, Speech)
        return collected

    async def _digits(self, command: Collect, keys: str) -> Digits | NoInput:
        collected = await self._more_keys(command, keys)
        if isinstance(collected, Digits):
            self._input_at = time.perf_counter()
        return collected

    async def _speech_collect(
        self, command: Collect, speech: SpeechService, recognizer: CallRecognizer
    ) -> Digits | Speech | NoInput:
        await self._settle_decoding()
        loop = asyncio.get_running_loop()
        # The grammar's graph is built in the pool while the prompt plays.
        begin = loop.create_task(self._begin(speech, recognizer, command))
        detector = BargeInDetector(self.media.barge_in) if command.barge_in else None
        try:
            outcome = await self._play_pcm(
                *self._prompt_audio(command.prompts), stop_on_key=command.barge_in, detector=detector
            )
        except BaseException:
            await _quietly(begin)
            raise
        # From here on every frame is kept for the recogniser (after a barge-in by voice, from just before
        # the caller began).
        self._audio = bytearray(detector.preroll() if detector is not None and outcome == "voice" else b"")
        self._audio_at = loop.time()
        self._listener = self._keep
        try:
            if not command.barge_in:
                self._keys.clear()  # heard whole: keys pressed during it are not an answer
            began_ok = await begin
            if outcome == "key" or self._keys:
                return await self._digits(command, self._take_key())
            if not began_ok:
                keys = await self._wait_digit(command.first_digit_timeout)
                return await self._digits(command, keys) if keys else NoInput()
            return await self._listen(command, speech, recognizer)
        finally:
            self._listener = None
            self._stop_decoding = True
            self._audio_ready.set()  # a decode waiting for audio ends

    def _keep(self, frame: bytes) -> None:
        self._audio += frame
        if len(self._audio) >= DECODE_CHUNK:
            self._audio_ready.set()

    async def _begin(self, speech: SpeechService, recognizer: CallRecognizer, command: Collect) -> bool:
        spoken_digits = command.spoken_digits
        return await speech.begin(
            recognizer,
            command.grammar,
            no_speech_timeout=command.first_digit_timeout,
            sequence=spoken_digits,
            # A number said digit by digit may pause between digits, as keys may.
            end_silence=(
                max(speech.config.end_silence, min(command.inter_digit_timeout, SPOKEN_DIGIT_PAUSE))
                if spoken_digits
                else None
            ),
            max_utterance=(
                max(speech.config.max_utterance, SPOKEN_DIGIT_SECONDS * command.max_digits)
                if spoken_digits
                else None
            ),
        )

    async def _listen(
        self, command: Collect, speech: SpeechService, recognizer: CallRecognizer
    ) -> Digits | Speech | NoInput:
        loop = asyncio.get_running_loop()
        self._stop_decoding = False
        decode = self._decode = loop.create_task(self._decoding(speech, recognizer))
        decode.add_done_callback(lambda _t: self._changed.set())
        began = loop.time()
        # Audio arrives only while RTP does: a wall clock ends a turn whose audio stopped.
        quiet_limit = command.first_digit_timeout + 1.0
        guard = command.first_digit_timeout + speech.config.max_utterance + 2.0
        while True:
            if self._keys:
                log.debug("a key during listening: keys win")
                return await self._digits(command, self._take_key())
            if decode.done():
                result = decode.result()
                if result is not None:
                    return self._speech_event(result)
            if self._lost:
                raise _MediaLost
            elapsed = loop.time() - began
            # Quiet: no word heard, and no audio arriving either (with audio arriving, the recogniser's
            # own no-speech timeout decides: decoding may run behind the audio under load).
            quiet = not recognizer.hearing and loop.time() - self._audio_at > AUDIO_STOPPED
            if elapsed > guard or (elapsed > quiet_limit and quiet):
                await self._settle_decoding()
                result = await speech.finish(recognizer)
                log.info("speech turn ended by the wall clock after %.1f s", elapsed)
                return self._speech_event(result)
            await self._wait_changed(0.25)

    async def _decoding(self, speech: SpeechService, recognizer: CallRecognizer) -> SpeechResult | None:
        """Feed what arrived, chunk by chunk, until the recogniser decides (or the turn is abandoned)."""
        loop = asyncio.get_running_loop()
        while not self._stop_decoding:
            if len(self._audio) < DECODE_CHUNK:
                self._audio_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._audio_ready.wait(), 0.5)
                continue
            chunk = bytes(self._audio)
            self._audio.clear()
            arrived = self._audio_at
            result = await speech.feed(recognizer, chunk)
            if result is not None:
                latency = max(0.0, loop.time() - arrived)
                return dataclasses.replace(result, latency=latency)
        return None

    async def _settle_decoding(self) -> None:
        """Let an abandoned turn's decode finish its chunk: a recogniser is fed by one thread at a time."""
        task, self._decode = self._decode, None
        self._stop_decoding = True
        self._audio_ready.set()
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), DECODE_SETTLE)

    def _speech_event(self, result: SpeechResult) -> Speech | NoInput:
        latency = result.latency
        figures = self.media.figures
        figures.turns += 1
        figures.results[result.status] = figures.results.get(result.status, 0) + 1
        if self.media.on_result is not None:
            # A turn ended by the wall clock has no recognition latency to count.
            measured = None if result.reason == "finish" else latency
            with contextlib.suppress(Exception):
                self.media.on_result(result.status, measured)
        log.info(
            "speech turn: %s after %.1f s of caller audio, endpointing %.0f ms, decided %.0f ms after (%s)",
            result.status,
            result.audio_seconds,
            result.endpoint_silence * 1000,
            latency * 1000,
            result.reason,
        )
        event = speech_event(
            result.status, result.text, result.confidence, audio_seconds=result.audio_seconds, latency=latency
        )
        if isinstance(event, Speech):
            self._input_at = time.perf_counter()
            self._speech_result_at = self._input_at
        return event

    # ---- AGI commands that must wait for the socket -------------------------------------------------

    async def set_variable(self, name: str, value: str) -> None:
        if self.state == "media":
            self._deferred.pop(name, None)
            self._deferred[name] = value
            return
        await super().set_variable(name, value)

    async def set_language(self, language: str) -> None:
        if self.state == "media":
            self.language = language
            self._deferred.pop("CHANNEL(language)", None)
            self._deferred["CHANNEL(language)"] = language
            return
        await super().set_language(language)

    async def queue_status(self, queue: str) -> QueueStatus | None:
        await self._leave_media()  # the queue step runs over AGI (it ends in a transfer anyway)
        return await super().queue_status(queue)

    async def transfer(self, command: Transfer) -> None:
        await self._leave_media()
        await super().transfer(command)

    async def hangup(self, reason: str) -> None:
        await self._leave_media()
        await super().hangup(reason)

    async def publish_error(self) -> None:
        with contextlib.suppress(ChannelHungUp, ChannelFailed, OSError):
            await self._leave_media()
        await super().publish_error()


async def _quietly(task: asyncio.Task[bool]) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task
