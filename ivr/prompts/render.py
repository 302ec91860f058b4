"""Render prompts ahead of calls: every static text piece, every word of the values vocabulary, and names.

Output: telephone audio, 8 kHz mono 16-bit PCM WAV, under settings.sounds (layout in ivr/prompts/voice.py):

  1. the TTS engine writes its own audio (any rate/format; what is not WAV, gTTS's MP3, is decoded by
     pydub through ffmpeg);
  2. sox resamples it to 8 kHz with its high-quality band-limiting filter (`rate -h`; ffmpeg's resampler
     `-ar 8000` when sox is missing), after an 80 Hz high-pass (telephone band; removes DC and rumble).
     Never pydub's `set_frame_rate`: it does not low-pass before downsampling, so it aliases;
  3. leading and trailing silence is trimmed (pydub): 10 ms windows, a window is speech when its RMS is
     within 35 dB of the loudest window (and above -58 dBFS); 20 ms is kept before the speech and 40 ms
     after;
  4. loudness is normalised (pydub `apply_gain`): the trimmed clip's RMS is scaled to -20 dBFS, but never
     so far that a peak passes -1 dBFS. Every prompt and word fragment therefore plays at the same level,
     so a concatenated amount does not jump in volume between words;
  5. the file is written to a temporary name and renamed, so a live server never plays half a file.

A static piece of a text is written to its content-addressed name `<stem>.<h>.wav` (h: a hash of the
piece's text, `voice.piece_file`), so rendering a changed text never overwrites audio that a call still
on the previous version plays; `<stem>.wav` is then pointed at it as a hard link (a copy where the file
system cannot link): the newest render under its plain name, for the dialplan and for people.

`var/sounds/manifest.json` records, per file, the text, engine, voice and a hash of (pipeline version,
engine, voice, language, text); a file whose hash matches and which exists is not rendered again (nor is
a piece whose plain-named file from before the hashed names has that hash: it is linked, not rendered).
Jobs run in a thread pool (each job is two short subprocesses), by default one worker per core.

A text a person recorded (`prompts/recordings/<source>/<lang>/<key>.wav`, see ivr/prompts/voice.py) is a
job of kind "recording": no TTS; the recording (the staff console stores it already converted) is copied
sample for sample when it is 8 kHz mono 16-bit PCM, and otherwise goes through steps 2-4 like an engine's
output (`telephone_audio`); then step 5. Its manifest hash covers the recording's digest instead of the
engine and voice.

Pruning (`prune_prompts`, run at the end of `render`): a hashed piece the current texts no longer use is
first marked in the manifest (`unused_since`) and deleted by a later prune once it has been unused for
the grace period (PRUNE_GRACE_SECONDS, an hour; longer than any call), so a call in progress on the old
version still finds its audio. Words and names are never pruned.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydub import AudioSegment
from pydub.exceptions import CouldntDecodeError
from pydub.silence import detect_nonsilent
from pydub.utils import make_chunks, ratio_to_db

from ivr.config import Settings, load_settings
from ivr.prompts.tts import SynthesisError, TtsEngine, get_engine
from ivr.prompts.voice import (
    COMMON,
    KINDS,
    PIECE_FILE,
    WORDING,
    WORDS_DIR,
    PromptVoice,
    VoiceView,
    name_slug,
    parse_template,
    piece_file,
    slug,
    vocabulary,
)
from ivr.trees.texts import recording_problems

log = logging.getLogger(__name__)

PIPELINE_VERSION = "1"  # bump when the post-processing below changes: everything re-renders
SAMPLE_RATE = 8000
TARGET_RMS_DBFS = -20.0
PEAK_LIMIT_DBFS = -1.0
TRIM_RANGE_DB = 35.0
TRIM_FLOOR_DBFS = -58.0
WINDOW_MS = 10  # trimming judges the audio in windows of this length
KEEP_BEFORE_MS = 20
KEEP_AFTER_MS = 40
PAUSE_MS = 250
MANIFEST = "manifest.json"
# How long a piece's audio stays after the current texts stopped using it: longer than any call
# (settings.max_call_seconds), so a call that started on the old version plays it to the end.
PRUNE_GRACE_SECONDS = 3600.0

_CYRILLIC = re.compile("[а-яА-ЯёЁ]")


class RenderError(RuntimeError):
    pass


@dataclass(frozen=True)
class RenderJob:
    rel: str  # path under the sounds directory, e.g. "ru/operator/balance_is.0.3f2a9c01de.wav"
    text: str
    lang: str
    kind: str  # prompt | recording | word | name | pause
    # A static piece's plain name ("ru/operator/balance_is.0.wav"), kept as a hard link to `rel` once it
    # is rendered: the dialplan plays a few prompts by name. "" for none.
    alias: str = ""
    # kind "recording": the person's recording (prompts/recordings/<source>/<lang>/<key>.wav) and the
    # sha1 of its bytes as the set of texts has it (the file must still have those bytes).
    recording_file: str = ""
    digest: str = ""


@dataclass
class RenderReport:
    planned: int = 0
    rendered: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    fallbacks: int = 0
    seconds: float = 0.0
    engine: str = ""
    by_engine: dict[str, int] = field(default_factory=dict)
    pruned: int = 0  # unused piece files deleted (prune_prompts)

    def summary(self) -> str:
        return (
            f"{self.planned} files: {self.rendered} rendered, {self.skipped} unchanged, "
            f"{len(self.failed)} failed, {self.fallbacks} fell back ({self.engine}, {self.seconds:.1f} s)"
            + (f"; {self.pruned} unused pruned" if self.pruned else "")
        )


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)  # paths under the sounds directory
    waiting: list[str] = field(default_factory=list)  # unused, kept until their grace period is over


# ----- audio post-processing -------------------------------------------------------------------------
#
# pydub does the audio handling: decoding what an engine wrote when it is not WAV (gTTS's MP3, through
# ffmpeg), the window levels and the speech bounds for trimming, the gain, the WAV written. What pydub
# cannot do well stays on sox (or ffmpeg): the resampling to 8 kHz and the 80 Hz high-pass.


def _decode(src: Path) -> AudioSegment:
    """An engine's non-WAV output (gTTS's MP3) as PCM; pydub runs ffmpeg (ffprobe, then a decode)."""
    try:
        # Our open file, not the path: given a path, pydub opens the file and, when ffprobe finds no
        # audio stream, leaves it open.
        with src.open("rb") as file:
            return AudioSegment.from_file(file)
    # OSError: ffmpeg/ffprobe missing, file unreadable. IndexError/KeyError: pydub takes the first audio
    # stream ffprobe lists without checking there is one (a picture or an error page saved as .mp3).
    except (CouldntDecodeError, OSError, IndexError, KeyError) as exc:
        raise RenderError(f"cannot decode {src.name}: {str(exc).strip()[-200:]}") from exc


def resample_to_telephone(src: Path) -> AudioSegment:
    """Any audio file -> 8 kHz mono 16-bit, band-limited (sox `rate -h`, else ffmpeg), 80 Hz high-passed.

    Kept on sox, not pydub's `set_frame_rate`: that is audioop.ratecv, which does not low-pass before
    downsampling, so a 5 kHz tone folds to 3 kHz, into the phone band, only 1.5 dB down (measured; the
    test test_resampling_low_passes_instead_of_aliasing wants > 50 dB). Nor pydub's `high_pass_filter`: a
    one-pole (6 dB/octave) filter run as a per-sample Python loop; sox's two-pole `highpass` runs in the
    same process as the resampler.

    A WAV file (espeak-ng, RHVoice) is read by sox/ffmpeg directly, as before: decoding it with pydub
    first would only add a copy and a pipe. Anything else (gTTS's MP3) is decoded by pydub and its PCM
    piped in, so MP3 gets sox's resampler too."""
    decoded = None if src.suffix.lower() == ".wav" else _decode(src)
    sox = shutil.which("sox")
    if sox:
        if decoded is None:
            source = [str(src)]
        else:
            source = ["-t", "raw", "-e", "signed-integer", "-L", "-b", str(8 * decoded.sample_width)]
            source += ["-c", str(decoded.channels), "-r", str(decoded.frame_rate), "-"]
        cmd = [sox, "-q", *source, "-t", "raw", "-e", "signed-integer", "-L", "-b", "16", "-c", "1"]
        cmd += ["-r", str(SAMPLE_RATE), "-", "highpass", "80", "rate", "-h", str(SAMPLE_RATE)]
    else:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RenderError("neither sox nor ffmpeg is installed")
        if decoded is None:
            source = ["-i", str(src)]
        else:
            bits = 8 * decoded.sample_width
            pcm = "s8" if bits == 8 else f"s{bits}le"
            source = ["-f", pcm, "-ar", str(decoded.frame_rate), "-ac", str(decoded.channels), "-i", "pipe:0"]
        cmd = [ffmpeg, "-v", "error", "-nostdin", *source, "-af", "highpass=f=80"]
        cmd += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-acodec", "pcm_s16le", "-"]
    proc = subprocess.run(
        cmd,
        input=None if decoded is None else decoded.raw_data,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RenderError(f"{Path(cmd[0]).name} failed: {proc.stderr.decode(errors='replace')[:200]}")
    pcm16 = proc.stdout[: len(proc.stdout) // 2 * 2]
    return AudioSegment(data=pcm16, sample_width=2, frame_rate=SAMPLE_RATE, channels=1)


def trim_silence(audio: AudioSegment) -> AudioSegment:
    """Cut leading and trailing silence; empty when it is all silence.

    10 ms windows from the start; a window is speech when its RMS is within TRIM_RANGE_DB of the loudest
    window and above TRIM_FLOOR_DBFS; KEEP_BEFORE_MS is kept before the first speech window and
    KEEP_AFTER_MS after the last. Silence between words stays (pydub's `strip_silence` would cut it out).
    pydub's silence functions take an absolute threshold, so the loudest window is found first.

    pydub's RMS is a whole number (audioop): a window within one step of the threshold can fall the other
    side of it than with an exact RMS; over the project's prompts that moved the end of 10 files in 1268
    by one or more windows, always cutting a little more."""
    loudest = max((window.rms for window in make_chunks(audio, WINDOW_MS)), default=0)
    loudest_dbfs = ratio_to_db(loudest, audio.max_possible_amplitude)
    if loudest_dbfs < TRIM_FLOOR_DBFS:  # -inf for digital silence and for an empty clip
        return audio[:0]
    threshold = max(loudest_dbfs - TRIM_RANGE_DB, TRIM_FLOOR_DBFS)
    # min_silence_len = seek_step = one window: every 10 ms window from the start is judged on its own.
    speech = detect_nonsilent(audio, min_silence_len=WINDOW_MS, silence_thresh=threshold, seek_step=WINDOW_MS)
    if not speech:
        return audio[:0]
    first_ms, last_ms = speech[0][0], speech[-1][1]
    # Cut by sample, not by millisecond: pydub's `audio[a:b]` rounds the clip's length to whole ms.
    return audio.get_sample_slice(
        int(audio.frame_count(ms=first_ms - KEEP_BEFORE_MS)),
        int(audio.frame_count(ms=last_ms + KEEP_AFTER_MS)),
    )


def normalise_loudness(audio: AudioSegment) -> AudioSegment:
    """Gain that brings the RMS to TARGET_RMS_DBFS, lowered so no peak passes PEAK_LIMIT_DBFS.

    pydub's `normalize` only targets the peak; the RMS target with a peak limit is this one line."""
    if not audio.rms:
        return audio
    return audio.apply_gain(min(TARGET_RMS_DBFS - audio.dBFS, PEAK_LIMIT_DBFS - audio.max_dBFS))


def trim_and_normalise(audio: AudioSegment) -> AudioSegment:
    """Trim leading/trailing silence and scale to the target RMS (peak-limited). Empty when silent."""
    return normalise_loudness(trim_silence(audio))


def write_wav(path: Path, audio: AudioSegment) -> None:
    """Write atomically (temporary file + rename) so a running call never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    # An open file, not a path: export(path) returns the file it opened and leaves it open.
    with tmp.open("wb") as out:
        audio.export(out, format="wav")  # plain PCM WAV: written by the wave module, no ffmpeg
    os.replace(tmp, path)


def link_file(src: Path, dst: Path) -> None:
    """Make `dst` the same file as `src`: a hard link, or a copy where the file system cannot link; put in
    place by a rename, so a reader of `dst` sees the old file or the new one, never half of one."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def copy_recording(src: Path, dst: Path, digest: str) -> float:
    """A person's recording as a prompt's audio; returns its duration in seconds.

    The file must still be the one the set of texts names (`digest`: the sha1 of its bytes). 8 kHz mono
    16-bit PCM (what the staff console stores, already trimmed and normalised) is copied sample for
    sample; anything else (a file put there by hand) goes through `telephone_audio`. Silence is refused."""
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise RenderError(f"cannot read the recording {src}: {exc.strerror or exc}") from exc
    if hashlib.sha1(data).hexdigest() != digest:
        raise RenderError(f"the recording {src} changed since its texts were read; render again")
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            telephone = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2)
            frames = wav.readframes(wav.getnframes()) if telephone else b""
    except (wave.Error, EOFError):
        telephone = False  # not plain PCM WAV (float, an MP3 renamed): sox or ffmpeg decode it
    if not telephone:
        return telephone_audio(src, dst)
    audio = AudioSegment(data=frames, sample_width=2, frame_rate=SAMPLE_RATE, channels=1)
    if not frames or ratio_to_db(max(1, audio.max), audio.max_possible_amplitude) < TRIM_FLOOR_DBFS:
        raise RenderError(f"the recording {src} is silent")
    if abs(audio.dBFS - TARGET_RMS_DBFS) > 6.0:
        log.warning(
            "recording %s plays at %.1f dBFS RMS, the prompts at %.1f (upload it through the console to"
            " level it)",
            src,
            audio.dBFS,
            TARGET_RMS_DBFS,
        )
    write_wav(dst, audio)
    return float(audio.duration_seconds)


def telephone_audio(src: Path, dst: Path) -> float:
    """The whole post-processing chain for one file; returns the result's duration in seconds."""
    audio = trim_and_normalise(resample_to_telephone(src))
    if not audio.frame_count():
        raise RenderError(f"the engine produced silence for {dst.name}")
    write_wav(dst, audio)
    return float(audio.duration_seconds)


# ----- manifest ---------------------------------------------------------------------------------------


def job_hash(engine: str, voice: str, lang: str, text: str) -> str:
    raw = "\x1f".join((PIPELINE_VERSION, engine, voice, lang, text))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._dropped: set[str] = set()
        self.files: dict[str, dict[str, Any]] = self._read_files()

    def _read_files(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return dict(data.get("files", {}))
        except (ValueError, OSError) as exc:
            log.warning("manifest %s unreadable (%s); everything will re-render", self.path, exc)
            return {}

    def get(self, rel: str) -> dict[str, Any] | None:
        return self.files.get(rel)

    def put(self, rel: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self.files[rel] = entry
            self._changed.add(rel)
            self._dropped.discard(rel)

    def drop(self, rel: str) -> None:
        with self._lock:
            self.files.pop(rel, None)
            self._dropped.add(rel)
            self._changed.discard(rel)

    @property
    def dirty(self) -> bool:
        return bool(self._changed or self._dropped)

    def save(self) -> None:
        """Write our changes over what is on disk now, so two renders (e.g. `render_names` from the server
        while `ivr prompts render` runs) do not drop each other's entries."""
        with self._lock:
            merged = dict(self._read_files())
            merged.update({rel: self.files[rel] for rel in self._changed})
            for rel in self._dropped:
                merged.pop(rel, None)
            self.files = merged
            self._changed.clear()
            self._dropped.clear()
            data = {"version": 1, "pipeline": PIPELINE_VERSION, "files": dict(sorted(merged.items()))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


# ----- planning ---------------------------------------------------------------------------------------


def plan_prompts(
    voice: PromptVoice | VoiceView, lines: Iterable[str], langs: Iterable[str]
) -> list[RenderJob]:
    """A job per static piece of the texts: its hashed file, with its plain name as the alias. A text a
    person recorded is one job of kind "recording" (its file named by the text and the recording)."""
    jobs: list[RenderJob] = []
    seen: set[str] = set()
    for lang in langs:
        for source in [*lines, COMMON]:
            for key in voice.keys(source, lang):
                text = voice.raw_text(source, lang, key)
                if text is None:
                    continue

                template = parse_template(key, text, lang, source, voice.recording(source, lang, key))
                for stem, piece in template.static_pieces():
                    rel = f"{lang}/{source}/{piece_file(stem, piece, template.recording)}"
                    if rel in seen:
                        continue
                    seen.add(rel)
                    alias = f"{lang}/{source}/{stem}.wav"
                    if template.recording:
                        recording = str(voice.recording_path(source, lang, key))
                        jobs.append(
                            RenderJob(
                                rel,
                                piece,
                                lang,
                                "recording",
                                alias=alias,
                                recording_file=recording,
                                digest=template.recording,
                            )
                        )
                    else:
                        jobs.append(RenderJob(rel, piece, lang, "prompt", alias=alias))
    return jobs


def plan_words(langs: Iterable[str]) -> list[RenderJob]:
    jobs: list[RenderJob] = []
    for lang in langs:
        if lang not in WORDING:
            continue
        for word in sorted(vocabulary(lang)):
            kind = "pause" if slug(word) == "pause" else "word"
            jobs.append(RenderJob(f"{lang}/{WORDS_DIR}/{slug(word)}.wav", word, lang, kind))
    return jobs


def plan_names(names: Iterable[str], langs: Iterable[str]) -> list[RenderJob]:
    jobs: list[RenderJob] = []
    clean = sorted({n.strip() for n in names if n and n.strip()})
    for lang in langs:
        for name in clean:
            jobs.append(RenderJob(f"{lang}/{WORDS_DIR}/{name_slug(name)}.wav", name, lang, "name"))
    return jobs


# ----- rendering --------------------------------------------------------------------------------------


class _Renderer:
    """Runs jobs with one engine, falling back to the offline engine per language or for good (gTTS)."""

    def __init__(self, engine: TtsEngine, voices: dict[str, str] | None) -> None:
        self.engine = engine
        self.voices = voices
        self._fallback: TtsEngine | None = None
        self._primary_failed = False
        self._lock = threading.Lock()
        self.fallbacks = 0

    def fallback(self) -> TtsEngine:
        if self._fallback is None:
            auto = get_engine("auto", voices=self.voices)
            self._fallback = (
                auto if auto.name != self.engine.name else get_engine("espeak", voices=self.voices)
            )
        return self._fallback

    def engine_for(self, lang: str) -> TtsEngine:
        if self._primary_failed or self.engine.voice_for(lang) is None:
            return self.fallback()
        return self.engine

    @staticmethod
    def speech_lang(job: RenderJob) -> str:
        """The language whose voice says the job: a Cyrillic name ("Безлимит") in an English prompt is
        still said by the Russian voice, which can read it."""
        if job.kind == "name" and job.lang != "ru" and _CYRILLIC.search(job.text):
            return "ru"
        return job.lang

    def expected_hash(self, job: RenderJob) -> str:
        if job.kind == "pause":
            return job_hash("silence", "", job.lang, str(PAUSE_MS))
        if job.kind == "recording":
            return job_hash("recording", job.digest, job.lang, job.text)
        lang = self.speech_lang(job)
        engine = self.engine_for(lang)
        return job_hash(engine.name, engine.voice_for(lang) or "", lang, job.text)

    def run(self, job: RenderJob, sounds: Path, tmpdir: Path) -> dict[str, Any]:
        dst = sounds / job.rel
        if job.kind == "pause":
            write_wav(dst, AudioSegment.silent(duration=PAUSE_MS, frame_rate=SAMPLE_RATE))
            return {"text": job.text, "engine": "silence", "voice": "", "hash": self.expected_hash(job)}
        if job.kind == "recording":
            seconds = copy_recording(Path(job.recording_file), dst, job.digest)
            return {
                "text": job.text,
                "lang": job.lang,
                "engine": "recording",
                "voice": "",
                "recording": job.digest,
                "hash": self.expected_hash(job),
                "seconds": round(seconds, 3),
            }
        lang = self.speech_lang(job)
        engine = self.engine_for(lang)
        raw = tmpdir / f"{hashlib.sha1(job.rel.encode()).hexdigest()}.wav"
        try:
            produced = engine.synthesize(job.text, lang, raw)
        except SynthesisError as exc:
            fallback = self.fallback()
            if engine is fallback:
                raise
            with self._lock:
                if engine.name == "gtts" and not self._primary_failed:
                    self._primary_failed = True
                    log.warning("%s; rendering with %s instead", exc, fallback.name)
            engine = fallback
            produced = engine.synthesize(job.text, lang, raw)
        if engine is not self.engine:
            with self._lock:
                self.fallbacks += 1
        try:
            seconds = telephone_audio(produced, dst)
        finally:
            produced.unlink(missing_ok=True)
        voice = engine.voice_for(lang) or ""
        return {
            "text": job.text,
            "lang": job.lang,
            "engine": engine.name,
            "voice": voice,
            "hash": job_hash(engine.name, voice, lang, job.text),
            "seconds": round(seconds, 3),
        }


def render_jobs(
    settings: Settings,
    jobs: list[RenderJob],
    *,
    engine: str = "auto",
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
    voices: dict[str, str] | None = None,
) -> RenderReport:
    started = time.perf_counter()
    sounds = settings.sounds
    manifest = Manifest(sounds / MANIFEST)
    tts = get_engine(engine, voices=voices)
    if not tts.available():
        log.warning("TTS engine %s is not available; using the offline fallback", tts.name)
        tts = get_engine("espeak", voices=voices)
    renderer = _Renderer(tts, voices)
    report = RenderReport(planned=len(jobs), engine=tts.name)
    todo: list[RenderJob] = []
    for job in jobs:
        entry = manifest.get(job.rel)
        expected = renderer.expected_hash(job)
        current = entry is not None and entry.get("hash") == expected and (sounds / job.rel).is_file()
        if not force and (current or _adopt_plain(sounds, manifest, job, expected)):
            report.skipped += 1
        else:
            todo.append(job)
    if todo:
        from tqdm import tqdm

        workers = workers or os.cpu_count() or 2
        bar = tqdm(total=len(todo), unit="file", desc="prompts", disable=not progress or len(todo) < 20)
        with tempfile.TemporaryDirectory(prefix="ivr-render-") as tmp, ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(renderer.run, job, sounds, Path(tmp)): job for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    entry = future.result()
                except (SynthesisError, RenderError, OSError, subprocess.SubprocessError) as exc:
                    log.error("cannot render %s: %s", job.rel, exc)
                    report.failed.append((job.rel, str(exc)))
                else:
                    entry["kind"] = job.kind
                    manifest.put(job.rel, entry)
                    report.rendered += 1
                    report.by_engine[entry["engine"]] = report.by_engine.get(entry["engine"], 0) + 1
                bar.update(1)
        bar.close()
    failed = {rel for rel, _error in report.failed}
    for job in jobs:
        if job.alias and job.rel not in failed:
            try:
                _point_alias(sounds, job)
            except OSError as exc:
                log.error("cannot link %s to %s: %s", job.alias, job.rel, exc)
                report.failed.append((job.alias, str(exc)))
    if manifest.dirty:
        manifest.save()
    report.fallbacks = renderer.fallbacks
    report.seconds = time.perf_counter() - started
    log.info("render: %s", report.summary())
    return report


def _adopt_plain(sounds: Path, manifest: Manifest, job: RenderJob, expected: str) -> bool:
    """A piece rendered before the hashed names, under its plain name from this very text with this
    engine and voice: link it to the hashed name instead of rendering it again (the first render after
    the upgrade costs no TTS). Its manifest entry moves to the hashed name."""
    if not job.alias:
        return False
    entry = manifest.get(job.alias)
    plain = sounds / job.alias
    if entry is None or entry.get("hash") != expected or entry.get("text") != job.text or not plain.is_file():
        return False
    try:
        link_file(plain, sounds / job.rel)
    except OSError as exc:
        log.warning("cannot link %s to %s (%s); rendering it", job.alias, job.rel, exc)
        return False
    manifest.put(job.rel, dict(entry))
    manifest.drop(job.alias)
    return True


def _point_alias(sounds: Path, job: RenderJob) -> None:
    """The plain name of a piece is the newest render of it (what the dialplan plays by name)."""
    target, alias = sounds / job.rel, sounds / job.alias
    if target.is_file() and not _same_file(target, alias):
        link_file(target, alias)


def render(
    settings: Settings,
    line: str | None = None,
    *,
    langs: Iterable[str] | None = None,
    engine: str | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
    voices: dict[str, str] | None = None,
    names: Iterable[str] = (),
    prune: bool = True,
) -> RenderReport:
    """Render the texts of `line` (all lines when None) plus common texts, the words vocabulary and
    `names`, for `langs` (every language that has texts when None); then (prune) mark and, past their
    grace period, delete piece files no text uses any more (`prune_prompts`)."""
    voice = PromptVoice(settings)
    lines = [line] if line else voice.lines()
    if line and line not in voice.lines():
        raise RenderError(f"no texts for line {line!r} under {settings.prompts / 'texts'}")
    if langs:
        languages = sorted(set(langs))
    else:
        languages = sorted({lang for ln in lines for lang in voice.languages(ln)} or set(voice.languages()))
    jobs = plan_prompts(voice, lines, languages) + plan_words(languages) + plan_names(names, languages)
    report = render_jobs(
        settings,
        jobs,
        engine=engine or settings.tts_engine,
        force=force,
        workers=workers,
        progress=progress,
        voices=voices,
    )
    if prune:
        report.pruned = len(prune_prompts(settings).deleted)
    return report


def prune_prompts(
    settings: Settings,
    *,
    grace: float = PRUNE_GRACE_SECONDS,
    now: float | None = None,
    keep: Iterable[str] = (),
) -> PruneReport:
    """Delete the piece files (`<stem>.<h>.wav`) that no current text uses, once they have been unused for
    `grace` seconds.

    The first prune that finds a file unused marks it in the manifest (`unused_since`, seconds since the
    epoch); a prune at least `grace` later deletes it, and a file used again (a text changed back) loses
    its mark. So a call that started on the previous version, whose audio the current texts no longer
    use, still finds it for as long as any call lasts. Publishing (the staff console, `ivr prompts
    render`) runs it after rendering; `ivr prompts prune` runs it alone. `keep`: more paths under the
    sounds directory to keep (say, the pieces of a set still in service). Plain names (the newest render,
    hard links), words and names are never touched; deleting a hashed name leaves the plain link's audio.
    """
    report = PruneReport()
    sounds = settings.sounds
    if not sounds.is_dir():
        return report
    now = time.time() if now is None else now
    voice = PromptVoice(settings)
    used = {job.rel for job in plan_prompts(voice, voice.lines(), voice.languages())} | set(keep)
    manifest = Manifest(sounds / MANIFEST)
    found: set[str] = set()
    for lang_dir in sorted(p for p in sounds.iterdir() if p.is_dir()):
        for source_dir in sorted(p for p in lang_dir.iterdir() if p.is_dir() and p.name != WORDS_DIR):
            for path in sorted(source_dir.iterdir()):
                if not PIECE_FILE.match(path.name):
                    continue
                rel = f"{lang_dir.name}/{source_dir.name}/{path.name}"
                found.add(rel)
                entry = manifest.get(rel)
                if rel in used:
                    if entry is not None and "unused_since" in entry:
                        manifest.put(rel, {k: v for k, v in entry.items() if k != "unused_since"})
                    continue
                since = entry.get("unused_since") if entry is not None else None
                if not isinstance(since, int | float):
                    manifest.put(rel, {**(entry or {}), "unused_since": round(now, 3)})
                    report.waiting.append(rel)
                elif now - since >= grace:
                    path.unlink(missing_ok=True)
                    manifest.drop(rel)
                    report.deleted.append(rel)
                else:
                    report.waiting.append(rel)
    for rel in list(manifest.files):
        # The entry of a piece file someone deleted: nothing to play, nothing to keep.
        if rel not in found and "/" + WORDS_DIR + "/" not in rel and PIECE_FILE.match(rel.rsplit("/", 1)[-1]):
            manifest.drop(rel)
    if manifest.dirty:
        manifest.save()
    if report.deleted:
        log.info("prune: %d unused prompt files deleted", len(report.deleted))
    return report


def render_names(
    names: Iterable[str],
    settings: Settings | None = None,
    *,
    langs: Iterable[str] | None = None,
    engine: str | None = None,
    progress: bool = False,
) -> RenderReport:
    """Hook for plan/reward names from the database: render each name once per language so that
    `{x:name}` placeholders have audio. Unchanged names are skipped (manifest). A name missing at call
    time is skipped with a warning, never an error."""
    if settings is None:
        settings = load_settings()
    languages = list(langs) if langs else sorted(WORDING)
    return render_jobs(
        settings,
        plan_names(names, languages),
        engine=engine or settings.tts_engine,
        progress=progress,
    )


# ----- validation -------------------------------------------------------------------------------------


def check_prompts(
    settings: Settings,
    line: str,
    keys_by_lang: Mapping[str, Iterable[str]],
    *,
    check_audio: bool = True,
    voice: PromptVoice | VoiceView | None = None,
) -> list[str]:
    """Problems with the prompts a tree uses, for `ivr validate` and the server's acceptance of a new
    set: a key without text in a language (in the line's or the common texts), an unknown placeholder
    kind, and (check_audio) a static piece without its rendered audio (`<stem>.<h>.wav` of that very
    text) or a vocabulary word without audio. `voice`: the texts to check (a `VoiceView` of a candidate
    set); by default the text files."""
    voice = voice or PromptVoice(settings)
    manifest = Manifest(settings.sounds / MANIFEST) if check_audio else None
    problems: list[str] = []
    words_checked: set[str] = set()
    for lang, keys in keys_by_lang.items():
        for key in sorted(set(keys)):
            source = line if voice.raw_text(line, lang, key) is not None else COMMON
            text = voice.raw_text(source, lang, key)
            if text is None:
                problems.append(
                    f"{line}/{lang}: prompt {key!r} has no text (prompts/texts/{line}.{lang}.yaml)"
                )
                continue

            template = parse_template(key, text, lang, source, voice.recording(source, lang, key))
            for seg in template.segments:
                if seg.static is None and seg.kind not in KINDS:
                    problems.append(
                        f"{line}/{lang}: prompt {key!r}: unknown placeholder kind {{{seg.name}:{seg.kind}}}"
                    )
            if manifest is None:
                continue
            for stem, piece in template.static_pieces():
                rel = f"{lang}/{source}/{piece_file(stem, piece, template.recording)}"
                problem = _audio_problem(
                    settings.sounds,
                    manifest,
                    rel,
                    piece,
                    plain=f"{lang}/{source}/{stem}.wav",
                    recording=template.recording,
                )
                if problem:
                    problems.append(f"{line}/{lang}: prompt {key!r}: {problem}")
            if template.has_placeholders and lang not in words_checked and lang in WORDING:
                words_checked.add(lang)
                missing = [
                    w
                    for w in sorted(vocabulary(lang))
                    if not (settings.sounds / lang / WORDS_DIR / f"{slug(w)}.wav").is_file()
                ]
                if missing:
                    problems.append(
                        f"{lang}: {len(missing)} value words have no audio (e.g. {missing[0]!r}); "
                        "run `ivr prompts render`"
                    )
    return problems


def _audio_problem(
    sounds: Path, manifest: Manifest, rel: str, text: str, *, plain: str = "", recording: str = ""
) -> str | None:
    """Why the piece file `rel` (named by the hash of `text`, and of `recording` when a person recorded
    it) cannot be played for `text`, or None."""
    path = sounds / rel
    what = "its recording" if recording else "its text"
    if not path.is_file():
        if plain and (sounds / plain).is_file():
            return f"audio {plain} is older than {what} (run `ivr prompts render`)"
        return f"no audio {rel} (run `ivr prompts render`)"
    entry = manifest.get(rel)
    if entry is None or entry.get("text") != text or entry.get("recording", "") != recording:
        return f"audio {rel} is older than {what} (run `ivr prompts render`)"
    return None


def check_all(settings: Settings) -> list[str]:
    """Every text of every line and language: placeholder kinds valid, audio rendered and current; and
    every recording one of a text without placeholders."""
    voice = PromptVoice(settings)
    recordings = voice.recordings()
    texts = {
        (source, lang): {key: voice.raw_text(source, lang, key) or "" for key in voice.keys(source, lang)}
        for source, lang, _key in recordings
    }
    problems = [f"{path}: {why}" for path, why in recording_problems(texts, recordings, voice.recordings_dir)]
    for line in voice.lines():
        keys_by_lang = {
            lang: voice.keys(line, lang) + voice.keys(COMMON, lang) for lang in voice.languages(line)
        }
        problems += check_prompts(settings, line, keys_by_lang, voice=voice)
    return problems


def wav_info(path: Path) -> tuple[int, int, int, float]:
    """(rate, channels, sample width, seconds) of a WAV file."""
    # The wave module reads the header only; pydub would read and decode the whole file for the same four.
    with wave.open(str(path), "rb") as wav:
        return (
            wav.getframerate(),
            wav.getnchannels(),
            wav.getsampwidth(),
            wav.getnframes() / wav.getframerate(),
        )
