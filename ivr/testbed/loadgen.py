"""A load generator that costs less than the line: ONE sipp process places every call.

`ivr.testbed.dialer` runs one sipp per call, which is right for a test that needs each call's own
scenario, but at hundreds of calls the sipp processes cost more CPU than Asterisk and our server together.
Here one sipp process reads an injection file (one row per call: its AMI token, caller number and keys),
places the calls at a set rate up to the asked concurrency, and sends each call's keys as RFC 2833 events
(`play_dtmf`, which takes the keys from the row). Every call's outcome is still checked one by one, through
AMI (`ivr.telephony.ami.CallWatcher`, matched by the token sipp puts in P-Asserted-Identity).

The count asked is the count placed: a plan that cannot be placed (not enough ports, too many for sipp's
open-file limit) is refused with the reason, before any call.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import Settings
from ivr.telephony.ami import CallRecord, CallWatcher
from ivr.testbed.dialer import TESTER, DialError, free_udp_port, pause_step, sipp_process, uac_scenario

KEYS = frozenset("0123456789*#")
# sipp's own sockets, files and threads besides the calls; each call needs a few descriptors at most.
SIPP_FDS_BASE = 64
SIPP_FDS_PER_CALL = 2


class LoadError(DialError):
    """A plan that cannot be placed as asked."""


@dataclass(frozen=True)
class PlannedCall:
    caller: str  # "" = withheld
    keys: str = ""  # digits, * and #; sent `first_wait` s after the answer, `gap` s apart

    def __post_init__(self) -> None:
        bad = set(self.keys) - KEYS
        if bad:
            raise LoadError(f"cannot send keys {''.join(sorted(bad))!r} (only 0-9, * and #)")
        if self.caller and not self.caller.isdigit():
            raise LoadError(f"caller number {self.caller!r} is not digits")


@dataclass
class LoadPlan:
    number: str  # what the callers dial, e.g. "0505" or "*90505" (the stdio AGI route)
    calls: Sequence[PlannedCall]
    concurrency: int  # calls up at once (sipp -l)
    rate: float = 50.0  # new calls per second (sipp -r)
    first_wait: float = 4.0  # seconds from the answer to the first key
    gap: float = 0.4  # seconds between keys
    hold: float = 3.0  # seconds after the last key before the caller hangs up (unless the line did)
    timeout: float = 300.0
    # Where the calls come from, and where the caller's number travels: "pai" (P-Asserted-Identity, as
    # the test endpoint expects) or "from" (the From header, as many carriers send it).
    source_ip: str = "127.0.0.1"
    caller_in: str = "pai"
    # The caller's voice: an RTP pcap (ivr.testbed.rtp_pcap) every call plays from its answer on, and the
    # one UDP port sipp sends and receives every call's media on (None: a free one). The media benchmark
    # (scripts/bench_media.py) watches what reaches that port.
    audio_pcap: Path | None = None
    media_port: int | None = None

    def check(self, fd_limit: int | None = None) -> None:
        """Refuse, with the reason, a plan that would not be placed whole."""
        if not self.calls:
            raise LoadError("no calls planned")
        if self.concurrency < 1:
            raise LoadError("concurrency must be at least 1")
        if self.rate <= 0:
            raise LoadError("the call rate must be positive")
        if self.caller_in not in ("pai", "from"):
            raise LoadError(f"caller_in must be 'pai' or 'from', not {self.caller_in!r}")
        limit = fd_limit if fd_limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        need = SIPP_FDS_BASE + SIPP_FDS_PER_CALL * min(self.concurrency, len(self.calls))
        if need > limit:
            raise LoadError(
                f"{min(self.concurrency, len(self.calls))} concurrent calls need about {need} open files in "
                f"sipp, the limit is {limit} (raise it: ulimit -n)"
            )


@dataclass
class CallOutcome:
    token: str
    planned: PlannedCall
    record: CallRecord | None

    @property
    def seen(self) -> bool:
        return self.record is not None


@dataclass
class LoadResult:
    plan: LoadPlan
    outcomes: list[CallOutcome]
    wall: float  # seconds from sipp's start to its exit
    sipp_exit: int
    sipp_cpu: float  # seconds of CPU (user + system) sipp used
    sipp_successful: int  # calls sipp itself counted as successful (its scenario ran to the end)
    sipp_failed: int
    sipp_errors: str = ""
    notes: list[str] = field(default_factory=list)

    def good(self, check: Callable[[CallRecord], bool]) -> list[CallOutcome]:
        return [o for o in self.outcomes if o.record is not None and check(o.record)]


def _children_cpu_after_wait(before: resource.struct_rusage) -> float:
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def injection_file(path: Path, tokens: Sequence[str], calls: Sequence[PlannedCall]) -> None:
    """sipp's injection file: a SEQUENTIAL header, then `token;caller;keys` per call (in order)."""
    with path.open("w", encoding="ascii", newline="") as fh:
        fh.write("SEQUENTIAL\n")
        writer = csv.writer(fh, delimiter=";", lineterminator="\n")
        for token, call in zip(tokens, calls, strict=True):
            writer.writerow([token, call.caller or "anonymous", call.keys])


def scenario(number: str, sip_port: int, plan: LoadPlan) -> str:
    """One UAC scenario for every call; the row of the injection file fills [field0..2]."""
    keys_ms = int(plan.gap * 1000)
    longest = max(len(c.keys) for c in plan.calls)
    steps = [pause_step(int(plan.first_wait * 1000), "k0")]
    if plan.audio_pcap is not None:  # from the answer on, while the keys wait their turn
        steps.insert(0, f'  <nop><action><exec play_pcap_audio="{plan.audio_pcap}"/></action></nop>')
    if longest:
        # play_dtmf sends the whole field as RFC 2833 events (payload type 96, fixed in sipp: hence the
        # SDP), one key after the other, 200 ms each.
        steps.append('  <nop><action><exec play_dtmf="[field2]"/></action></nop>')
        steps.append(pause_step(longest * (200 + keys_ms), "k1"))
    steps.append(pause_step(int(plan.hold * 1000), "ourbye"))
    if plan.caller_in == "from":  # the number in From (display name = the AMI token), no PAI
        sender, identity = '"[field0]" <sip:[field1]@[local_ip]:[local_port]>', ""
    else:
        sender, identity = TESTER, 'P-Asserted-Identity: "[field0]" <sip:[field1]@127.0.0.1>'
    return uac_scenario(
        f"ivr load {number}",
        f"sip:{number}@127.0.0.1:{sip_port}",
        identity=identity,
        dtmf_payload=96,
        steps="\n".join(steps),
        sender=sender,
    )


def _sipp_counts(stat_file: Path) -> tuple[int, int]:
    """(successful, failed) calls from the last row of sipp's statistics file."""
    try:
        rows = list(csv.reader(stat_file.read_text(errors="replace").splitlines(), delimiter=";"))
    except OSError:
        return 0, 0
    if len(rows) < 2:
        return 0, 0
    header, last = rows[0], rows[-1]

    def column(name: str) -> int:
        try:
            return int(last[header.index(name)])
        except (ValueError, IndexError):
            return 0

    return column("SuccessfulCall(C)"), column("FailedCall(C)")


async def run_load(settings: Settings, plan: LoadPlan, *, watcher: CallWatcher | None = None) -> LoadResult:
    """Place every planned call with one sipp process; return each call's AMI record and sipp's cost."""
    plan.check()
    binary = shutil.which("sipp")
    if binary is None:
        raise LoadError("sipp is not installed (Debian package sip-tester; scripts/setup.sh installs it)")
    tokens = [f"dial-{uuid.uuid4().hex[:12]}" for _ in plan.calls]
    own_watcher = watcher is None
    if watcher is None:
        watcher = CallWatcher(settings)
        await watcher.connect()
    expected = {token: watcher.expect(token) for token in tokens}
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-load-") as tmp:
            work = Path(tmp)
            (work / "load.xml").write_text(scenario(plan.number, settings.sip_port, plan), encoding="ascii")
            injection_file(work / "calls.csv", tokens, plan.calls)
            argv = [
                binary, f"{settings.sip_host}:{settings.sip_port}",
                "-sf", str(work / "load.xml"), "-inf", str(work / "calls.csv"),
                "-m", str(len(plan.calls)), "-l", str(plan.concurrency),
                "-r", f"{plan.rate:g}", "-rp", "1000",
                "-i", plan.source_ip, "-p", str(free_udp_port(plan.source_ip)),
                "-mp", str(plan.media_port or free_udp_port(plan.source_ip)),
                "-timeout", f"{int(plan.timeout)}s", "-timeout_error",
                "-max_socket", str(max(SIPP_FDS_BASE, 4 * plan.concurrency)),
                "-trace_err", "-error_file", str(work / "errors.log"),
                "-trace_stat", "-stf", str(work / "stat.csv"), "-fd", "1",
                "-nostdin",
            ]  # fmt: skip
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.monotonic()
            sipp_exit, errors = await sipp_process(
                argv, work, deadline=plan.timeout + 60, error_log=work / "errors.log", tail=3000
            )
            wall = time.monotonic() - began
            sipp_cpu = _children_cpu_after_wait(before)
            successful, failed = _sipp_counts(work / "stat.csv")
        outcomes: list[CallOutcome] = []
        for token, planned in zip(tokens, plan.calls, strict=True):
            future = expected[token]
            record = future.result() if future.done() and not future.cancelled() else None
            if record is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(record.ended.wait(), 5.0)
            future.cancel()
            outcomes.append(CallOutcome(token=token, planned=planned, record=record))
        return LoadResult(
            plan=plan,
            outcomes=outcomes,
            wall=wall,
            sipp_exit=sipp_exit,
            sipp_cpu=sipp_cpu,
            sipp_successful=successful,
            sipp_failed=failed,
            sipp_errors=errors.strip(),
        )
    finally:
        if own_watcher:
            await watcher.close()
