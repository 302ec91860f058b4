"""Trim and loudness normalisation on synthetic signals (pure functions on pydub AudioSegments, no
subprocess)."""

from __future__ import annotations

import math
from array import array

import pytest
from pydub import AudioSegment

from ivr.prompts.render import (
    KEEP_AFTER_MS,
    KEEP_BEFORE_MS,
    PEAK_LIMIT_DBFS,
    TARGET_RMS_DBFS,
    TRIM_FLOOR_DBFS,
    job_hash,
    normalise_loudness,
    trim_and_normalise,
    trim_silence,
)

RATE = 8000


def tone(seconds: float, amplitude: float, freq: float = 440.0) -> list[int]:
    return [int(amplitude * math.sin(2 * math.pi * freq * i / RATE)) for i in range(int(RATE * seconds))]


def silence(seconds: float, noise: int = 0) -> list[int]:
    return [(noise if i % 2 else -noise) for i in range(int(RATE * seconds))]


def dbfs_rms(samples: array[int]) -> float:
    return 20 * math.log10(math.sqrt(sum(s * s for s in samples) / len(samples)) / 32767)


def segment(samples: list[int]) -> AudioSegment:
    return AudioSegment(data=array("h", samples).tobytes(), sample_width=2, frame_rate=RATE, channels=1)


@pytest.mark.parametrize("amplitude", [300.0, 3000.0, 30000.0])
def test_trims_silence_and_normalises_rms(amplitude: float) -> None:
    signal = silence(0.5, noise=3) + tone(1.0, amplitude) + silence(0.7, noise=3)
    out = trim_and_normalise(segment(signal)).get_array_of_samples()
    expected = RATE * (1.0 + (KEEP_BEFORE_MS + KEEP_AFTER_MS) / 1000)
    assert abs(len(out) - expected) <= RATE * 0.02  # within one window either side
    assert dbfs_rms(out) == pytest.approx(TARGET_RMS_DBFS, abs=0.3)


def test_peaky_signal_is_peak_limited_not_clipped() -> None:
    # A click train: low RMS, high peak. Normalising RMS to -20 dBFS would clip; the peak limit wins.
    clicks = [30000 if i % 400 == 0 else 0 for i in range(RATE)]
    out = trim_and_normalise(segment(clicks)).get_array_of_samples()
    peak = max(abs(s) for s in out)
    assert peak == pytest.approx(32767 * 10 ** (PEAK_LIMIT_DBFS / 20), abs=2)
    assert dbfs_rms(out) < TARGET_RMS_DBFS


def test_silence_gives_empty() -> None:
    assert len(trim_and_normalise(segment(silence(1.0))).get_array_of_samples()) == 0
    assert len(trim_and_normalise(segment([])).get_array_of_samples()) == 0


def test_quiet_word_between_louder_ones_is_kept() -> None:
    # Trimming only cuts the ends: a soft syllable in the middle stays.
    signal = tone(0.3, 20000) + tone(0.2, 400) + tone(0.3, 20000)
    out = trim_and_normalise(segment(silence(0.2) + signal + silence(0.2))).get_array_of_samples()
    assert len(out) >= len(signal)


def test_hash_changes_with_every_input() -> None:
    base = job_hash("espeak", "ru", "ru", "текст")
    assert base == job_hash("espeak", "ru", "ru", "текст")
    assert (
        len(
            {
                base,
                job_hash("rhvoice", "ru", "ru", "текст"),
                job_hash("espeak", "ru+f2", "ru", "текст"),
                job_hash("espeak", "ru", "en", "текст"),
                job_hash("espeak", "ru", "ru", "текст."),
            }
        )
        == 5
    )


def test_trim_keeps_exactly_the_padding_and_the_speech_untouched() -> None:
    # 1 kHz: ten whole periods per 10 ms window. Speech from 0.5 s to 1.5 s, on window boundaries.
    signal = silence(0.5) + tone(1.0, 8000, freq=1000) + silence(0.7)
    out = trim_silence(segment(signal))
    first, last = int(0.5 * RATE), int(1.5 * RATE)
    before, after = RATE * KEEP_BEFORE_MS // 1000, RATE * KEEP_AFTER_MS // 1000
    assert out.get_array_of_samples() == array("h", signal[first - before : last + after])
    assert (out.frame_rate, out.sample_width, out.channels) == (RATE, 2, 1)


@pytest.mark.parametrize(("below_db", "trimmed"), [(37.0, True), (33.0, False)])
def test_trim_threshold_is_relative_to_the_loudest_window(below_db: float, trimmed: bool) -> None:
    # A lead-in more than TRIM_RANGE_DB (35 dB) under the loudest window is silence; less is speech.
    lead_in = tone(0.3, 16000 * 10 ** (-below_db / 20), freq=1000)
    out = trim_silence(segment(lead_in + tone(0.5, 16000, freq=1000) + silence(0.3)))
    kept_before = KEEP_BEFORE_MS / 1000 if trimmed else 0.3
    assert len(out.get_array_of_samples()) == round(RATE * (kept_before + 0.5 + KEEP_AFTER_MS / 1000))


@pytest.mark.parametrize(("rms_dbfs", "kept"), [(TRIM_FLOOR_DBFS - 2, False), (TRIM_FLOOR_DBFS + 2, True)])
def test_trim_floor_is_absolute(rms_dbfs: float, kept: bool) -> None:
    # A clip whose loudest window is under TRIM_FLOOR_DBFS is silence, however steady it is.
    amplitude = 32767 * 10 ** (rms_dbfs / 20) * math.sqrt(2)
    out = trim_and_normalise(segment(silence(0.2) + tone(0.5, amplitude, freq=1000) + silence(0.2)))
    assert (len(out.get_array_of_samples()) > 0) is kept
    if kept:
        # pydub's RMS is a whole number: at ~50 (this clip) that is 0.2 dB; at speech levels, < 0.01 dB.
        assert out.dBFS == pytest.approx(TARGET_RMS_DBFS, abs=0.2)


def test_gain_gives_the_measured_levels() -> None:
    # RMS to the target when the peak allows it...
    quiet = normalise_loudness(segment(tone(1.0, 300, freq=1000)))
    assert quiet.dBFS == pytest.approx(TARGET_RMS_DBFS, abs=0.05)
    assert quiet.max_dBFS < PEAK_LIMIT_DBFS
    # ...else the peak to its limit, and no sample clipped.
    clicks = normalise_loudness(segment([30000 if i % 400 == 0 else 0 for i in range(RATE)]))
    assert clicks.max_dBFS == pytest.approx(PEAK_LIMIT_DBFS, abs=0.01)
    assert clicks.dBFS < TARGET_RMS_DBFS
    # Digital silence is left alone (no gain to compute).
    assert normalise_loudness(segment(silence(0.1))).raw_data == bytes(2 * 800)
