"""Trim and loudness normalisation on synthetic signals (pure functions, no subprocess)."""

from __future__ import annotations

import math
from array import array

import pytest

from ivr.prompts.render import (
    KEEP_AFTER_MS,
    KEEP_BEFORE_MS,
    PEAK_LIMIT_DBFS,
    TARGET_RMS_DBFS,
    job_hash,
    trim_and_normalise,
)

RATE = 8000


def tone(seconds: float, amplitude: float, freq: float = 440.0) -> list[int]:
    return [int(amplitude * math.sin(2 * math.pi * freq * i / RATE)) for i in range(int(RATE * seconds))]


def silence(seconds: float, noise: int = 0) -> list[int]:
    return [(noise if i % 2 else -noise) for i in range(int(RATE * seconds))]


def dbfs_rms(samples: array[int]) -> float:
    return 20 * math.log10(math.sqrt(sum(s * s for s in samples) / len(samples)) / 32767)


@pytest.mark.parametrize("amplitude", [300.0, 3000.0, 30000.0])
def test_trims_silence_and_normalises_rms(amplitude: float) -> None:
    signal = array("h", silence(0.5, noise=3) + tone(1.0, amplitude) + silence(0.7, noise=3))
    out = trim_and_normalise(signal)
    expected = RATE * (1.0 + (KEEP_BEFORE_MS + KEEP_AFTER_MS) / 1000)
    assert abs(len(out) - expected) <= RATE * 0.02  # within one window either side
    assert dbfs_rms(out) == pytest.approx(TARGET_RMS_DBFS, abs=0.3)


def test_peaky_signal_is_peak_limited_not_clipped() -> None:
    # A click train: low RMS, high peak. Normalising RMS to -20 dBFS would clip; the peak limit wins.
    clicks = [30000 if i % 400 == 0 else 0 for i in range(RATE)]
    out = trim_and_normalise(array("h", clicks))
    peak = max(abs(s) for s in out)
    assert peak == pytest.approx(32767 * 10 ** (PEAK_LIMIT_DBFS / 20), abs=2)
    assert dbfs_rms(out) < TARGET_RMS_DBFS


def test_silence_gives_empty() -> None:
    assert len(trim_and_normalise(array("h", silence(1.0)))) == 0
    assert len(trim_and_normalise(array("h"))) == 0


def test_quiet_word_between_louder_ones_is_kept() -> None:
    # Trimming only cuts the ends: a soft syllable in the middle stays.
    signal = tone(0.3, 20000) + tone(0.2, 400) + tone(0.3, 20000)
    out = trim_and_normalise(array("h", silence(0.2) + signal + silence(0.2)))
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
