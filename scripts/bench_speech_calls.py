"""Speech on the service numbers (issue 12, "Benchmark"): N concurrent real calls that SAY their choice to
`ivr serve`, stepped up, with CPU per stream, memory per extra call and the delays the caller feels. A
script that prints figures, not a test (docs/benchmarks.md, "Speech on the service numbers").

The line is the Korean speech test line (tests/fixtures/speech_line; the one Vosk model installable here is
Korean) in a private local line (ivr.testbed.localline: temp var dir, its own ports, its own rendered
prompts), with the project-local Asterisk and `ivr serve` over AudioSocket (ivr.telephony.media_channel)
and one shared Vosk model. Every call dials the service number 0505 with no prefix and says «비밀번호»
("password", espeak-ng voice ko+f2, 8 kHz A-law RTP from ONE sipp process: ivr.testbed.loadgen); it is
good when AMI sees it transferred for that phrase (IVR_TRANSFER_REASON=speech_password).

Each step restarts `ivr serve` (so its memory is that step's) and runs two phases of N calls each:
- `after`: the phrase is said once, after the menu prompt has ended (lead silence = the prompt + 1.4 s):
  the reply delay without barge-in;
- `during`: the phrase is said 0.5 s into the call, while the menu prompt plays (barge-in by voice),
  repeated every 3.5 s in case the first one fell before the stream was up.

Figures, per phase:
- good / failed calls; peak calls up at once (AMI);
- CPU (user + system, /proc/<pid>/stat sampled every 0.2 s) of the server and of Asterisk, in % of one core
  per call, over two windows: `menu` (every call up, none decoding yet: prompts streaming out, caller audio
  streaming in and watched for barge-in) and `decoding` (the longest stretch with at least 80 % of the
  phase's peak number of streams being decoded at once; a stream decodes from the start of its speech turn
  to its decision, from the server log); plus the server's CPU per call over the whole phase (ms);
- speech turns by result (match / nomatch / noinput; turns ended by the wall clock: decoding fell behind,
  left out of the delays below, whose log lines do not carry them);
- endpointing: caller audio from the last change of the words to the decision ("endpointing N ms" in the
  server log): silence the recogniser waited for, the caller's part of the delay;
- our processing: "decided N ms after" (decoding and waiting for a decoding thread, from the arrival of the
  audio that ended the utterance) + "reply began N ms after the speech result" (the engine step to the
  first reply frame sent), per turn;
- beyond the silence: endpointing + processing - the configured end silence (speech_end_silence, 0.8 s):
  from the moment the caller's silence was long enough to the reply. Decoding that falls behind is fed
  bigger chunks (all that arrived meanwhile) and notices the silence late: that part shows as longer
  "endpointing", not in "decided"; this figure counts it as ours;
- barge-in: how many prompts were stopped by voice and on how much voice the detector decided (audio
  time). The stop-to-caller part is the media path's (docs/benchmarks.md, "Media path": p95 about 50 ms
  over AudioSocket), not measured again here.
A phase keeps real time when at least 95 % of its calls are good, no turn was ended by the wall clock, and
its p95 beyond the silence is at most --limit-ms (300): decoding keeps up with the audio. Per step: the
server's resident memory (idle after the model load, peak), MB per extra call against the smallest step,
the event loop's worst lag over the step (`ivr serve --stats-file`), and the CPU other processes used for
2 s before the calls (the machine may be shared).

    .venv/bin/python scripts/bench_speech_calls.py --steps 10,20,40,60 --json /tmp/speech-calls.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import re
import resource
import shutil
import statistics
import tempfile
import time
import wave
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from bench_calls import cpu, peak_concurrency, rss_mb
from bench_calls import outcome as call_outcome
from bench_media import Sampler, machine_busy, pct

from ivr.config import PROJECT_ROOT, Settings
from ivr.prompts.render import RenderJob, render_jobs
from ivr.telephony.ami import CallRecord
from ivr.testbed import asterisk
from ivr.testbed.loadgen import LoadPlan, PlannedCall, run_load
from ivr.testbed.localline import LocalLine
from ivr.testbed.rtp_pcap import wav_to_pcap

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "speech_line"
NUMBER = "0505"
CALLER = "79161234567"
PHRASE = (
    "비밀번호"  # key 2 of the test line; the Korean model hears espeak's ko+f2 say it with confidence 1.0
)
REASON = "speech_password"
VOICE = "ko+f2"
DURING_LEAD = 0.5  # seconds into the call the phrase begins in the `during` phase
HOLD = 5.0  # seconds the caller stays on after its audio
DECODING_SHARE = 0.8  # the decoding window: at least this share of the peak number of streams decoding

# Server log lines (ivr.telephony.media_channel, INFO), each "<date> <time> LEVEL [<uniqueid>] ...".
LINE = re.compile(r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ \[(?P<call>[^\]]*)\] (?P<rest>.*)$")
TURN = re.compile(
    r"speech turn: (?P<status>\w+) after (?P<audio>[\d.]+) s of caller audio, "
    r"endpointing (?P<endpoint>\d+) ms, decided (?P<decided>\d+) ms after \((?P<reason>[^)]*)\)"
)
REPLY = re.compile(r"reply began (?P<ms>[\d.]+) ms after the speech result")
BARGE = re.compile(
    r"barge-in: voice after (?P<after>[\d.]+) s of the prompt, decided on (?P<ms>\d+) ms of voice"
)
WALL = re.compile(r"speech turn ended by the wall clock")


@dataclass(frozen=True)
class Variant:
    name: str  # after | during
    pcap: Path
    seconds: float  # the pcap's length


@dataclass
class Turn:
    call: str
    decided_at: float  # wall clock of the decision (the log line)
    status: str
    audio_s: float
    endpoint_ms: float
    decided_ms: float
    reason: str
    # Ended by the wall clock (decoding fell behind): its logged figures are not the turn's delay (the
    # result comes from the recogniser without the driver's latency: "decided 0 ms after").
    wall_clock: bool = False
    reply_ms: float | None = None  # the next "reply began" of the same call

    @property
    def processing_ms(self) -> float | None:
        return None if self.reply_ms is None else self.decided_ms + self.reply_ms


@dataclass
class CallLog:
    first_at: float = 0.0  # the call's first server log line
    turns: list[Turn] = field(default_factory=list)
    barge_in_ms: list[float] = field(default_factory=list)
    wall_clock_turns: int = 0


@dataclass
class Phase:
    variant: str
    calls: int
    good: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    peak_up: int = 0
    wall_s: float = 0.0
    server_ms_per_call: float = 0.0  # the server's CPU over the whole phase, per call
    sipp_cpu_s: float = 0.0
    # % of one core per call: while every call is up and none decodes (menu), while most streams decode
    menu_window_s: float = 0.0
    menu_server_pct: float = 0.0
    menu_asterisk_pct: float = 0.0
    decoding_window_s: float = 0.0
    decoding_streams: float = 0.0  # streams decoding at once, on average over the decoding window
    peak_decoding: int = 0
    decoding_server_pct: float = 0.0
    decoding_asterisk_pct: float = 0.0
    decoding_machine_pct: float = 0.0  # every process on the machine (200 = both cores)
    turns: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # what ended each turn (vosk_final, end_silence...)
    wall_clock_turns: int = 0
    endpoint_ms: dict[str, float] = field(default_factory=dict)
    decided_ms: dict[str, float] = field(default_factory=dict)
    reply_ms: dict[str, float] = field(default_factory=dict)
    processing_ms: dict[str, float] = field(default_factory=dict)
    to_reply_ms: dict[str, float] = field(default_factory=dict)  # endpointing + processing
    # endpointing + processing - the configured end silence: from the moment the silence that ends an
    # utterance had passed to the reply. Under load the recogniser is fed bigger chunks (what arrived while
    # the previous one decoded), so it notices the silence later: that wait shows in "endpointing", not in
    # "decided"; this figure counts it as ours.
    beyond_silence_ms: dict[str, float] = field(default_factory=dict)
    barge_ins: int = 0
    barge_in_ms: dict[str, float] = field(default_factory=dict)
    real_time: bool = False


@dataclass
class Step:
    calls: int
    phases: list[Phase] = field(default_factory=list)
    # Other processes' CPU (the machine is shared) over 2 s before the calls, server idle: % of one core
    background_pct: float = 0.0
    server_idle_pct: float = 0.0  # the server's own CPU over the same 2 s, no call
    server_idle_mb: float = 0.0  # right after the start (model loaded)
    server_peak_mb: float = 0.0
    mb_per_extra_call: float | None = None  # against the smallest step
    loop_lag_worst_s: float = 0.0
    media: dict[str, object] = field(default_factory=dict)  # the server's own counts (stats file)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": float(len(values)),
        "p50": pct(values, 0.5),
        "p95": pct(values, 0.95),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def read_calls(log_text: str) -> dict[str, CallLog]:
    """Each call's speech turns, replies and barge-ins from the server log."""
    calls: dict[str, CallLog] = defaultdict(CallLog)
    for row in log_text.splitlines():
        line = LINE.match(row)
        if line is None or line["call"] in ("", "-"):
            continue
        at, call = log_time(line["at"]), calls[line["call"]]
        call.first_at = call.first_at or at
        rest = line["rest"]
        if m := TURN.search(rest):
            call.turns.append(
                Turn(
                    line["call"],
                    at,
                    m["status"],
                    float(m["audio"]),
                    float(m["endpoint"]),
                    float(m["decided"]),
                    m["reason"],
                    wall_clock=call.wall_clock_turns > len([t for t in call.turns if t.wall_clock]),
                )
            )
        elif (m := REPLY.search(rest)) and call.turns and call.turns[-1].reply_ms is None:
            call.turns[-1].reply_ms = float(m["ms"])
        elif m := BARGE.search(rest):
            call.barge_in_ms.append(float(m["ms"]))
        elif WALL.search(rest):
            call.wall_clock_turns += 1
    return calls


def decoding_window(turns: list[Turn]) -> tuple[float, float, float, int]:
    """(start, end, mean streams, peak streams): the longest stretch in which at least DECODING_SHARE of
    the peak number of streams decode at once (a turn decodes from its start to its decision)."""
    marks = sorted([(t.decided_at - t.audio_s, 1) for t in turns] + [(t.decided_at, -1) for t in turns])
    if not marks:
        return 0.0, 0.0, 0.0, 0
    counts: list[tuple[float, int]] = []  # (from this time, this many decode)
    now = 0
    for at, delta in marks:
        now += delta
        counts.append((at, now))
    peak = max(n for _at, n in counts)
    floor = max(1, math.ceil(DECODING_SHARE * peak))
    best = (0.0, 0.0, 0.0)
    start: float | None = None
    area = 0.0
    for (at, n), (following, _n) in itertools.pairwise(counts):
        if n >= floor:
            start = at if start is None else start
            area += n * (following - at)
            if following - start > best[1] - best[0]:
                best = (start, following, area)
        else:
            start, area = None, 0.0
    begin, end, total = best
    return begin, end, (total / (end - begin) if end > begin else 0.0), peak


def outcome(record: CallRecord | None) -> str:
    """good = transferred for the phrase; else why not (unseen, busy, failure path, another result)."""
    seen = call_outcome(record)  # bench_calls': unseen / busy / failure path, else about the balance
    if record is None or seen in ("unseen", "busy", "failure path"):
        return seen
    reason = record.variables.get("IVR_TRANSFER_REASON", "")
    if reason == REASON:
        return "good"
    return f"{record.variables.get('IVR_RESULT', 'no result')} ({reason or 'no reason'})"


def run_phase(
    line: LocalLine,
    variant: Variant,
    calls: int,
    rate: float,
    sampler: Sampler,
    pids: tuple[int, int],
    limit_ms: float,
) -> Phase:
    phase = Phase(variant=variant.name, calls=calls)
    server_pid = pids[1]
    offset = line.server_log.stat().st_size if line.server_log.exists() else 0
    plan = LoadPlan(
        number=NUMBER,
        calls=[PlannedCall(caller=CALLER)] * calls,
        concurrency=calls,
        rate=rate,
        # The caller plays its audio to the end, then stays: a slow reply still ends in the transfer it
        # is judged by (hanging up earlier, mid-reply, would look like a failed call).
        first_wait=variant.seconds,
        hold=HOLD,
        audio_pcap=variant.pcap,
        timeout=120.0,
    )
    srv_before = cpu(server_pid)
    result = asyncio.run(run_load(line.settings, plan))
    phase.server_ms_per_call = 1000 * (cpu(server_pid) - srv_before) / calls
    phase.wall_s, phase.sipp_cpu_s = result.wall, result.sipp_cpu
    kinds = [outcome(o.record) for o in result.outcomes]
    phase.good = kinds.count("good")
    phase.failed = calls - phase.good
    phase.failures = sorted({f"{kinds.count(k)}× {k}" for k in kinds if k != "good"})
    records = [o.record for o in result.outcomes if o.record is not None]
    phase.peak_up = peak_concurrency(records)
    time.sleep(0.5)  # the server's last log lines
    with line.server_log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", errors="replace")
    ours = {r.uniqueid for r in records}
    logs = {call: found for call, found in read_calls(text).items() if call in ours}
    turns = [t for c in logs.values() for t in c.turns]
    # CPU windows. Menu: every call is up and none decodes yet (from the last call's first log line to
    # the first turn's start); decoding: most streams decode at once.
    if logs and turns:
        menu = sampler.between(
            max(c.first_at for c in logs.values()), min(t.decided_at - t.audio_s for t in turns)
        )
        if menu is not None and menu[0] > 0:
            phase.menu_window_s = menu[0]
            phase.menu_asterisk_pct = 100 * menu[1] / menu[0] / len(logs)
            phase.menu_server_pct = 100 * menu[2] / menu[0] / len(logs)
    begin, end, streams, phase.peak_decoding = decoding_window(turns)
    decoding = sampler.between(begin, end) if end > begin else None
    if decoding is not None and decoding[0] > 0 and streams > 0:
        phase.decoding_window_s, phase.decoding_streams = decoding[0], streams
        phase.decoding_asterisk_pct = 100 * decoding[1] / decoding[0] / streams
        phase.decoding_server_pct = 100 * decoding[2] / decoding[0] / streams
        phase.decoding_machine_pct = 100 * decoding[3] / decoding[0]
    for t in turns:
        phase.turns[t.status] = phase.turns.get(t.status, 0) + 1
        phase.reasons[t.reason] = phase.reasons.get(t.reason, 0) + 1
    phase.wall_clock_turns = sum(c.wall_clock_turns for c in logs.values())
    decided = [t for t in turns if t.status != "noinput" and not t.wall_clock]
    replied = [t for t in decided if t.processing_ms is not None]
    phase.endpoint_ms = summary([t.endpoint_ms for t in decided])
    phase.decided_ms = summary([t.decided_ms for t in decided])
    phase.reply_ms = summary([t.reply_ms for t in replied if t.reply_ms is not None])
    phase.processing_ms = summary([t.processing_ms for t in replied if t.processing_ms is not None])
    phase.to_reply_ms = summary([t.endpoint_ms + (t.processing_ms or 0.0) for t in replied])
    silence_ms = 1000 * line.settings.speech_end_silence
    phase.beyond_silence_ms = summary(
        [t.endpoint_ms + (t.processing_ms or 0.0) - silence_ms for t in replied]
    )
    barges = [ms for c in logs.values() for ms in c.barge_in_ms]
    phase.barge_ins, phase.barge_in_ms = len(barges), summary(barges)
    phase.real_time = (
        phase.good >= 0.95 * calls
        and phase.wall_clock_turns == 0
        and bool(phase.beyond_silence_ms)
        and phase.beyond_silence_ms["p95"] <= limit_ms
    )
    return phase


def run_step(
    line: LocalLine, variants: list[Variant], calls: int, rate: float, work: Path, limit_ms: float
) -> Step:
    step = Step(calls=calls)
    stats = work / f"stats-{calls}.json"
    stats.unlink(missing_ok=True)
    ast_pid = asterisk.running_pid(asterisk.asterisk_paths(line.settings))
    assert ast_pid is not None
    line.start_server("--stats-file", str(stats))
    assert line.server is not None
    server_pid = line.server.pid
    sampler = Sampler(ast_pid, server_pid)
    try:
        time.sleep(1.0)
        step.server_idle_mb = rss_mb(server_pid)
        before, srv_before = machine_busy() - cpu(ast_pid) - cpu(server_pid), cpu(server_pid)
        time.sleep(2.0)
        step.background_pct = max(0.0, 100 * (machine_busy() - cpu(ast_pid) - cpu(server_pid) - before) / 2.0)
        step.server_idle_pct = 100 * (cpu(server_pid) - srv_before) / 2.0
        sampler.start()
        for variant in variants:
            step.phases.append(
                run_phase(line, variant, calls, rate, sampler, (ast_pid, server_pid), limit_ms)
            )
    finally:
        sampler.halt.set()
        sampler.join()
        line.stop_server()
    step.server_peak_mb = max((s[3] for s in sampler.samples), default=0.0)
    if stats.exists():
        figures = json.loads(stats.read_text())
        step.loop_lag_worst_s = float(figures.get("loop_lag_worst_s") or 0.0)
        step.media = dict(figures.get("media") or {})
    return step


# ---- audio ------------------------------------------------------------------------------------------


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def make_variants(settings: Settings, work: Path, which: list[str]) -> list[Variant]:
    """The phrase rendered by espeak-ng (as the e2e tests do) into one RTP pcap per phase."""
    phrase = Settings(home=work / "phrase")
    job = RenderJob("ko/bench/password.wav", PHRASE, "ko", "prompt")
    report = render_jobs(phrase, [job], progress=False, engine="espeak", voices={"ko": VOICE})
    if report.failed:
        raise SystemExit(f"cannot render the phrase: {report.failed}")
    wav = phrase.sounds / job.rel
    menu = sorted((settings.sounds / "ko" / "kotest").glob("main_menu*.wav"))
    if not menu:
        raise SystemExit(f"the test line's menu prompt is not rendered in {settings.sounds}")
    after_lead = max(6.0, wav_seconds(menu[0]) + 1.4)
    variants = []
    for name in which:
        pcap = work / f"{name}.pcap"
        if name == "after":
            seconds = wav_to_pcap(wav, pcap, lead_silence=after_lead, tail_silence=3.0)
        else:
            seconds = wav_to_pcap(wav, pcap, lead_silence=DURING_LEAD, tail_silence=2.0, repeat=3)
        variants.append(Variant(name, pcap, seconds))
    return variants


# ---- output -----------------------------------------------------------------------------------------


def window(seconds: float, *pcts: float) -> str:
    return " / ".join(f"{p:.2f}" for p in pcts) if seconds >= 0.4 else "–"


def fmt(figures: dict[str, float], *keys: str) -> str:
    return " / ".join(f"{figures[k]:.0f}" for k in keys) if figures else "–"


def table(steps: list[Step], limit_ms: float) -> str:
    head = (
        "| calls | phase | good | failed | peak up | server ms/call | menu: server / Asterisk %/call "
        "| decoding: streams (peak) | decoding: server / Asterisk %/stream | machine % "
        "| turns m/n/i (wall) | endpointing p50 / p95 ms | processing p50 / p95 / max ms "
        "| beyond the silence p50 / p95 ms | barge-ins | barge-in decision p50 / p95 ms "
        f"| real time (p95 ≤ {limit_ms:.0f} ms) |\n"
        "|---:|---|---:|---:|---:|---:|---|---|---|---:|---|---|---|---|---:|---|---|"
    )
    rows = []
    for s in steps:
        for p in s.phases:
            turns = f"{p.turns.get('match', 0)}/{p.turns.get('nomatch', 0)}/{p.turns.get('noinput', 0)}"
            rows.append(
                f"| {s.calls} | {p.variant} | {p.good} | {p.failed} | {p.peak_up} "
                f"| {p.server_ms_per_call:.0f} "
                f"| {window(p.menu_window_s, p.menu_server_pct, p.menu_asterisk_pct)} "
                f"| {p.decoding_streams:.1f} ({p.peak_decoding}) over {p.decoding_window_s:.1f} s "
                f"| {p.decoding_server_pct:.2f} / {p.decoding_asterisk_pct:.2f} "
                f"| {p.decoding_machine_pct:.0f} "
                f"| {turns} ({p.wall_clock_turns}) | {fmt(p.endpoint_ms, 'p50', 'p95')} "
                f"| {fmt(p.processing_ms, 'p50', 'p95', 'max')} | {fmt(p.beyond_silence_ms, 'p50', 'p95')} "
                f"| {p.barge_ins} | {fmt(p.barge_in_ms, 'p50', 'p95')} | {'yes' if p.real_time else 'no'} |"
            )
    return "\n".join([head, *rows])


def memory_table(steps: list[Step]) -> str:
    head = (
        "| calls | others' CPU before % | server idle % | server RSS idle MB | server RSS peak MB "
        "| MB per extra call | loop lag worst ms | media: started / no connection / lost | turns (server) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---|---|"
    )
    rows = []
    for s in steps:
        extra = "–" if s.mb_per_extra_call is None else f"{s.mb_per_extra_call:.2f}"
        m = s.media
        rows.append(
            f"| {s.calls} | {s.background_pct:.0f} | {s.server_idle_pct:.1f} | {s.server_idle_mb:.0f} "
            f"| {s.server_peak_mb:.0f} | {extra} "
            f"| {1000 * s.loop_lag_worst_s:.0f} | {m.get('started', '–')} / {m.get('no_connection', '–')} / "
            f"{m.get('lost', '–')} | {m.get('turns', '–')} {m.get('results', '')} |"
        )
    return "\n".join([head, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", default="10,20,40,60", help="concurrent speech calls per step (comma-separated)"
    )
    parser.add_argument("--phases", default="after,during", help="after, during (comma-separated)")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="new calls per second (high, so that the streams overlap)"
    )
    parser.add_argument(
        "--limit-ms", type=float, default=300.0, help="processing p95 that still is real time"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="go on after a step with under 95 %% good calls"
    )
    parser.add_argument(
        "--overload-lag",
        type=float,
        help="the line's overload protection: event-loop lag in s past which new callers hear 'busy' "
        "(default: the line's own setting)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the server's log and stats files into this folder"
    )
    args = parser.parse_args()
    steps = sorted(int(n) for n in args.steps.split(","))
    phases = args.phases.split(",")
    if set(phases) - {"after", "during"}:
        parser.error("phases are after and during")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    done: list[Step] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ivr-bench-speech-") as tmp:
        work = Path(tmp)
        # The Korean test line, as tests/e2e/test_speech_call.py runs it: its own prompts, sounds and
        # minimum confidence; no callback offer (the test line has no texts for it).
        os.environ.update(
            {
                "IVR_PROMPTS_DIR": str(FIXTURE),
                "IVR_SOUNDS_DIR": str(work / "sounds"),
                "IVR_DEFAULT_LANGUAGE": "ko",
                "IVR_SPEECH_MIN_CONFIDENCE": "0.9",
                "IVR_CALLBACKS": "false",
            }
        )
        line = LocalLine.prepare(
            work / "var",
            overload_lag=args.overload_lag,
            rtp_ports=4 * max(steps) + 100,
            max_calls=2 * max(steps),
        )
        variants = make_variants(line.settings, work, phases)
        _pid, boot = asterisk.start(line.settings, env=line.env)
        try:
            for calls in steps:
                step = run_step(line, variants, calls, args.rate, work, args.limit_ms)
                done.append(step)
                if done[0].calls < calls:
                    step.mb_per_extra_call = (step.server_peak_mb - done[0].server_peak_mb) / (
                        calls - done[0].calls
                    )
                print(table([step], args.limit_ms).split("\n", 2)[2], flush=True)
                for p in step.phases:
                    if p.failures:
                        print(f"  {calls} {p.variant}: {', '.join(p.failures)}", flush=True)
                if any(p.good < 0.95 * calls for p in step.phases) and not args.keep_going:
                    print(f"  stopped: under 95 % good at {calls} calls", flush=True)
                    break
        finally:
            asterisk.stop(line.settings)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for saved in [line.server_log, *line.server_stderr, *work.glob("stats-*.json")]:
                    if saved.exists():
                        shutil.copy2(saved, args.keep_logs / saved.name)
    print(
        f"\nAsterisk boot {boot:.2f} s; {args.rate:g} new calls/s; {os.cpu_count()} cores; "
        f"end silence {line.settings.speech_end_silence:g} s; run {time.monotonic() - began:.0f} s; "
        "CPU in % of one core\n"
    )
    print(table(done, args.limit_ms))
    print()
    print(memory_table(done))
    kept = [s.calls for s in done if all(p.real_time for p in s.phases)]
    print(f"\nlargest step that kept real time in every phase: {max(kept) if kept else 'none'}")
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in done], indent=2, ensure_ascii=False) + "\n")
    return 0 if done and all(p.good >= 0.95 * p.calls for s in done for p in s.phases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
