"""A per-call recognizer: one grammar per Collect, streamed 8 kHz 16-bit mono PCM in, one result out.

    rec = CallRecognizer(load_model(settings), SpeechConfig(min_confidence=0.6))
    rec.start(["баланс", "оператор"], no_speech_timeout=5.0)   # SetGrammar + Reset, once per Collect
    while (result := rec.feed(chunk)) is None: ...                # or await rec.feed_async(chunk)
    result.status  # "match" (text, confidence) | "nomatch" (heard, rejected) | "noinput"

One Kaldi recognizer is made per call and reused across turns (`SetGrammar()` then `Reset()`): a new one per
turn costs several times the CPU (docs/benchmarks.md). Endpointing counts audio time, not wall time, so it
behaves the same however fast audio arrives:
  - Vosk's own endpoint (AcceptWaveform returns True) with text ends the utterance;
  - the partial text unchanged for `end_silence` seconds after speech began ends it (trailing silence);
  - `max_utterance` seconds after speech began end it whatever is still being said;
  - `no_speech_timeout` seconds with no word heard give "noinput".
Confidence is the lowest word confidence of the result (`SetWords(True)`); below `min_confidence`, or
with an `[unk]` word or a decoy phrase, the result is "nomatch". Decoding is CPU work: async callers use
`feed_async` / `finish_async`, which run it in a worker thread so an event loop serving other calls stays
responsive.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ivr.speech.grammar import grammar_json, grammar_phrases
from ivr.speech.model import UNK, has_word

log = logging.getLogger(__name__)

_EPSILON = 1e-6  # seconds: audio time is a sum of chunk lengths


class KaldiLike(Protocol):
    """The part of vosk.KaldiRecognizer used here (tests pass a fake)."""

    def AcceptWaveform(self, data: bytes) -> int: ...
    def Result(self) -> str: ...
    def PartialResult(self) -> str: ...
    def FinalResult(self) -> str: ...
    def Reset(self) -> None: ...
    def SetGrammar(self, grammar: str) -> None: ...
    def SetWords(self, words: bool) -> None: ...


@dataclass(frozen=True)
class SpeechConfig:
    sample_rate: int = 8000
    min_confidence: float = 0.5
    end_silence: float = 0.8  # seconds of audio with an unchanged partial after speech began
    max_utterance: float = 8.0  # seconds of audio from the first word heard
    no_speech_timeout: float = 5.0  # default when start() is not given one


@dataclass(frozen=True)
class SpeechResult:
    status: str  # match | nomatch | noinput
    text: str = ""
    confidence: float = 0.0
    audio_seconds: float = 0.0  # audio fed in this turn
    reason: str = ""  # what ended it: vosk_final | end_silence | max_utterance | no_speech | finish
    latency: float = 0.0  # seconds from the audio that decided it to the result (set by the driver)
    # Seconds of caller audio between the last change of the words heard and the decision: the
    # endpointing silence (0 for no input).
    endpoint_silence: float = 0.0

    @property
    def matched(self) -> bool:
        return self.status == "match"


def confidence_of(result: dict[str, Any]) -> float:
    """The lowest word confidence of a Vosk result (SetWords(True)); 1.0 for text without word data."""
    words = result.get("result") or []
    confs = [float(w.get("conf", 0.0)) for w in words if isinstance(w, dict)]
    if confs:
        return min(confs)
    return 1.0 if result.get("text") else 0.0


def _vosk_factory(model: Any, sample_rate: int, grammar: str) -> KaldiLike:
    import vosk

    recognizer: KaldiLike = vosk.KaldiRecognizer(model, sample_rate, grammar)
    return recognizer


class CallRecognizer:
    def __init__(
        self,
        model: Any,
        config: SpeechConfig | None = None,
        *,
        factory: Callable[[Any, int, str], KaldiLike] = _vosk_factory,
        with_unk: bool | None = None,
    ) -> None:
        self.model = model
        self.config = config or SpeechConfig()
        self._factory = factory
        # "[unk]" only where the model's vocabulary has it (docs/speech.md).
        self.with_unk = has_word(model, UNK) if with_unk is None else with_unk
        self._sequence = False
        self._words: frozenset[str] = frozenset()
        self._rec: KaldiLike | None = None
        self._phrases: list[str] = []
        self._decoys: list[str] = []
        self._timeout = self.config.no_speech_timeout
        self._bytes = 0
        self._speech_at: float | None = None
        self._partial = ""
        self._changed_at = 0.0
        self._result: SpeechResult | None = None

    @property
    def phrases(self) -> list[str]:
        return list(self._phrases)

    @property
    def hearing(self) -> bool:
        """Has the caller begun to say something in this turn (a partial result appeared)?"""
        return self._speech_at is not None

    @property
    def seconds(self) -> float:
        return self._bytes / (2.0 * self.config.sample_rate)

    def start(
        self,
        phrases: Iterable[str],
        *,
        no_speech_timeout: float | None = None,
        decoys: Iterable[str] = (),
        sequence: bool = False,
        end_silence: float | None = None,
        max_utterance: float | None = None,
    ) -> None:
        """Begin a turn with these phrases as the grammar. Raises ValueError for an empty grammar.

        A match is exactly one of the phrases: Vosk's grammar lets a recogniser return a run of phrases,
        which is how speech outside the menu comes out when nothing else fits ("hello hello" for a
        sentence about the weather), so a run is no match. `sequence`: a run of the phrases' words IS the
        answer (spoken digits: "one two three"); Vosk's own endpoint then only closes a segment, and
        the turn ends after `end_silence` (the question's own, e.g. its inter-digit timeout) without a
        new word, so a caller may pause between digits. `end_silence` and `max_utterance` default to
        the configuration's.
        `decoys` are extra grammar phrases that count as no match when
        heard: a stand-in for `[unk]` with a model that lacks it, so common out-of-menu words are not
        forced onto a menu phrase."""
        self._phrases = grammar_phrases(phrases, with_unk=False)
        if not self._phrases:
            raise ValueError("an empty grammar: nothing to recognise")
        self._sequence = sequence
        self._words = frozenset(word for phrase in self._phrases for word in phrase.split())
        self._decoys = [d for d in grammar_phrases(decoys, with_unk=False) if d not in self._phrases]
        grammar = grammar_json([*self._phrases, *self._decoys], with_unk=self.with_unk)
        if self._rec is None:
            self._rec = self._factory(self.model, self.config.sample_rate, grammar)
            self._rec.SetWords(True)
        else:
            # Reset first: SetGrammar on a recognizer still mid-utterance is a Kaldi fatal error (abort).
            self._rec.Reset()
            self._rec.SetGrammar(grammar)
        self._rec.Reset()
        self._timeout = self.config.no_speech_timeout if no_speech_timeout is None else no_speech_timeout
        self._end_silence = self.config.end_silence if end_silence is None else end_silence
        self._max_utterance = self.config.max_utterance if max_utterance is None else max_utterance
        self._segments: list[dict[str, Any]] = []
        self._bytes = 0
        self._speech_at = None
        self._partial = ""
        self._changed_at = 0.0
        self._result = None

    def feed(self, chunk: bytes) -> SpeechResult | None:
        """Feed audio; the turn's result once it is decided (then the same result on every later call)."""
        if self._result is not None:
            return self._result
        rec = self._require()
        if chunk:
            self._bytes += len(chunk)
            if rec.AcceptWaveform(chunk):
                final = json.loads(rec.Result())
                if final.get("text") and self._sequence:
                    self._segments.append(final)  # a pause between digits: the turn goes on
                    if self._speech_at is None:
                        self._speech_at = self.seconds
                elif final.get("text"):
                    return self._judge(final, "vosk_final")
                # Vosk closed a segment of silence or noise: nothing said yet in this segment.
                self._partial = ""
                self._changed_at = self.seconds
            else:
                partial = str(json.loads(rec.PartialResult()).get("partial", ""))
                if partial != self._partial:
                    self._partial = partial
                    self._changed_at = self.seconds
                    if partial and self._speech_at is None:
                        self._speech_at = self.seconds
        now = self.seconds
        if self._speech_at is None:
            if now + _EPSILON >= self._timeout:
                return self._done(SpeechResult("noinput", audio_seconds=now, reason="no_speech"))
            return None
        if now - self._speech_at + _EPSILON >= self._max_utterance:
            return self._judge(json.loads(rec.FinalResult()), "max_utterance")
        heard = self._partial or self._segments
        if heard and now - self._changed_at + _EPSILON >= self._end_silence:
            return self._judge(json.loads(rec.FinalResult()), "end_silence")
        return None

    def finish(self) -> SpeechResult:
        """No more audio (the caller's keys won, the line went quiet, a wall-clock guard): decide now."""
        if self._result is not None:
            return self._result
        return self._judge(json.loads(self._require().FinalResult()), "finish")

    async def feed_async(self, chunk: bytes) -> SpeechResult | None:
        return await asyncio.to_thread(self.feed, chunk)

    async def finish_async(self) -> SpeechResult:
        return await asyncio.to_thread(self.finish)

    def _require(self) -> KaldiLike:
        if self._rec is None:
            raise RuntimeError("start() a turn with a grammar first")
        return self._rec

    def _done(self, result: SpeechResult) -> SpeechResult:
        self._result = result
        log.debug(
            "speech %s %r conf=%.2f after %.2f s (%s)",
            result.status,
            result.text,
            result.confidence,
            result.audio_seconds,
            result.reason,
        )
        return result

    def _judge(self, result: dict[str, Any], reason: str) -> SpeechResult:
        if self._segments:  # a sequence said with pauses: its segments, then what came last
            parts = [*self._segments, result]
            self._segments = []
            words = [w for part in parts for w in (part.get("result") or []) if isinstance(w, dict)]
            text = " ".join(str(part.get("text", "")) for part in parts)
            result = {"text": text, "result": words}
        text = " ".join(str(result.get("text", "")).split())
        seconds = self.seconds
        silence = max(0.0, seconds - self._changed_at) if self._speech_at is not None else 0.0
        if not text:
            status = "noinput" if self._speech_at is None else "nomatch"
            return self._done(
                SpeechResult(status, audio_seconds=seconds, reason=reason, endpoint_silence=silence)
            )
        confidence = confidence_of(result)
        tokens = text.split()
        fits = all(token in self._words for token in tokens) if self._sequence else text in self._phrases
        if UNK in tokens or not fits or confidence < self.config.min_confidence:
            return self._done(
                SpeechResult("nomatch", text, confidence, seconds, reason, endpoint_silence=silence)
            )
        return self._done(SpeechResult("match", text, confidence, seconds, reason, endpoint_silence=silence))
