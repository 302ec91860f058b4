"""The figures the server keeps about itself: key-to-prompt latency and event-loop lag."""

from __future__ import annotations

from ivr.telephony.fastagi import LoopLag
from ivr.telephony.latency import KeyLatency


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    latency = KeyLatency()
    for ms in range(1, 101):  # 1..100 ms of our own, plus 2 ms of Asterisk's round trips each
        latency.record(ms / 1000, ms / 1000 + 0.002)
    summary = latency.summary()
    assert summary == {
        "inputs": 100.0,
        "p50_ms": 50.0,
        "p95_ms": 95.0,
        "p99_ms": 99.0,
        "max_ms": 100.0,
        "whole_p50_ms": 52.0,
        "whole_p95_ms": 97.0,
        "whole_p99_ms": 101.0,
    }


def test_no_input_measured_is_all_zero_not_an_error() -> None:
    summary = KeyLatency().summary()
    assert len(summary) == 8 and set(summary.values()) == {0.0}


def test_the_sample_stays_bounded_and_still_counts_every_input() -> None:
    latency = KeyLatency(keep=100)
    for i in range(10_000):
        latency.record(0.001 if i % 2 else 0.009)
    assert len(latency.samples) == 100
    assert latency.count == 10_000
    # Half the inputs took 9 ms: a uniform sample keeps the median near the boundary, p95 at 9 ms.
    assert latency.percentile(0.95) == 0.009
    assert 30 <= sum(1 for s in latency.samples if s == 0.009) <= 70


def test_loop_lag_remembers_the_worst_of_its_window_then_forgets_it() -> None:
    lag = LoopLag(window=2.0)
    lag.note(10.0, 0.01)
    lag.note(10.1, 0.8)  # one stall
    lag.note(10.2, 0.02)
    assert lag.lag == 0.8
    lag.note(11.9, 0.01)
    assert lag.lag == 0.8  # still inside the window
    lag.note(12.2, 0.01)
    assert lag.lag == 0.02  # the stall left the window; the worst of what is left
    assert lag.worst == 0.8  # kept for the shutdown summary
