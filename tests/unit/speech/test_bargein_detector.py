"""Barge-in by voice (ivr/speech/bargein.py): frame levels, the echo reference of a prompt, and the detector
that tells the caller's voice from the prompt's echo.

Frames here are 20 ms square waves (+v, -v, ...): their RMS is exactly v, so a frame's level in dBFS is
chosen exactly; each frame of a test differs from the others by a sample, so the preroll's audio can be
checked frame by frame.
"""

from __future__ import annotations

import math
from array import array

import pytest

from ivr.speech.bargein import (
    SILENCE_DB,
    BargeInConfig,
    BargeInDetector,
    echo_reference,
    frame_levels,
    level_db,
    reference_at,
)

SAMPLES = 160  # 20 ms at 8 kHz


def square(amplitude: int, samples: int = SAMPLES) -> bytes:
    return array("h", [amplitude if i % 2 == 0 else -amplitude for i in range(samples)]).tobytes()


def frame_at(dbfs: float, tag: int = 0) -> bytes:
    """A 20 ms frame at `dbfs` (RMS); `tag` changes its first sample a little so frames differ."""
    amplitude = round(32768 * 10 ** (dbfs / 20))
    samples = array("h", square(amplitude))
    samples[0] -= tag % 40
    samples[2] -= tag // 40 % 40
    return samples.tobytes()


def distinct(dbfs: float, count: int, first_tag: int = 0) -> list[bytes]:
    frames = [frame_at(dbfs, first_tag + i) for i in range(count)]
    assert len(set(frames)) == count
    return frames


# ---- levels ----------------------------------------------------------------------------------------------


def test_level_of_silence_and_of_nothing_is_the_floor() -> None:
    assert level_db(b"") == SILENCE_DB
    assert level_db(b"\x01") == SILENCE_DB  # not even one sample
    assert level_db(b"\0" * 320) == SILENCE_DB


@pytest.mark.parametrize("dbfs", [-6.0, -20.0, -32.0, -45.0])
def test_level_is_the_rms_in_dbfs(dbfs: float) -> None:
    assert level_db(frame_at(dbfs)) == pytest.approx(dbfs, abs=0.05)


def test_level_of_full_scale_and_of_a_sine() -> None:
    assert level_db(square(32767)) == pytest.approx(0.0, abs=0.001)
    amplitude = 10000
    sine = array("h", [round(amplitude * math.sin(2 * math.pi * 400 * i / 8000)) for i in range(800)])
    assert level_db(sine.tobytes()) == pytest.approx(
        20 * math.log10(amplitude / math.sqrt(2) / 32768), abs=0.05
    )


def test_half_the_amplitude_is_six_db_less() -> None:
    assert level_db(square(8000)) - level_db(square(4000)) == pytest.approx(20 * math.log10(2), abs=0.01)


def test_an_odd_trailing_byte_is_ignored() -> None:
    assert level_db(square(4000) + b"\x7f") == level_db(square(4000))


def test_frame_levels_are_one_per_20_ms_frame() -> None:
    pcm = frame_at(-10) + frame_at(-30) + b"\0" * 320 + frame_at(-20)[:160]  # the last one half a frame
    levels = frame_levels(pcm, 320)
    assert len(levels) == 4
    assert levels[:3] == [pytest.approx(-10, abs=0.05), pytest.approx(-30, abs=0.05), SILENCE_DB]
    assert levels[3] == pytest.approx(-20, abs=0.05)


# ---- the echo reference ----------------------------------------------------------------------------------


def test_echo_reference_is_the_loudest_of_each_frame_and_the_ones_before_it() -> None:
    levels = [-30.0, -10.0, -40.0, -50.0, -50.0, -20.0]
    assert echo_reference(levels, 1) == levels
    assert echo_reference(levels, 2) == [-30.0, -10.0, -10.0, -40.0, -50.0, -20.0]
    assert echo_reference(levels, 3) == [-30.0, -10.0, -10.0, -10.0, -40.0, -20.0]
    assert echo_reference(levels, 0) == levels  # a window is at least the frame itself
    assert echo_reference([], 25) == []


def test_reference_at_a_moment_of_the_prompt() -> None:
    reference = echo_reference([-30.0, -10.0, -40.0, -50.0, -50.0], 3)  # [-30, -10, -10, -10, -40]
    assert reference_at(reference, -1, 3) == SILENCE_DB  # before the prompt began
    assert reference_at(reference, 0, 3) == -30.0
    assert reference_at(reference, 3, 3) == -10.0
    assert reference_at(reference, 4, 3) == -40.0
    assert reference_at([], 0, 3) == SILENCE_DB


def test_reference_after_the_prompt_lasts_while_its_echo_may_still_come() -> None:
    reference = echo_reference([-50.0, -50.0, -50.0, -12.0, -50.0], 3)  # [-50, -50, -50, -12, -12]
    end = len(reference)
    assert reference_at(reference, end, 3) == -12.0  # the loud frame may still echo
    assert reference_at(reference, end + 3, 3) == SILENCE_DB  # the window has passed: nothing can echo
    assert reference_at(reference, end + 100, 3) == SILENCE_DB


# ---- the detector ----------------------------------------------------------------------------------------


def test_the_threshold_is_the_reference_less_the_echo_loss_but_never_below_the_floor() -> None:
    detector = BargeInDetector(BargeInConfig(floor_db=-45.0, echo_loss_db=10.0))
    assert detector.threshold_db(-20.0) == -30.0
    assert detector.threshold_db(-40.0) == -45.0
    assert detector.threshold_db(SILENCE_DB) == -45.0
    assert detector.echo_frames_window == 25  # 0.5 s of 20 ms frames


def test_an_echo_12_db_below_the_prompt_never_starts_the_callers_turn() -> None:
    detector = BargeInDetector()
    for frame in distinct(-32.0, 200):  # the prompt's frames at -20 dBFS come back at -32
        assert not detector.heard(frame, -20.0)
    assert not detector.started
    assert detector.echo_frames == 200  # above the floor: each was taken for echo


def test_an_echo_with_no_reference_would_be_taken_for_the_caller() -> None:
    # The same frames without the reference of what was sent: the reference is what tells them apart.
    detector = BargeInDetector()
    assert any(detector.heard(frame, SILENCE_DB) for frame in distinct(-32.0, 10))


def test_louder_speech_starts_the_turn_at_the_voiced_frames_th_voiced_frame() -> None:
    detector = BargeInDetector(BargeInConfig(voiced_frames=4, window=6))
    echo = distinct(-32.0, 20)
    for frame in echo:
        assert not detector.heard(frame, -20.0)
    speech = distinct(-18.0, 6, first_tag=20)  # louder than the prompt less 10 dB
    heard = [detector.heard(frame, -20.0) for frame in speech]
    assert heard == [False, False, False, True, False, False]  # True once, at the 4th voiced frame
    assert detector.started


def test_voiced_frames_count_within_the_window_only() -> None:
    config = BargeInConfig(voiced_frames=4, window=6)
    loud, quiet = frame_at(-18.0), frame_at(-32.0)
    # 3 voiced frames, then quiet ones: never 4 among the last 6
    scattered = BargeInDetector(config)
    pattern = [loud, loud, loud, quiet, quiet, quiet, loud, quiet, quiet, quiet, loud, loud, quiet, quiet]
    assert not any(scattered.heard(frame, -20.0) for frame in pattern)
    # 4 voiced among the last 6, not in a row: the turn starts at the 4th
    gaps = BargeInDetector(config)
    heard = [gaps.heard(frame, -20.0) for frame in [loud, quiet, loud, quiet, loud, loud]]
    assert heard == [False, False, False, False, False, True]


def test_speech_below_the_floor_is_never_the_caller_even_in_silence() -> None:
    detector = BargeInDetector(BargeInConfig(floor_db=-45.0))
    assert not any(detector.heard(frame, SILENCE_DB) for frame in distinct(-50.0, 50))
    assert detector.echo_frames == 0  # below the floor: not echo either, just a quiet line
    assert any(detector.heard(frame, SILENCE_DB) for frame in distinct(-40.0, 6))


def test_preroll_is_the_audio_from_before_the_start_and_all_that_came_after() -> None:
    config = BargeInConfig(voiced_frames=4, window=6, preroll=0.1)  # 5 frames
    detector = BargeInDetector(config)
    before = distinct(-32.0, 20)
    speech = distinct(-18.0, 4, first_tag=20)
    after = distinct(-18.0, 7, first_tag=24)
    for frame in before:
        detector.heard(frame, -20.0)
    assert [detector.heard(frame, -20.0) for frame in speech][-1]
    for frame in after:  # until the recogniser takes over
        assert not detector.heard(frame, -20.0)
    kept = detector.preroll()
    assert kept == b"".join(before[-1:] + speech + after)  # the 5 frames up to the start, then the rest
    assert detector.preroll() == b""  # taken once


def test_default_preroll_is_three_tenths_of_a_second() -> None:
    detector = BargeInDetector()
    frames = distinct(-32.0, 30) + distinct(-18.0, 4, first_tag=30)
    for frame in frames:
        detector.heard(frame, -20.0)
    assert detector.started
    assert detector.preroll() == b"".join(frames[-15:])  # 15 frames of 20 ms
