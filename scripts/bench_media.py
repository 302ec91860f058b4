"""The media path benchmark (issue 12): N concurrent real calls whose audio streams into one server
process, over each candidate path, with CPU per call and the barge-in delay. A script that prints figures,
not a timed test (docs/benchmarks.md, "Media path").

Starts the project-local Asterisk alone in a temporary var dir, the media lab's servers (ivr.testbed.medialab:
FastAGI in control of each call, our AudioSocket server, the chan_websocket prototype) in a child process
of their own so that their CPU is measured apart, and places the calls with ONE sipp process
(ivr.testbed.loadgen). Each caller speaks all call long (sipp plays the rendered prompts as RTP). Each
call's server side:

- `audiosocket`: FastAGI runs `EXEC AudioSocket(uuid,...)`; the server reads the caller's audio and plays a
  long prompt (the rendered menu prompts back to back) through the paced sender;
- `websocket`: FastAGI runs `EXEC Dial(WebSocket/...,,g)`; the server reads the caller's audio and sends the
  prompt to Asterisk, which paces it;
- `playback` (the baseline, no media stream): FastAGI plays the prompt itself with STREAM FILE; nothing
  reads the caller's audio.

S seconds after the call's media began (S = calls / rate + 6, so every call of the step is up for a few
seconds), the server stops the prompt: the barge-in. AudioSocket: it sends no further frame;
chan_websocket: FLUSH_MEDIA; playback: AMI ControlPlayback stop (what a route with an ARI snoop channel
for the caller's audio, prompts still played by AGI, would do). A second later it ends the media part and
the AGI session hangs the call up.

Figures per path and size:
- CPU of Asterisk and of the server process per call (% of one core), over the window in which every
  call of the step was in its media part, from /proc/<pid>/stat;
- barge-in delay: from the moment the server stopped the prompt (its clock) to the moment the caller
  stops hearing it. An AF_PACKET tap on loopback (ivr.testbed.rtptap, needs root) timestamps, in the
  kernel, every RTP packet Asterisk sends to sipp's media port; each call is told apart by its RTP source
  port (CHANNEL(rtp,src), read by the AGI session); "sound" is a packet with a sample above 1000. The
  caller hears the prompt until the later of: the last sound packet's arrival plus its 20 ms, and (for
  AudioSocket) the end of the audio the server had already sent ahead at the stop (the pacer's lead,
  which the phone plays on after the last packet). The phone's own jitter buffer comes on top, the same
  on every path. Also shown: when the last sound packet arrived, relative to the stop (negative: it had
  left before the stop);
- the caller's audio that reached the server (frames per second per call), how late the pacer's 20 ms
  ticks were, and how often a tick came so late that the pacer moved a prompt (a gap the caller hears).

    .venv/bin/python scripts/bench_media.py --steps 10,50,100 --paths audiosocket,websocket,playback \
        --json /tmp/media.json          # as root: the tap needs CAP_NET_RAW (without it, no barge-in figure)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_calls import cpu, rss_mb
from panoramisk import Manager

from ivr.config import load_settings
from ivr.telephony.audiosocket import Audio, Dtmf, PacerStats, wav_pcm
from ivr.testbed import asterisk, medialab
from ivr.testbed.dialer import free_udp_port
from ivr.testbed.loadgen import LoadPlan, PlannedCall, run_load
from ivr.testbed.localline import LocalLine
from ivr.testbed.rtp_pcap import wav_to_pcap
from ivr.testbed.rtptap import RtpTap, unavailable

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("audiosocket", "websocket", "playback")
TAIL = 1.0  # seconds after the barge-in before the media part ends


# ---- the server process (`bench_media.py serve`) -----------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """The lab's servers; one JSON line per call to --report; the ports on stdout."""
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    prompt = wav_pcm(args.prompt)
    prompt_name = str(args.prompt.with_suffix(""))
    control: Path = args.control
    report = args.report.open("a", encoding="utf-8")
    settings = load_settings()
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=settings.ami_host,
        port=settings.ami_port,
        username=settings.ami_user,
        secret=settings.ami_secret,
        ping_delay=3600,
        ping_interval=3600,
    )
    await manager.connect()

    async def stop_playback(channel: str) -> object:
        return await manager.send_action({"Action": "ControlPlayback", "Channel": channel, "Control": "stop"})

    def settings_now() -> dict[str, Any]:
        return dict(json.loads(control.read_text()))

    current_step = [0]

    async def session(call: medialab.LabCall, leg: medialab.MediaLeg) -> dict[str, Any]:
        step = settings_now()
        if step["step"] != current_step[0]:  # the pacer's figures are per step
            current_step[0] = step["step"]
            lab.pacer.stats = PacerStats()
        rec: dict[str, Any] = {"step": step["step"], "connected": time.time(), "frames_in": 0, "digits": 0}

        async def listen() -> None:
            async for event in leg.events():
                if isinstance(event, Audio):
                    rec["frames_in"] += 1
                elif isinstance(event, Dtmf):
                    rec["digits"] += 1

        listening = asyncio.ensure_future(listen())
        playing = leg.play(prompt)
        await asyncio.sleep(max(0.0, step["stop_after"] - (time.time() - rec["connected"])))
        rec["stopped"] = time.time()
        leg.stop()
        played = await playing
        rec["sent"], rec["unplayed_ms"] = played.sent, played.unplayed_ms
        await asyncio.sleep(TAIL)
        rec["media_seconds"] = time.time() - rec["connected"]
        listening.cancel()
        return rec

    async def playback(call: medialab.LabCall, leg: medialab.PlaybackLeg) -> dict[str, Any]:
        step = settings_now()
        rec: dict[str, Any] = {"step": step["step"], "connected": time.time(), "frames_in": 0, "digits": 0}
        playing = asyncio.ensure_future(leg.play_file(prompt_name))
        await asyncio.sleep(step["stop_after"])
        rec["stopped"] = time.time()
        leg.stop()
        played = await asyncio.wait_for(playing, 30.0)
        rec["stream_file_returned"] = time.time()
        rec["sent"], rec["unplayed_ms"] = 0, 0.0
        rec["stopped_ok"] = played.stopped
        await asyncio.sleep(TAIL)
        rec["media_seconds"] = time.time() - rec["connected"]
        return rec

    lab: medialab.MediaLab

    def done(call: medialab.LabCall) -> None:
        rec = call.session_result if isinstance(call.session_result, dict) else {}
        rec.setdefault("step", settings_now()["step"])
        lateness = sorted(lab.pacer.stats.lateness_ms) or [0.0]
        rec.update(
            path=call.path,
            rtp_local=call.rtp_local,
            exec_result=call.exec_result,
            agi_went_on=call.agi_went_on,
            txcount=call.txcount,
            errors=call.errors,
            pacer_late_p50_ms=lateness[len(lateness) // 2],
            pacer_late_p95_ms=lateness[int(len(lateness) * 0.95)],
            pacer_late_max_ms=lateness[-1],
            pacer_reanchored=lab.pacer.stats.reanchored,
        )
        report.write(json.dumps(rec) + "\n")
        report.flush()

    lab = medialab.MediaLab(
        session, playback_session=playback, stop_playback=stop_playback, on_call_done=done
    )
    await lab.start()
    print(json.dumps({"agi_port": lab.agi_port, "ws_port": lab.ws_port, "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await lab.close()
    manager.close()
    report.close()
    return 0


# ---- the driver ---------------------------------------------------------------------------------------


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """(time, Asterisk CPU s, server CPU s, server RSS MB, machine busy s) every 0.2 s."""

    def __init__(self, asterisk_pid: int, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.pids = (asterisk_pid, server_pid)
        self.samples: list[tuple[float, float, float, float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            ast, srv = self.pids
            self.samples.append((time.time(), cpu(ast), cpu(srv), rss_mb(srv), machine_busy()))
            self.halt.wait(0.2)

    def between(self, start: float, end: float) -> tuple[float, float, float, float] | None:
        """(seconds, Asterisk CPU s, server CPU s, machine busy s) between the samples closest inside
        [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        return last[0] - first[0], last[1] - first[1], last[2] - first[2], last[4] - first[4]


@dataclass
class Figures:
    path: str
    calls: int
    completed: int = 0  # calls whose media part ran and ended as planned
    window_s: float = 0.0
    asterisk_cpu_pct_per_call: float = 0.0
    server_cpu_pct_per_call: float = 0.0
    asterisk_cpu_pct: float = 0.0
    server_cpu_pct: float = 0.0
    server_rss_mb: float = 0.0  # the server process's RSS (it never shrinks: a high-water mark of the run)
    caller_frames_per_s: float = 0.0
    barge_p50_ms: float = 0.0
    barge_p95_ms: float = 0.0
    barge_max_ms: float = 0.0
    barge_measured: int = 0
    last_packet_p50_ms: float = 0.0  # the last prompt packet's arrival after the stop (< 0: before it)
    lead_ms: float = 0.0  # AudioSocket: audio already sent at the stop (the phone still plays it)
    pacer_late_p95_ms: float = 0.0
    pacer_late_max_ms: float = 0.0
    prompts_moved_per_call: float = 0.0  # AudioSocket: ticks so late the pacer moved the prompt (a gap)
    sipp_failed: int = 0
    sipp_cpu_pct: float = 0.0  # the load generator, over its whole run
    machine_busy_pct: float = 0.0  # every process on the machine, over the window (200 = both cores)
    notes: list[str] = field(default_factory=list)


def heard_until(packets: list[tuple[float, bool]], stopped: float, ahead_ms: float) -> tuple[float, float]:
    """When the caller stops hearing the prompt, and when its last sound packet arrived. The later of: the
    last sound packet's arrival plus its 20 ms, and the end of the audio the server had already sent
    ahead of its time at the stop (`ahead_ms`: the AudioSocket pacer's lead, which the phone plays on
    after the last packet; 0 where Asterisk paces). The phone's own jitter buffer adds the same on every
    path and is left out."""
    last = max((t for t, loud in packets if loud), default=0.0)
    return max(last + 0.020, stopped + ahead_ms / 1000), last


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def make_audio(sounds: Path, work: Path) -> tuple[Path, Path]:
    """The prompt (40 s of the rendered Russian menu prompts back to back) and the caller's voice (the
    loyalty line's prompts, 60 s, as an RTP pcap)."""

    def concat(folder: Path, seconds: float, target: Path) -> Path:
        pcm = b""
        for wav_file in sorted(folder.glob("*.*.wav")):  # the hashed renders (one per text)
            try:
                pcm += wav_pcm(wav_file)
            except (ValueError, EOFError, wave.Error):
                continue
            if len(pcm) >= seconds * 16000:
                break
        if len(pcm) < seconds * 16000:
            raise SystemExit(f"not enough rendered audio in {folder}: run .venv/bin/ivr prompts render")
        with wave.open(str(target), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(pcm[: int(seconds * 16000)])
        return target

    prompt = concat(sounds / "ru" / "operator", 40.0, work / "bench-prompt.wav")
    voice = concat(sounds / "ru" / "loyalty", 60.0, work / "caller-voice.wav")
    pcap = work / "caller-voice.pcap"
    wav_to_pcap(voice, pcap)
    return prompt, pcap


def run_step(
    line: LocalLine,
    path: str,
    calls: int,
    rate: float,
    server_pid: int,
    control: Path,
    report: Path,
    pcap: Path,
    step_id: int,
    tap_unavailable: str | None,
    keep: Path | None = None,
) -> Figures:
    figures = Figures(path=path, calls=calls)
    stop_after = calls / rate + 6.0
    control.write_text(json.dumps({"step": step_id, "stop_after": stop_after}))
    media_port = free_udp_port()
    tap = None if tap_unavailable else RtpTap(media_port)
    if tap:
        tap.start()
    ast_pid = asterisk.running_pid(asterisk.asterisk_paths(line.settings)) or 0
    sampler = Sampler(ast_pid, server_pid)
    sampler.start()
    plan = LoadPlan(
        number=medialab.EXTENSIONS[path],
        calls=[PlannedCall(f"7999{step_id:03d}{n:04d}") for n in range(calls)],
        concurrency=calls,
        rate=rate,
        first_wait=stop_after + TAIL + 20,  # the line hangs up first
        hold=1.0,
        timeout=stop_after + 90,
        audio_pcap=pcap,
        media_port=media_port,
    )
    try:
        result = asyncio.run(run_load(line.settings, plan))
    finally:
        time.sleep(1.0)
        sampler.halt.set()
        sampler.join()
        if tap:
            tap.stop()
    figures.sipp_failed = result.sipp_failed
    figures.sipp_cpu_pct = round(100 * result.sipp_cpu / max(0.1, result.wall), 1)
    if result.sipp_errors and result.sipp_failed:
        figures.notes.append("sipp: " + result.sipp_errors.strip().splitlines()[-1][:200])
    records = [r for r in map(json.loads, report.read_text().splitlines()) if r.get("step") == step_id]
    good = [
        r for r in records if "stopped" in r and not r.get("errors") and r.get("exec_result") in (0, None)
    ]
    figures.completed = len(good)
    if len(records) < calls:
        figures.notes.append(f"{calls - len(records)} calls never reached the lab")
    bad = [r for r in records if r not in good]
    if bad:
        figures.notes.append(f"{len(bad)} calls went wrong, e.g. {bad[0].get('errors') or bad[0]}")
    if not good:
        return figures
    start = max(r["connected"] for r in good) + 0.3
    end = min(r["stopped"] for r in good) - 0.1
    window = sampler.between(start, end)
    if window is None or window[0] < 1.0:
        figures.notes.append("no window with every call in its media part")
    else:
        seconds, ast_cpu, srv_cpu, busy = window
        figures.machine_busy_pct = round(100 * busy / seconds, 1)
        figures.window_s = round(seconds, 1)
        figures.asterisk_cpu_pct = round(100 * ast_cpu / seconds, 1)
        figures.server_cpu_pct = round(100 * srv_cpu / seconds, 1)
        figures.asterisk_cpu_pct_per_call = round(figures.asterisk_cpu_pct / calls, 3)
        figures.server_cpu_pct_per_call = round(figures.server_cpu_pct / calls, 3)
        rss = [s[3] for s in sampler.samples if start <= s[0] <= end]
        figures.server_rss_mb = round(max(rss), 1) if rss else 0.0
    if path != "playback":
        rates = [r["frames_in"] / max(0.1, r["media_seconds"]) for r in good]
        figures.caller_frames_per_s = round(statistics.mean(rates), 1)
    if path == "audiosocket":
        figures.lead_ms = round(statistics.mean(r["unplayed_ms"] for r in good), 1)
        figures.pacer_late_p95_ms = round(max(r["pacer_late_p95_ms"] for r in good), 1)
        figures.pacer_late_max_ms = round(max(r["pacer_late_max_ms"] for r in good), 1)
        figures.prompts_moved_per_call = round(max(r["pacer_reanchored"] for r in good) / calls, 2)
    if tap:
        delays, arrivals = [], []
        for r in good:
            port = int(str(r["rtp_local"]).rsplit(":", 1)[-1] or 0)
            packets = tap.of(port)
            if not any(loud and t < r["stopped"] for t, loud in packets):
                continue  # the prompt never reached this caller: not a barge-in to measure
            until, last_arrival = heard_until(packets, r["stopped"], r["unplayed_ms"])
            if keep is not None:  # the packets around the stop, for a closer look
                near = [
                    (round(t - r["stopped"], 4), flag) for t, flag in packets if abs(t - r["stopped"]) < 2
                ]
                with (keep / f"tap-step{step_id}.jsonl").open("a") as fh:
                    fh.write(json.dumps({"port": port, "stopped": r["stopped"], "packets": near}) + "\n")
            delays.append(1000 * (until - r["stopped"]))
            arrivals.append(1000 * (last_arrival - r["stopped"]))
        if arrivals:
            figures.last_packet_p50_ms = round(pct(arrivals, 0.5), 1)
        figures.barge_measured = len(delays)
        if len(delays) < len(good):
            seen = {port: len(tap.of(port)) for port in list(tap.packets)[:5]}
            figures.notes.append(
                f"tap: {len(good) - len(delays)} calls' prompts not seen at the caller "
                f"(packets by source port: {seen}; other packets {tap.other})"
            )
        if delays:
            figures.barge_p50_ms = round(pct(delays, 0.5), 1)
            figures.barge_p95_ms = round(pct(delays, 0.95), 1)
            figures.barge_max_ms = round(max(delays), 1)
    return figures


COLUMNS = (
    ("path", "path", "{}"),
    ("calls", "calls", "{}"),
    ("ok", "completed", "{}"),
    ("window s", "window_s", "{:.1f}"),
    ("Asterisk %/call", "asterisk_cpu_pct_per_call", "{:.3f}"),
    ("server %/call", "server_cpu_pct_per_call", "{:.3f}"),
    ("Asterisk %", "asterisk_cpu_pct", "{:.1f}"),
    ("server %", "server_cpu_pct", "{:.1f}"),
    ("machine %", "machine_busy_pct", "{:.0f}"),
    ("sipp %", "sipp_cpu_pct", "{:.0f}"),
    ("caller fr/s", "caller_frames_per_s", "{:.1f}"),
    ("barge p50 ms", "barge_p50_ms", "{:.1f}"),
    ("barge p95 ms", "barge_p95_ms", "{:.1f}"),
    ("barge max ms", "barge_max_ms", "{:.1f}"),
    ("last packet p50 ms", "last_packet_p50_ms", "{:.1f}"),
    ("lead ms", "lead_ms", "{:.0f}"),
    ("tick late p95 ms", "pacer_late_p95_ms", "{:.1f}"),
    ("tick late max ms", "pacer_late_max_ms", "{:.0f}"),
    ("moved/call", "prompts_moved_per_call", "{:.2f}"),
)


def table(rows: list[Figures]) -> str:
    head = "| " + " | ".join(title for title, _k, _f in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, rule]
    for row in rows:
        values = asdict(row)
        lines.append("| " + " | ".join(fmt.format(values[key]) for _t, key, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    inner = sub.add_parser("serve", help="(internal) the lab's servers, run as a child process")
    inner.add_argument("--prompt", type=Path, required=True)
    inner.add_argument("--control", type=Path, required=True)
    inner.add_argument("--report", type=Path, required=True)
    parser.add_argument("--steps", default="10,50,100", help="calls at once, per step (comma-separated)")
    parser.add_argument("--paths", default=",".join(PATHS), help="audiosocket, websocket, playback")
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", type=Path, help="copy the work folder (logs, per-call records) here")
    args = parser.parse_args()
    if args.command == "serve":
        return serve(args)

    steps = [int(s) for s in args.steps.split(",")]
    paths = args.paths.split(",")
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    tap_reason = unavailable()
    if tap_reason:
        print(f"barge-in delay not measured: {tap_reason}", flush=True)
    done: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="ivr-bench-media-") as tmp:
        work = Path(tmp)
        line = LocalLine.prepare(
            work / "var", log_level="WARNING", rtp_ports=4 * max(steps) + 200, max_calls=2 * max(steps)
        )
        prompt, pcap = make_audio(line.settings.sounds, work)
        control, report = work / "control.json", work / "report.jsonl"
        control.write_text(json.dumps({"step": 0, "stop_after": 5.0}))
        report.touch()
        asterisk.start(line.settings, env=line.env)
        server = subprocess.Popen(
            [sys.executable, __file__, "serve", "--prompt", str(prompt), "--control", str(control),
             "--report", str(report)],
            env=line.env, stdout=subprocess.PIPE, stderr=(work / "serve.stderr").open("wb"), cwd=ROOT,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            ports = json.loads(server.stdout.readline() or "{}")
            if not ports:
                raise SystemExit("the lab's server did not start:\n" + (work / "serve.stderr").read_text())
            medialab.install(line.settings, agi_port=ports["agi_port"], ws_port=ports["ws_port"])
            step_id = 0
            for path in paths:
                for calls in steps:
                    step_id += 1
                    figures = run_step(
                        line,
                        path,
                        calls,
                        args.rate,
                        server.pid,
                        control,
                        report,
                        pcap,
                        step_id,
                        tap_reason,
                        work if args.keep else None,
                    )
                    done.append(figures)
                    print(table([figures]).splitlines()[-1], flush=True)
                    for note in figures.notes:
                        print(f"  {path} at {calls}: {note}", flush=True)
                    time.sleep(2.0)  # the last calls' hang-ups settle before the next step
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            asterisk.stop(line.settings)
            if args.keep:
                shutil.copytree(
                    work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.sqlite3")
                )
    print(f"\n{args.rate:g} new calls/s; CPU in % of one core, over the window with every call up\n")
    print(table(done))
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in done], indent=2) + "\n")
    return 0 if all(f.completed == f.calls for f in done) else 1


if __name__ == "__main__":
    sys.exit(main())
