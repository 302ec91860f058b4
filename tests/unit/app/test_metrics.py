"""Metrics for monitoring: what is counted, what the server reports at scrape time, and that no label
ever carries a caller's number or an input."""

from __future__ import annotations

from prometheus_client import generate_latest

from ivr.app.metrics import LineMetrics, ServerCollector, VersionCollector


class FakeServer:
    def __init__(self) -> None:
        self.in_progress = 3

    def figures(self) -> dict[str, object]:
        return {
            "served": 10,
            "busy": 2,
            "rejected": 1,
            "cut_off": 0,
            "in_progress": self.in_progress,
            "loop_lag_s": 0.012,
            "action_wait_s": 0.004,
            "loop_lag_worst_s": 0.3,
            "action_wait_worst_s": 0.1,
            "key_to_prompt": {"inputs": 7.0, "p50_ms": 5.0, "p95_ms": 12.5, "p99_ms": 20.0, "max_ms": 30.0},
        }


def scrape(metrics: LineMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_calls_are_counted_by_line_and_outcome_with_their_durations() -> None:
    metrics = LineMetrics()
    metrics.call_ended("operator", "hangup", 42.0)
    metrics.call_ended("operator", "transfer", 20.0, reason="no_input")
    metrics.call_ended("loyalty", "caller_hangup", 8.0)
    metrics.call_ended("operator", "something new", 1.0)  # an unknown ending counts as an error
    text = scrape(metrics)
    assert 'ivr_calls_total{line="operator",outcome="hangup"} 1.0' in text
    assert 'ivr_calls_total{line="operator",outcome="transfer"} 1.0' in text
    assert 'ivr_calls_total{line="loyalty",outcome="caller_hangup"} 1.0' in text
    assert 'ivr_calls_total{line="operator",outcome="error"} 1.0' in text
    assert 'ivr_transfers_total{line="operator",reason="no_input"} 1.0' in text
    assert 'ivr_call_seconds_count{line="operator"} 3.0' in text
    assert 'ivr_call_seconds_sum{line="operator"} 63.0' in text


def test_actions_are_counted_by_status_with_durations() -> None:
    metrics = LineMetrics()
    metrics.action_done("balance.report", "ok", 0.004)
    metrics.action_done("balance.report", "ok", 0.2)
    metrics.action_done("subscriber.verify_pin", "wrong", 0.03)
    text = scrape(metrics)
    assert 'ivr_actions_total{action="balance.report",status="ok"} 2.0' in text
    assert 'ivr_actions_total{action="subscriber.verify_pin",status="wrong"} 1.0' in text
    assert 'ivr_action_seconds_bucket{action="balance.report",le="0.005"} 1.0' in text
    assert 'ivr_action_seconds_bucket{action="balance.report",le="0.25"} 2.0' in text


def test_the_server_figures_are_read_when_scraped() -> None:
    metrics = LineMetrics()
    server = FakeServer()
    metrics.registry.register(ServerCollector(server))
    assert "ivr_calls_in_progress 3.0" in scrape(metrics)
    server.in_progress = 5
    text = scrape(metrics)
    assert "ivr_calls_in_progress 5.0" in text
    assert "ivr_calls_busy_total 2.0" in text
    assert "ivr_connections_rejected_total 1.0" in text
    assert "ivr_event_loop_lag_seconds 0.012" in text
    assert 'ivr_key_to_prompt_seconds{quantile="0.95"} 0.0125' in text
    assert "ivr_key_inputs_total 7.0" in text


def test_a_transfer_reason_that_is_not_an_identifier_is_folded_not_copied() -> None:
    metrics = LineMetrics()
    metrics.call_ended("operator", "transfer", 1.0, reason="caller said 79161234567")
    metrics.call_ended("operator", "transfer", 1.0, reason="")
    text = scrape(metrics)
    assert "79161234567" not in text
    assert 'reason="other"' in text and 'reason="none"' in text


def test_queue_waits_callbacks_and_the_ami_link() -> None:
    metrics = LineMetrics()
    metrics.queue_waited("operators", "answered", 12.0)
    metrics.queue_waited("operators", "abandoned", 70.0)
    metrics.callback_result("answered")
    metrics.callback_result("agent_unavailable")
    metrics.callback_result("79161234567")  # never a label: folded
    metrics.ami_state(True)
    metrics.ami_state(False)
    metrics.ami_state(True)
    metrics.call_ended("operator", "callback", 30.0, reason="caller_request")
    text = scrape(metrics)
    assert 'ivr_queue_wait_seconds_count{outcome="answered",queue="operators"} 1.0' in text
    assert 'ivr_queue_wait_seconds_sum{outcome="abandoned",queue="operators"} 70.0' in text
    assert 'ivr_callback_attempts_total{result="answered"} 1.0' in text
    assert 'ivr_callback_attempts_total{result="other"} 1.0' in text
    assert "79161234567" not in text
    assert "ivr_ami_connected 1.0" in text and "ivr_ami_logins_total 2.0" in text
    assert 'ivr_calls_total{line="operator",outcome="callback"} 1.0' in text
    assert 'ivr_transfers_total{line="operator",reason="caller_request"} 1.0' in text


def test_speech_turns_and_the_recognition_latency() -> None:
    metrics = LineMetrics()
    metrics.speech_result("match", 0.03)
    metrics.speech_result("nomatch", 0.12)
    metrics.speech_result("noinput", 0.0)  # nothing was recognised: no latency to observe
    metrics.speech_result("odd", 0.01)  # an unknown status folds into nomatch
    metrics.speech_result("match", None)  # ended by the wall clock: a turn, but no latency measured
    text = scrape(metrics)
    assert 'ivr_speech_turns_total{result="match"} 2.0' in text
    assert 'ivr_speech_turns_total{result="nomatch"} 2.0' in text
    assert 'ivr_speech_turns_total{result="noinput"} 1.0' in text
    assert "ivr_recognition_seconds_count 3.0" in text
    assert 'ivr_recognition_seconds_bucket{le="0.05"} 2.0' in text
    assert 'ivr_recognition_seconds_bucket{le="0.15"} 3.0' in text


def test_the_media_path_figures_are_read_when_scraped() -> None:
    class MediaServer(FakeServer):
        def figures(self) -> dict[str, object]:
            media = {"started": 9, "no_connection": 1, "lost": 2, "barge_in_voice": 4, "barge_in_keys": 3}
            return {**super().figures(), "media": media}

    metrics = LineMetrics()
    metrics.registry.register(ServerCollector(MediaServer()))
    text = scrape(metrics)
    assert "ivr_media_calls_total 9.0" in text
    assert "ivr_media_fallbacks_total 1.0" in text
    assert "ivr_media_lost_total 2.0" in text
    assert "ivr_barge_in_voice_total 4.0" in text
    assert "ivr_barge_in_keys_total 3.0" in text
    plain = LineMetrics()
    plain.registry.register(ServerCollector(FakeServer()))  # media off: no media figures at all
    assert "ivr_media_calls" not in scrape(plain)


def test_the_versions_in_service_are_read_when_scraped() -> None:
    metrics = LineMetrics()
    trees = {"operator": "2026.12.1"}
    applied: dict[str, int] = {}
    metrics.registry.register(VersionCollector(lambda: dict(trees), lambda: dict(applied)))
    text = scrape(metrics)
    assert 'ivr_tree_version{line="operator",version="2026.12.1"} 1.0' in text
    assert "ivr_published_version{" not in text  # nothing taken from the database yet
    trees["operator"] = "2026.12.2"
    applied["operator"] = 7
    text = scrape(metrics)
    assert 'ivr_tree_version{line="operator",version="2026.12.2"} 1.0' in text
    assert 'version="2026.12.1"' not in text
    assert 'ivr_published_version{line="operator"} 7.0' in text


def test_a_server_that_does_not_follow_the_database_has_no_published_version() -> None:
    metrics = LineMetrics()
    metrics.registry.register(VersionCollector(lambda: {"loyalty": "3"}))
    text = scrape(metrics)
    assert 'ivr_tree_version{line="loyalty",version="3"} 1.0' in text
    assert "ivr_published_version" not in text
