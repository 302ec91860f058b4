"""Barge-in by voice: when does the caller start speaking over a prompt, and not its echo?

A phone sends back some of what it plays: the line's echo (a hybrid on a landline, the loudspeaker on a
mobile) reaches us delayed by the network and weaker by the echo return loss (ERL): at least 6 dB for a
hybrid by G.168, 20-40 dB after a phone's own echo canceller. The detector compares each 20 ms frame of
the caller with what we sent over the last `echo_window` seconds (the loudest frame of it, which covers any
delay up to the window): a frame is the caller's voice only if it is above an absolute floor AND louder
than the loudest sent frame less `echo_loss_db`. `voiced_frames` such frames among the last `window`
frames start the caller's turn: the prompt stops.

Nothing before that point goes to the recogniser except the last `preroll` seconds (the beginning of the
caller's first word, which the detector needed to hear to decide): the prompt's echo never reaches the
grammar, so it can neither stop a prompt nor answer a menu.

Levels in dBFS of 16-bit signed linear. Pure computation (audioop is gone from Python 3.13, so the RMS is
done with `array`, which keeps this module free of numpy for a 320-byte frame).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass

FULL_SCALE = 32768.0
SILENCE_DB = -96.0


def level_db(pcm: bytes) -> float:
    """RMS level of 16-bit little-endian mono PCM in dBFS (-96 for silence or nothing)."""
    if len(pcm) < 2:
        return SILENCE_DB
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    total = sum(s * s for s in samples)
    if total == 0:
        return SILENCE_DB
    rms = math.sqrt(total / len(samples))
    return max(SILENCE_DB, 20.0 * math.log10(rms / FULL_SCALE))


@dataclass(frozen=True)
class BargeInConfig:
    floor_db: float = -45.0  # quieter than this is never speech (line noise, a quiet room)
    echo_loss_db: float = 10.0  # the caller must be louder than our loudest recent frame less this
    echo_window: float = 0.5  # seconds of what we sent that an echo may still come from
    voiced_frames: int = 4  # voiced frames among the last `window` that start the caller's turn
    window: int = 6  # frames (20 ms each)
    preroll: float = 0.3  # seconds of audio before the start that go to the recogniser


def frame_levels(pcm: bytes, frame_bytes: int = 320) -> list[float]:
    """The level of each 20 ms frame of a prompt (computed once per prompt, kept with its audio)."""
    return [level_db(pcm[i : i + frame_bytes]) for i in range(0, len(pcm), frame_bytes)]


def echo_reference(levels: list[float], window: int) -> list[float]:
    """For each frame index, the loudest of that frame and the `window - 1` before it: the loudest echo
    that may arrive with it (and after the prompt's end, for `window` frames more: `reference_at`)."""
    out: list[float] = []
    recent: deque[float] = deque(maxlen=max(1, window))
    for level in levels:
        recent.append(level)
        out.append(max(recent))
    return out


def reference_at(reference: list[float], index: int, window: int) -> float:
    """The echo reference `index` frames after a prompt began (silence once its echo has faded)."""
    if index < 0 or not reference:
        return SILENCE_DB
    if index < len(reference):
        return reference[index]
    if index < len(reference) + window:
        return max(reference[max(0, index - window + 1) :], default=SILENCE_DB)
    return SILENCE_DB


class BargeInDetector:
    """Fed the caller's frames in time order, each with the echo reference of that moment (the loudest
    frame we sent within `echo_window`: `reference_at`). `heard` returns True once, at the frame where the
    caller's speech starts."""

    def __init__(self, config: BargeInConfig | None = None, *, frame_seconds: float = 0.02) -> None:
        self.config = config or BargeInConfig()
        self.echo_frames_window = max(1, round(self.config.echo_window / frame_seconds))
        self._recent: deque[bool] = deque(maxlen=self.config.window)
        self._preroll: deque[bytes] = deque(maxlen=max(1, round(self.config.preroll / frame_seconds)))
        self._after: list[bytes] = []
        self.started = False
        self.echo_frames = 0  # frames above the floor that were taken for echo
        self.frame_ms = frame_seconds * 1000
        self.decision_ms = 0.0  # at the start: milliseconds of voice it took to decide

    def threshold_db(self, reference_db: float) -> float:
        return max(self.config.floor_db, reference_db - self.config.echo_loss_db)

    def heard(self, pcm: bytes, reference_db: float = SILENCE_DB) -> bool:
        """One frame of the caller; True when it starts the caller's turn (then never again)."""
        if self.started:
            self._after.append(pcm)  # until the recogniser takes over: nothing is lost in between
            return False
        self._preroll.append(pcm)
        level = level_db(pcm)
        voiced = level > self.threshold_db(reference_db)
        if not voiced and level > self.config.floor_db:
            self.echo_frames += 1
        self._recent.append(voiced)
        if sum(self._recent) >= self.config.voiced_frames:
            self.started = True
            # From the first voiced frame of the window to this one: how long the decision took.
            first = next(i for i, v in enumerate(self._recent) if v)
            self.decision_ms = (len(self._recent) - first) * self.frame_ms
        return self.started

    def preroll(self) -> bytes:
        """The audio from `preroll` seconds before the start on, for the recogniser (taken once)."""
        audio = b"".join(self._preroll) + b"".join(self._after)
        self._preroll.clear()
        self._after.clear()
        return audio
