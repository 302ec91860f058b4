"""How fast the server answers a caller: from the key that completed an input to the next prompt command
sent to Asterisk. Two figures: `server` is the part our server owns (the engine's step, the action, the
event loop's queue), `whole` also counts the AGI round trips in between (SET VARIABLE answered by
Asterisk). Asterisk's own playback start is outside both."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class KeyLatency:
    """A bounded sample of key-to-prompt latencies (seconds): the first `keep` exactly, then a uniform
    reservoir sample, so a long-running server keeps constant memory and unbiased percentiles."""

    keep: int = 20000
    count: int = 0
    samples: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)  # the same inputs, Asterisk's round trips included
    _random: random.Random = field(default_factory=lambda: random.Random(7))

    def record(self, seconds: float, whole: float | None = None) -> None:
        self.count += 1
        if len(self.samples) < self.keep:
            self.samples.append(seconds)
            self.whole.append(seconds if whole is None else whole)
            return
        slot = self._random.randrange(self.count)
        if slot < self.keep:
            self.samples[slot] = seconds
            self.whole[slot] = seconds if whole is None else whole

    def percentile(self, fraction: float, *, whole: bool = False) -> float:
        """The nearest-rank percentile (0 < fraction <= 1) of the sample; 0.0 when there is none."""
        values = self.whole if whole else self.samples
        if not values:
            return 0.0
        ordered = sorted(values)
        rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5 - 1e-9)))
        return ordered[rank - 1]

    def summary(self) -> dict[str, float]:
        """Milliseconds: p50, p95, p99 and max of the server's part, then p50/p95/p99 of the whole wait,
        with the number of inputs measured."""
        return {
            "inputs": float(self.count),
            "p50_ms": round(1000 * self.percentile(0.50), 3),
            "p95_ms": round(1000 * self.percentile(0.95), 3),
            "p99_ms": round(1000 * self.percentile(0.99), 3),
            "max_ms": round(1000 * max(self.samples, default=0.0), 3),
            "whole_p50_ms": round(1000 * self.percentile(0.50, whole=True), 3),
            "whole_p95_ms": round(1000 * self.percentile(0.95, whole=True), 3),
            "whole_p99_ms": round(1000 * self.percentile(0.99, whole=True), 3),
        }
