"""Metrics for monitoring, in the Prometheus text format (prometheus_client), served by `ivr serve` on
loopback (`metrics_host`:`metrics_port`, GET /metrics; docs/operations.md, Monitoring).

Two kinds of figures:
- counted as calls and actions happen (`LineMetrics`, fed by `CallHandler` and the action invoker): calls
  by line and how they ended, call durations, actions by name and status with their durations;
- read from the FastAGI server when scraped (`ServerCollector`): calls in progress, callers turned away
  as busy, rejected connections, the event loop's lag, how long actions wait for a worker, and the
  key-to-prompt latency quantiles. Reading at scrape time keeps the call path free of metric updates.

Labels never carry a caller's number, a subscriber, or any input: only line, outcome, action and status,
all from small fixed sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# How a call ended (ivr.app.session.CallOutcome.result) -> the outcome label.
OUTCOMES = ("hangup", "transfer", "callback", "caller_hangup", "error", "cancelled")
QUEUE_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
# How a callback attempt ended (ivr.app.callbacks): anything else is folded into "other".
CALLBACK_RESULTS = (
    "answered",
    "agent_unavailable",
    "noanswer",
    "busy",
    "congestion",
    "chanunavail",
    "cancel",
    "ami_error",
)
CALL_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900)
SPEECH_RESULTS = ("match", "nomatch", "noinput")
RECOGNITION_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
ACTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 6.0, 10.0)


class LineMetrics:
    """What the application counts. One instance per process, with its own registry (tests make many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.calls = Counter(
            "ivr_calls", "Calls ended, by line and how they ended", ["line", "outcome"], registry=reg
        )
        self.call_seconds = Histogram(
            "ivr_call_seconds", "Time callers spent in the IVR", ["line"], buckets=CALL_BUCKETS, registry=reg
        )
        self.transfers = Counter(
            "ivr_transfers",
            "Calls handed to an operator queue, by line and reason",
            ["line", "reason"],
            registry=reg,
        )
        self.actions = Counter(
            "ivr_actions", "Actions run, by name and result status", ["action", "status"], registry=reg
        )
        self.action_seconds = Histogram(
            "ivr_action_seconds",
            "How long actions took (in their worker thread, transaction included)",
            ["action"],
            buckets=ACTION_BUCKETS,
            registry=self.registry,
        )

        self.queue_wait = Histogram(
            "ivr_queue_wait_seconds",
            "How long callers waited in an operator queue, by queue and how the wait ended",
            ["queue", "outcome"],
            buckets=QUEUE_BUCKETS,
            registry=reg,
        )
        self.callbacks = Counter(
            "ivr_callback_attempts", "Callback attempts placed, by how they ended", ["result"], registry=reg
        )
        self.ami_connected = Gauge(
            "ivr_ami_connected", "1 while the AMI link to Asterisk is up", registry=reg
        )
        self.ami_logins = Counter(
            "ivr_ami_logins",
            "AMI logins (the first, then one per reconnect after Asterisk restarts)",
            registry=reg,
        )

        self.speech_turns = Counter(
            "ivr_speech_turns",
            "Speech turns decided, by result (match, nomatch, noinput)",
            ["result"],
            registry=reg,
        )
        self.recognition_seconds = Histogram(
            "ivr_recognition_seconds",
            "Recognition latency: from the caller audio that ended an utterance to the recogniser's result "
            "(decoding and waiting for a decoding thread; the endpointing silence is not included)",
            buckets=RECOGNITION_BUCKETS,
            registry=reg,
        )

    def speech_result(self, status: str, latency: float | None) -> None:
        """A decided turn; `latency` None when it was not measured (a turn ended by the wall clock)."""
        self.speech_turns.labels(status if status in SPEECH_RESULTS else "nomatch").inc()
        if status != "noinput" and latency is not None:
            self.recognition_seconds.observe(max(0.0, latency))

    def ami_state(self, connected: bool) -> None:
        self.ami_connected.set(1 if connected else 0)
        if connected:
            self.ami_logins.inc()

    def queue_waited(self, queue: str, outcome: str, seconds: float) -> None:
        self.queue_wait.labels(_reason(queue), outcome).observe(max(0.0, seconds))

    def callback_result(self, result: str) -> None:
        self.callbacks.labels(result if result in CALLBACK_RESULTS else "other").inc()

    def call_ended(self, line: str, outcome: str, seconds: float, reason: str = "") -> None:
        label = outcome if outcome in OUTCOMES else "error"
        self.calls.labels(line, label).inc()
        self.call_seconds.labels(line).observe(max(0.0, seconds))
        if label in ("transfer", "callback"):
            self.transfers.labels(line, _reason(reason)).inc()

    def action_done(self, name: str, status: str, seconds: float) -> None:
        self.actions.labels(name, status).inc()
        self.action_seconds.labels(name).observe(max(0.0, seconds))


def _reason(reason: str) -> str:
    """Transfer reasons are tree data (short identifiers); anything else is folded, never copied."""
    cleaned = reason.strip()
    if cleaned and len(cleaned) <= 40 and all(ch.isalnum() or ch in "_-." for ch in cleaned):
        return cleaned
    return "other" if cleaned else "none"


class ServerFigures(Protocol):
    """The part of ivr.telephony.fastagi.FastAgiServer the collector reads."""

    def figures(self) -> dict[str, object]: ...


class ServerCollector(Collector):
    """The FastAGI server's own figures, read at scrape time."""

    def __init__(self, server: ServerFigures) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        f = self.server.figures()
        yield _gauge("ivr_calls_in_progress", "Calls the server is carrying now", f["in_progress"])
        for name, help_text, key in (
            ("ivr_calls_served", "Calls the server ran to their end", "served"),
            ("ivr_calls_busy", "New callers turned away: the line is busy (overload protection)", "busy"),
            ("ivr_connections_rejected", "AGI connections rejected before a call (bad header)", "rejected"),
        ):
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], float(str(f[key])))
            yield counter
        yield _gauge(
            "ivr_event_loop_lag_seconds", "How late the event loop runs (worst of 2 s)", f["loop_lag_s"]
        )
        yield _gauge(
            "ivr_action_wait_seconds", "How long actions wait for a worker (worst of 2 s)", f["action_wait_s"]
        )
        latency = f["key_to_prompt"]
        assert isinstance(latency, dict)
        family = GaugeMetricFamily(
            "ivr_key_to_prompt_seconds",
            "From the key that completed an input to the next prompt sent, the server's own part",
            labels=["quantile"],
        )
        for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
            family.add_metric([quantile], float(latency[key]) / 1000)
        yield family
        inputs = CounterMetricFamily("ivr_key_inputs", "Inputs measured for ivr_key_to_prompt_seconds")
        inputs.add_metric([], float(latency["inputs"]))
        yield inputs
        media = f.get("media")
        if isinstance(media, dict):
            for name, help_text, key in (
                ("ivr_media_calls", "Calls whose dialog ran over the media path (AudioSocket)", "started"),
                (
                    "ivr_media_fallbacks",
                    "Calls that went on keys-only over AGI: Asterisk did not connect the media path",
                    "no_connection",
                ),
                ("ivr_media_lost", "Calls whose media stream was lost mid-call (went on over AGI)", "lost"),
                (
                    "ivr_barge_in_voice",
                    "Prompts stopped because the caller started speaking",
                    "barge_in_voice",
                ),
                ("ivr_barge_in_keys", "Prompts stopped by a key (media path)", "barge_in_keys"),
            ):
                counter = CounterMetricFamily(name, help_text)
                counter.add_metric([], float(media.get(key, 0)))
                yield counter


class VersionCollector(Collector):
    """Which version of each line this server has in service, read at scrape time: the tree's own
    `version` (ivr_tree_version, the version as a label), and on a node that follows the database
    (docs/scale-out.md) the published version number it put in service (ivr_published_version). Summed
    over the nodes, they show a publish reaching every node, or a node left behind."""

    def __init__(
        self,
        trees: Callable[[], dict[str, str]],
        published: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.trees = trees
        self.published = published

    def collect(self) -> Iterator[Any]:
        info = GaugeMetricFamily(
            "ivr_tree_version", "The tree version in service, per line (1; the version is a label)",
            labels=["line", "version"],
        )  # fmt: skip
        for line, version in sorted(self.trees().items()):
            info.add_metric([line, version], 1.0)
        yield info
        if self.published is not None:
            numbers = GaugeMetricFamily(
                "ivr_published_version",
                "The published version (tree_version number) this node has in service, per line",
                labels=["line"],
            )
            for line, number in sorted(self.published().items()):
                numbers.add_metric([line], float(number))
            yield numbers


def _gauge(name: str, help_text: str, value: object) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text)
    gauge.add_metric([], float(str(value)))
    return gauge


def serve_metrics(metrics: LineMetrics, server: ServerFigures, host: str, port: int) -> int:
    """Register the server's figures and serve GET /metrics on host:port (a daemon thread of
    prometheus_client's own). Returns the port it listens on."""
    metrics.registry.register(ServerCollector(server))
    httpd, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return int(httpd.server_address[1])
