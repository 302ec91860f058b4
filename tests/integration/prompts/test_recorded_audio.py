"""A recording made by a person (prompts/recordings/<source>/<lang>/<key>.wav) replaces the synthesised
audio of its text: rendered beside the synthesised file under a name of its own (the recording's samples,
untouched), streamed by the view of a set that has it while a set without it streams the synthesised one,
checked like any piece, pruned like any piece. Rendering with espeak-ng, incrementally over one render."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.render import (
    MANIFEST,
    PRUNE_GRACE_SECONDS,
    TARGET_RMS_DBFS,
    check_prompts,
    plan_prompts,
    prune_prompts,
    render,
    render_jobs,
    wav_info,
)
from ivr.prompts.voice import PromptVoice, piece_file
from ivr.trees.texts import load_texts

WELCOME = PromptRef("welcome")
WELCOME_TEXT = "Здравствуйте! Вы позвонили в службу поддержки."
KEYS = {"ru": ["welcome", "balance"]}


def voice_wav(*, rate: int = 8000, channels: int = 1, seconds: float = 0.8, pitch: float = 220.0) -> bytes:
    """A stand-in for a person's voice: a few harmonics under a smooth envelope, 16-bit PCM WAV."""
    t = np.arange(int(rate * seconds)) / rate
    signal = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3, 5))
    signal = signal * np.hanning(t.size) * 0.25
    samples = np.round(signal * 32767).astype("<i2")
    if channels > 1:
        samples = np.repeat(samples[:, None], channels, axis=1)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


def frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


def frames_of(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.readframes(wav.getnframes())


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, home_factory: Callable[[Path], Settings]
) -> Iterator[Settings]:
    if not shutil.which("espeak-ng") or not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and sox/ffmpeg are needed (scripts/install_tts.sh)")
    settings = home_factory(tmp_path_factory.mktemp("recordings"))
    report = render(settings, engine="espeak", progress=False)
    assert not report.failed, report.failed
    yield settings


@pytest.fixture
def settings(rendered: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(rendered.home, tmp_path / "home")
    return Settings(home=tmp_path / "home")


def record(settings: Settings, data: bytes, key: str = "welcome", source: str = "alpha") -> Path:
    path = settings.prompts / "recordings" / source / "ru" / f"{key}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def manifest(settings: Settings) -> dict[str, dict[str, object]]:
    return dict(json.loads((settings.sounds / MANIFEST).read_text(encoding="utf-8"))["files"])


def test_a_recording_is_rendered_and_streamed_by_the_set_that_has_it(settings: Settings) -> None:
    voice = PromptVoice(settings)
    texts = settings.prompts / "texts"
    without = voice.for_texts(load_texts(texts, "alpha"))
    (synthesised,) = without.files("alpha", "ru", WELCOME)
    synthesised_audio = synthesised.read_bytes()
    data = voice_wav()
    record(settings, data)
    digest = hashlib.sha1(data).hexdigest()
    with_recording = voice.for_texts(load_texts(texts, "alpha"))
    (recorded,) = with_recording.files("alpha", "ru", WELCOME)
    assert recorded.name == piece_file("welcome", WELCOME_TEXT, digest) != synthesised.name
    problems = check_prompts(settings, "alpha", KEYS, voice=with_recording)
    assert problems == [
        "alpha/ru: prompt 'welcome': audio ru/alpha/welcome.wav is older than its recording "
        "(run `ivr prompts render`)"
    ]

    report = render(settings, engine="espeak", progress=False)
    assert (report.rendered, report.by_engine, report.failed) == (1, {"recording": 1}, [])
    # The recording's samples, as they are (the console stores them converted, trimmed and levelled).
    assert wav_info(recorded)[:3] == (8000, 1, 2)
    assert frames(recorded) == frames_of(data)
    entry = manifest(settings)[f"ru/alpha/{recorded.name}"]
    assert (entry["kind"], entry["engine"], entry["recording"], entry["text"]) == (
        "recording",
        "recording",
        digest,
        WELCOME_TEXT,
    )
    # The plain name (the dialplan's) is the newest render: the recording.
    assert os.path.samefile(settings.sounds / "ru" / "alpha" / "welcome.wav", recorded)
    # Each set streams its own audio; the synthesised file is untouched; both sets pass the check.
    assert with_recording.stream_names("alpha", "ru", WELCOME) == [str(recorded.with_suffix(""))]
    assert without.stream_names("alpha", "ru", WELCOME) == [str(synthesised.with_suffix(""))]
    assert synthesised.read_bytes() == synthesised_audio
    assert with_recording.text("alpha", "ru", WELCOME) == without.text("alpha", "ru", WELCOME) == WELCOME_TEXT
    assert check_prompts(settings, "alpha", KEYS, voice=with_recording) == []
    assert check_prompts(settings, "alpha", KEYS, voice=without) == []
    assert check_prompts(settings, "alpha", KEYS) == []  # the files as they are now: with the recording

    again = render(settings, engine="espeak", progress=False)
    assert again.rendered == 0 and not again.failed
    forced = render(settings, engine="espeak", progress=False, force=True)
    assert not forced.failed and frames(recorded) == frames_of(data)


def test_a_recording_in_another_format_is_converted(settings: Settings) -> None:
    data = voice_wav(rate=22050, channels=2)
    record(settings, data)
    report = render(settings, engine="espeak", progress=False)
    assert report.rendered == 1 and not report.failed
    voice = PromptVoice(settings)
    (recorded,) = voice.files("alpha", "ru", WELCOME)
    assert recorded.name == piece_file("welcome", WELCOME_TEXT, hashlib.sha1(data).hexdigest())
    rate, channels, width, seconds = wav_info(recorded)
    assert (rate, channels, width) == (8000, 1, 2) and 0.3 < seconds <= 0.8
    samples = np.frombuffer(frames(recorded), dtype="<i2").astype(float) / 32768
    assert abs(20 * np.log10(np.sqrt(np.mean(samples**2))) - TARGET_RMS_DBFS) < 1.0  # levelled


def test_a_replaced_or_removed_recording_gets_new_audio_and_the_old_is_pruned_later(
    settings: Settings,
) -> None:
    first, second = voice_wav(), voice_wav(pitch=180.0)
    path = record(settings, first)
    render(settings, engine="espeak", progress=False)
    folder = settings.sounds / "ru" / "alpha"
    first_file = folder / piece_file("welcome", WELCOME_TEXT, hashlib.sha1(first).hexdigest())
    second_file = folder / piece_file("welcome", WELCOME_TEXT, hashlib.sha1(second).hexdigest())
    synthesised = folder / piece_file("welcome", WELCOME_TEXT)
    plain = folder / "welcome.wav"
    assert first_file.is_file() and os.path.samefile(plain, first_file)
    assert f"ru/alpha/{synthesised.name}" in prune_prompts(settings).waiting  # unused, kept a while

    path.write_bytes(second)
    report = render(settings, engine="espeak", progress=False)
    assert report.rendered == 1 and not report.failed
    assert frames(second_file) == frames_of(second) and frames(first_file) == frames_of(first)
    assert os.path.samefile(plain, second_file)

    path.unlink()  # back to the synthesis: its file is used again, the plain name points at it
    report = render(settings, engine="espeak", progress=False)
    assert report.rendered == 0 and not report.failed
    assert os.path.samefile(plain, synthesised)
    assert PromptVoice(settings).files("alpha", "ru", WELCOME) == [synthesised.resolve()]
    # Both recordings' files are unused now: pruned once their grace period is over, the synthesis kept.
    marks = manifest(settings)
    since = [marks[f"ru/alpha/{f.name}"]["unused_since"] for f in (first_file, second_file)]
    assert all(isinstance(t, float) for t in since)
    gone = prune_prompts(settings, now=max(since) + PRUNE_GRACE_SECONDS + 1)
    assert sorted(gone.deleted) == sorted(f"ru/alpha/{f.name}" for f in (first_file, second_file))
    assert not first_file.exists() and not second_file.exists() and synthesised.is_file()


def test_a_recording_changed_after_its_set_was_read_is_not_rendered(settings: Settings) -> None:
    path = record(settings, voice_wav())
    jobs = plan_prompts(PromptVoice(settings), ["alpha"], ["ru"])
    path.write_bytes(voice_wav(pitch=180.0))  # replaced between reading the texts and rendering
    report = render_jobs(settings, jobs, engine="espeak", progress=False)
    (failed,) = report.failed
    assert failed[0].startswith("ru/alpha/welcome.") and "changed since its texts were read" in failed[1]
    assert report.rendered == 0


def test_a_silent_recording_is_not_rendered(settings: Settings) -> None:
    data = io.BytesIO()
    with wave.open(data, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 4000)
    record(settings, data.getvalue())
    report = render(settings, engine="espeak", progress=False)
    assert len(report.failed) == 1 and "silent" in report.failed[0][1]
    problems = check_prompts(settings, "alpha", KEYS)
    assert len(problems) == 1 and "older than its recording" in problems[0]
