"""What the console plays: a prompt of a draft or of the live version as callers hear it (the rendered
8 kHz files, joined), rendering the draft's changed texts first; and recordings made by people, turned
into the line's format.

Rendering a draft is safe while the line serves: static prompt audio is named by the hash of its text
(ivr/prompts/voice.py), so a draft's new text gets new files and the files callers hear are not touched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import wave
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydub import AudioSegment
from pydub.exceptions import CouldntDecodeError

from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.render import RenderReport, plan_prompts, render_jobs, trim_and_normalise
from ivr.prompts.voice import PromptVoice
from ivr.trees.texts import PLACEHOLDER
from ivr.web.files import scratch_prompts

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_RECORDING_SECONDS = 120
UPLOAD_FORMATS = {".wav": "wav", ".mp3": "mp3", ".ogg": "ogg", ".oga": "ogg", ".m4a": "m4a"}

# Values a prompt with placeholders is heard with in the console.
SAMPLE_VALUES: dict[str, Any] = {
    "money": Decimal("123.45"),
    "points": 250,
    "number": 3,
    "minutes": 15,
    "sms": 10,
    "megabytes": 500,
    "days": 7,
    "date": dt.date(2026, 12, 3),
    "digits": "0505",
    "phone": "79161234567",
}


class UploadError(ValueError):
    pass


def scratch_settings(settings: Settings, prompts: Path) -> Settings:
    return dataclasses.replace(settings, prompts_dir=prompts)


def sample_ref(text: str, key: str) -> PromptRef:
    values = {}
    for name, kind in PLACEHOLDER.findall(text):
        if kind in SAMPLE_VALUES:
            values[name] = SAMPLE_VALUES[kind]
    return PromptRef(key, values)


def render_prompts(
    settings: Settings,
    line: str,
    files: Mapping[str, str],
    *,
    keys: Iterable[str] | None = None,
    publishing: bool = False,
) -> RenderReport:
    """Render the line's prompts as `files` has them (only `keys`, when given) into the line's sounds. A
    draft's renders get their hashed names only; a publish also points the plain names (which the dialplan
    plays) at the new audio."""
    wanted = set(keys) if keys is not None else None
    with scratch_prompts(settings.prompts, line, files) as root:
        scratch = scratch_settings(settings, root)
        voice = PromptVoice(scratch)
        jobs = [
            job if publishing else dataclasses.replace(job, alias="")
            for job in plan_prompts(voice, [line], voice.languages(line))
            if wanted is None or _job_key(job.rel) in wanted
        ]
        return render_jobs(scratch, jobs, engine=settings.tts_engine, progress=False)


def _job_key(rel: str) -> str:
    """ "ru/operator/balance_is.0.1a2b3c4d5e.wav" -> "balance_is"."""
    return Path(rel).name.split(".")[0]


def prompt_wav(
    settings: Settings, line: str, files: Mapping[str, str], lang: str, key: str
) -> tuple[bytes, str]:
    """The prompt `key` of `files` in `lang` as one WAV, rendered first when needed; and its text."""
    render_prompts(settings, line, files, keys=[key])
    with scratch_prompts(settings.prompts, line, files) as root:
        voice = PromptVoice(scratch_settings(settings, root))
        template = voice.template(line, lang, key)
        ref = sample_ref(template.text, key)
        text = voice.text(line, lang, ref)
        paths = [p for p in voice.files(line, lang, ref) if p.is_file()]
    return join_wavs(paths), text


def join_wavs(paths: Iterable[Path]) -> bytes:
    """Telephone WAVs (same format) one after another, as Asterisk plays them."""
    out = io.BytesIO()
    with wave.open(out, "wb") as sink:
        params_set = False
        for path in paths:
            with wave.open(str(path), "rb") as src:
                if not params_set:
                    sink.setparams(src.getparams())
                    params_set = True
                sink.writeframes(src.readframes(src.getnframes()))
        if not params_set:
            sink.setnchannels(1)
            sink.setsampwidth(2)
            sink.setframerate(8000)
    return out.getvalue()


def recording_from_upload(name: str, data: bytes) -> bytes:
    """A person's recording (WAV, MP3, OGG or M4A) as the line's audio: 8 kHz mono 16-bit PCM, trimmed and
    level-normalised like the synthesised prompts. pydub decodes through ffmpeg."""
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_FORMATS:
        raise UploadError(f"{name}: upload WAV, MP3, OGG or M4A")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name}: larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        audio = AudioSegment.from_file(io.BytesIO(data), format=UPLOAD_FORMATS[suffix])
    except (CouldntDecodeError, IndexError, OSError) as exc:
        raise UploadError(f"{name}: not a readable {suffix[1:].upper()} file") from exc
    if audio.duration_seconds > MAX_RECORDING_SECONDS:
        raise UploadError(f"{name}: longer than {MAX_RECORDING_SECONDS} s")
    if audio.duration_seconds < 0.2:
        raise UploadError(f"{name}: too short to be a prompt")
    # ffmpeg's resampler low-passes before decimating (pydub's set_frame_rate alone would not: see
    # ivr/prompts/render.py); going through it keeps the upload free of aliasing.
    telephone = _resample(audio)
    out = io.BytesIO()
    trim_and_normalise(telephone).export(out, format="wav")
    return out.getvalue()


def _resample(audio: AudioSegment) -> AudioSegment:
    src = io.BytesIO()
    audio.export(src, format="wav")
    src.seek(0)
    resampled = io.BytesIO()
    AudioSegment.from_file(src, format="wav").export(
        resampled, format="wav", parameters=["-ac", "1", "-ar", "8000", "-sample_fmt", "s16"]
    )
    resampled.seek(0)
    return AudioSegment.from_file(resampled, format="wav")
