"""The floor for scripts/bench_calls.py: the least a FastAGI server can do for the benchmark's call.

No engine, no database, no logging per call: read the AGI header, play the menu's first prompt with every
key as escape digit (again while the caller says nothing, as the line does), take key 1, publish the
channel variable our line publishes after the balance (IVR_LAST_ACTION=balance.report:ok), play one more
prompt, and end with IVR_RESULT=hangup. Whatever our server costs above this is the price of the engine,
the actions and the database.

Plain asyncio streams rather than panoramisk's fast_agi.Application: that one routes on the exact
agi_network_script, and ours carries a query string (did, trust, roaming) that differs per number.

    .venv/bin/python scripts/floor_agi.py --port 4573 --sounds var/sounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

KEYS = "0123456789*#"


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: str) -> int:
    writer.write(text.encode() + b"\n")
    await writer.drain()
    line = (await reader.readline()).decode(errors="replace")
    if not line.startswith("200"):
        return -1
    try:
        return int(line.split("result=", 1)[1].split()[0])
    except (IndexError, ValueError):
        return -1


def serve(menu: str, answer: str, stats: dict[str, int]):  # type: ignore[no-untyped-def]
    async def call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()).strip():  # the AGI header ends with an empty line
                pass
            key = 0
            for _ in range(5):  # as the line's menu: repeated while the caller says nothing
                key = await command(reader, writer, f'STREAM FILE {menu} "{KEYS}"')
                if key == 0:
                    key = await command(reader, writer, "WAIT FOR DIGIT 5000")
                if key != 0:
                    break
            if key == ord("1"):
                await command(reader, writer, 'SET VARIABLE IVR_LAST_ACTION "balance.report:ok"')
                await command(reader, writer, f'STREAM FILE {answer} ""')
                stats["served"] += 1
            await command(reader, writer, 'SET VARIABLE IVR_RESULT "hangup"')
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return call


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sounds", type=Path, required=True, help="rendered prompts (var/sounds)")
    parser.add_argument("--stats-file", type=Path)
    args = parser.parse_args()
    menu = args.sounds / "ru" / "operator" / "main_menu"
    answer = args.sounds / "ru" / "common" / "please_wait"
    stats = {"served": 0}
    server = await asyncio.start_server(serve(str(menu), str(answer), stats), "127.0.0.1", args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if args.stats_file:
        args.stats_file.write_text(json.dumps(stats) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
