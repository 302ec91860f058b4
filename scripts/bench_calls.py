"""Calls benchmark: N concurrent sipp calls through Asterisk and the FastAGI server, on loopback.

Starts a private line (ivr.testbed.localline: temp var dir, demo database, own ports), places N calls
at once (each: 0505, key 1 = balance, then hang up), and reports successes, wall time and the CPU used by
Asterisk and by `ivr serve` (from /proc, user+system).

    .venv/bin/python scripts/bench_calls.py --calls 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from ivr.telephony.ami import CallWatcher
from ivr.testbed import asterisk
from ivr.testbed.dialer import dial
from ivr.testbed.localline import LocalLine

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def burst(line: LocalLine, calls: int, caller: str, first_wait: float) -> tuple[int, list[float]]:
    watcher = CallWatcher(line.settings)
    await watcher.connect()
    try:
        results = await asyncio.gather(
            *(
                dial(
                    line.settings,
                    "0505",
                    caller=caller,
                    keys="1",
                    first_wait=first_wait,
                    wait=3.0,
                    watcher=watcher,
                )
                for _ in range(calls)
            )
        )
    finally:
        await watcher.close()
    ok = [
        r
        for r in results
        if r.sipp_exit == 0
        and r.record is not None
        and r.record.variables.get("IVR_LAST_ACTION") == "balance.report:ok"
    ]
    for failed in [r for r in results if r not in ok][:3]:
        print("failed:", failed.describe())
    return len(ok), [r.seconds for r in results]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls (bounded: at most 200)")
    parser.add_argument("--from", dest="caller", default="79161234567")
    parser.add_argument(
        "--first-wait", type=float, default=4.0, help="seconds before the key (the menu must be playing)"
    )
    args = parser.parse_args()
    calls = max(1, min(args.calls, 200))
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        line = LocalLine.prepare(Path(tmp) / "var", log_level="WARNING")
        line.start()
        try:
            assert line.server is not None
            ast_pid = asterisk.running_pid(asterisk.asterisk_paths(line.settings))
            assert ast_pid is not None
            before = (cpu_seconds(ast_pid), cpu_seconds(line.server.pid))
            began = time.monotonic()
            ok, seconds = asyncio.run(burst(line, calls, args.caller, args.first_wait))
            wall = time.monotonic() - began
            after = (cpu_seconds(ast_pid), cpu_seconds(line.server.pid))
        finally:
            line.stop()
    ast_cpu, srv_cpu = after[0] - before[0], after[1] - before[1]
    print(f"calls: {calls} concurrent, {ok} succeeded (balance.report ran, call ended normally)")
    print(f"wall: {wall:.1f} s for the burst; per call {min(seconds):.1f}..{max(seconds):.1f} s")
    print(f"asterisk boot: {line.asterisk_boot_seconds:.2f} s")
    print(
        f"CPU: asterisk {ast_cpu:.2f} s ({100 * ast_cpu / wall:.0f} % of a core), "
        f"ivr serve {srv_cpu:.2f} s ({100 * srv_cpu / wall:.0f} % of a core, "
        f"{1000 * srv_cpu / calls:.0f} ms per call)"
    )
    return 0 if ok == calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
