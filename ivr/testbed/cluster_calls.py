"""Calls into a local cluster (ivr.testbed.cluster) through Kamailio: ONE sipp process in the callers'
namespace places every call at a set rate, and writes a line per call event to its log: when the INVITE
left, when and by which node it was answered (the address in the 200 OK's Contact), and whether it ended
well (our BYE or the line's BYE answered). So a test knows, for each call, where it landed and whether it
failed, without an AMI connection to every node.

Requests inside a call follow the Record-Route set (sipp's [routes] and [next_url]), as a carrier's do.
"""

from __future__ import annotations

import asyncio
import csv
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ivr.testbed.cluster import SIP_PORT, ClusterPlan, in_ns
from ivr.testbed.dialer import DialError, ok_to_their_bye, pause_step, sdp_offer, sipp_process

KEYS = frozenset("0123456789*#,")


def key_shape(keys: str) -> list[tuple[int, int]]:
    """(keys, pauses) per run: "123,,45#" -> [(3, 2), (3, 0)]. A `,` waits one extra second."""
    shape: list[tuple[int, int]] = []
    for run in re.findall(r"[^,]+,*|,+", keys):
        digits = len(run.rstrip(","))
        shape.append((digits, len(run) - digits))
    return shape


def key_runs(keys: str) -> list[str]:
    return [run for run in re.split(r",+", keys) if run]


@dataclass(frozen=True)
class ClusterCall:
    caller: str  # the caller's number, in P-Asserted-Identity
    keys: str = ""  # sent `first_wait` s after the answer, as RFC 2833 events; `,` waits a second

    def __post_init__(self) -> None:
        if set(self.keys) - KEYS or not self.caller.isdigit():
            raise DialError(f"bad call {self.caller!r} {self.keys!r}")


@dataclass
class CallTrace:
    index: int  # 1-based, in the order placed
    call: ClusterCall
    started: float | None = None  # seconds since sipp started, when the INVITE left
    answered: float | None = None
    node: str = ""  # the answering node's address
    ended: float | None = None
    ok: bool = False


@dataclass
class CallBatch:
    traces: list[CallTrace]
    began: float  # time.monotonic() when sipp was started
    wall: float
    sipp_exit: int
    errors: str = ""
    notes: list[str] = field(default_factory=list)

    def at(self, trace_seconds: float) -> float:
        """A trace time as time.monotonic()."""
        return self.began + trace_seconds

    def by_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trace in self.traces:
            if trace.node:
                counts[trace.node] = counts.get(trace.node, 0) + 1
        return counts


def scenario(
    plan: ClusterPlan,
    number: str,
    *,
    first_wait: float,
    gap: float,
    hold: float,
    shape: list[tuple[int, int]],
) -> str:
    ruri = f"sip:{number}@{plan.proxy_ip}:{SIP_PORT}"
    sender = '"caller" <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]'
    via = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
    steps = [pause_step(int(first_wait * 1000), "k0")]
    field = 1
    for n, (digits, pauses) in enumerate(shape, start=1):
        if digits:
            # play_dtmf sends the row's keys as RFC 2833 events (payload 96, fixed in sipp), 200 ms each
            steps.append(f'  <nop><action><exec play_dtmf="[field{field}]"/></action></nop>')
            field += 1
        steps.append(pause_step(digits * (200 + int(gap * 1000)) + 1000 * pauses, f"k{n}"))
    steps.append(pause_step(int(hold * 1000), "ourbye"))
    body = "\n".join(steps)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cluster call {number}">
  <nop><action><log message="[call_number];start;[clock_tick]"/></action></nop>
  <send retrans="500">
    <![CDATA[
      INVITE {ruri} SIP/2.0
      {via}
      From: {sender}
      To: <{ruri}>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      P-Asserted-Identity: <sip:[field0]@[local_ip]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{sdp_offer(96, "caller")}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true">
    <action>
      <ereg regexp="[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+" search_in="hdr" header="Contact:" assign_to="node"/>
      <log message="[call_number];answered;[clock_tick];[$node]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      {via}
      From: {sender}
      To: <{ruri}>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{body}
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      {via}
      From: {sender}
      To: <{ruri}>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true">
    <action><log message="[call_number];ok;[clock_tick]"/></action>
  </recv>
  <nop next="end"/>
  <label id="theirbye"/>
{ok_to_their_bye("[field0]")}
  <nop><action><log message="[call_number];ok;[clock_tick]"/></action></nop>
  <label id="end"/>
</scenario>
"""


def read_traces(log_file: Path, calls: Sequence[ClusterCall]) -> list[CallTrace]:
    traces = [CallTrace(index=i + 1, call=call) for i, call in enumerate(calls)]
    try:
        rows = log_file.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return traces
    for row in rows:
        parts = row.strip().split(";")
        if len(parts) < 3 or not parts[0].isdigit() or not parts[2].isdigit():
            continue
        index, event, tick = int(parts[0]), parts[1], int(parts[2]) / 1000.0
        if not 1 <= index <= len(traces):
            continue
        trace = traces[index - 1]
        if event == "start":
            trace.started = tick
        elif event == "answered":
            trace.answered = tick
            trace.node = parts[3] if len(parts) > 3 else ""
        elif event == "ok":
            trace.ended = tick
            trace.ok = True
    return traces


async def place_calls(
    plan: ClusterPlan,
    calls: Sequence[ClusterCall],
    workdir: Path,
    *,
    number: str = "0505",
    rate: float = 5.0,
    concurrency: int = 100,
    first_wait: float = 3.0,
    gap: float = 0.3,
    hold: float = 3.0,
    timeout: float = 180.0,
    sip_port: int = 5070,
    media_port: int = 16000,
) -> CallBatch:
    """Place `calls` through Kamailio from the callers' namespace; one trace per call. Several batches at
    once need their own `sip_port` and `media_port` (the namespace has no other users)."""
    binary = shutil.which("sipp")
    if binary is None:
        raise DialError("sipp is not installed (Debian package sip-tester; scripts/setup.sh installs it)")
    if not calls:
        raise DialError("no calls planned")
    workdir.mkdir(parents=True, exist_ok=True)
    shape = key_shape(calls[0].keys)
    if any(key_shape(c.keys) != shape for c in calls):
        raise DialError("the calls of one batch need keys of the same shape (runs of keys and pauses)")
    xml = scenario(plan, number, first_wait=first_wait, gap=gap, hold=hold, shape=shape)
    (workdir / "cluster.xml").write_text(xml, encoding="ascii")
    with (workdir / "calls.csv").open("w", encoding="ascii", newline="") as fh:
        fh.write("SEQUENTIAL\n")
        writer = csv.writer(fh, delimiter=";", lineterminator="\n")
        for call in calls:
            writer.writerow([call.caller, *key_runs(call.keys)])
    log_file = workdir / "calls.log"
    argv = in_ns(
        plan.ns("callers"), binary, f"{plan.proxy_ip}:{SIP_PORT}",
        "-sf", str(workdir / "cluster.xml"), "-inf", str(workdir / "calls.csv"),
        "-m", str(len(calls)), "-l", str(concurrency), "-r", f"{rate:g}", "-rp", "1000",
        "-i", plan.callers_ip, "-p", str(sip_port), "-mp", str(media_port),
        "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_socket", str(max(64, 4 * concurrency)),
        "-trace_logs", "-log_file", str(log_file),
        "-trace_err", "-error_file", str(workdir / "errors.log"), "-nostdin",
    )  # fmt: skip
    began = time.monotonic()
    code, errors = await sipp_process(
        argv, workdir, deadline=timeout + 60, error_log=workdir / "errors.log", tail=3000
    )
    wall = time.monotonic() - began
    if code == 0:
        errors = ""  # sipp's "errors" of a good run are the pauses' receive timeouts
    return CallBatch(
        traces=read_traces(log_file, calls), began=began, wall=wall, sipp_exit=code, errors=errors.strip()
    )


def run(plan: ClusterPlan, calls: Sequence[ClusterCall], workdir: Path, **options: object) -> CallBatch:
    """place_calls from synchronous code."""
    return asyncio.run(place_calls(plan, calls, workdir, **options))  # type: ignore[arg-type]
