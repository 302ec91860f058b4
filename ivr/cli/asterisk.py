"""CLI: `ivr asterisk start|stop|status|config|cli` (the project-local Asterisk) and `ivr dial` (a scripted
SIP call through it with sipp)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from ivr.config import Settings


def register(sub: Any) -> None:
    dial = sub.add_parser("dial", help="place a scripted call with sipp and print what happened")
    dial.add_argument("number", help="service number, e.g. 0505, +79221110505, 88005553609")
    dial.add_argument("--from", dest="caller", default="", help="caller number (empty: withheld)")
    dial.add_argument("--keys", default="", help="DTMF keys to press; ',' waits a second")
    dial.add_argument("--first-wait", type=float, default=2.0, help="seconds before the first key")
    dial.add_argument("--gap", type=int, default=400, help="milliseconds between keys")
    dial.add_argument("--wait", type=float, default=2.0, help="seconds after the last key before hanging up")
    dial.set_defaults(func=cmd_dial)

    ast = sub.add_parser("asterisk", help="the project-local Asterisk")
    ast_sub = ast.add_subparsers(dest="asterisk_command", metavar="ACTION")
    ast_sub.required = True
    start = ast_sub.add_parser("start", help="render the configuration and start Asterisk in the background")
    start.add_argument("--softphone-callerid", help="caller number of the local softphone endpoint")
    start.set_defaults(func=cmd_asterisk_start)
    stop = ast_sub.add_parser("stop", help="stop the Asterisk started by `start`")
    stop.set_defaults(func=cmd_asterisk_stop)
    status = ast_sub.add_parser("status", help="is it running; channels")
    status.set_defaults(func=cmd_asterisk_status)
    config = ast_sub.add_parser("config", help="render asterisk_conf/ into var/asterisk/etc")
    config.add_argument("--softphone-callerid", help="caller number of the local softphone endpoint")
    config.set_defaults(func=cmd_asterisk_config)
    cli = ast_sub.add_parser(
        "cli", help="run an Asterisk CLI command, e.g. ivr asterisk cli 'core show channels'"
    )
    cli.add_argument("words", nargs="+")
    cli.set_defaults(func=cmd_asterisk_cli)


# ---- dial -------------------------------------------------------------------------------------------


def cmd_dial(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed.dialer import dial

    result = asyncio.run(
        dial(
            settings,
            args.number,
            caller=args.caller,
            keys=args.keys,
            first_wait=args.first_wait,
            gap_ms=args.gap,
            wait=args.wait,
        )
    )
    print(result.describe())
    return 0 if result.sipp_exit == 0 and result.record is not None else 1


# ---- asterisk ---------------------------------------------------------------------------------------


def cmd_asterisk_start(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed import asterisk

    pid, seconds = asterisk.start(settings, softphone_callerid=args.softphone_callerid)
    print(
        f"asterisk running, pid {pid}, fully booted in {seconds:.2f} s; SIP 127.0.0.1:{settings.sip_port}, "
        f"AMI 127.0.0.1:{settings.ami_port}"
    )
    return 0


def cmd_asterisk_stop(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed import asterisk

    began = time.monotonic()
    stopped = asterisk.stop(settings)
    print(f"asterisk stopped in {time.monotonic() - began:.2f} s" if stopped else "asterisk was not running")
    return 0


def cmd_asterisk_status(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed import asterisk

    paths = asterisk.asterisk_paths(settings)
    pid = asterisk.running_pid(paths)
    if pid is None:
        print("asterisk: not running" + ("" if asterisk.installed(settings) else " (not installed)"))
        return 3
    result = asterisk.cli(paths, "core show channels count")
    print(f"asterisk: running, pid {pid}\n{result.stdout.strip()}")
    return 0


def cmd_asterisk_config(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed import asterisk

    paths = asterisk.render_config(settings, softphone_callerid=args.softphone_callerid)
    print(f"rendered {paths.etc}")
    return 0


def cmd_asterisk_cli(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.testbed import asterisk

    result = asterisk.cli(asterisk.asterisk_paths(settings), " ".join(args.words))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode
