"""CLI: `ivr call`, the console simulator: a call on the terminal, or scenario files replayed against the
real engine, actions and demo database."""

from __future__ import annotations

import argparse
import logging
import uuid
from pathlib import Path
from typing import Any

from ivr.config import Settings

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    c = sub.add_parser("call", help="simulate a call on the console, or run scenario files")
    c.add_argument("line")
    c.add_argument("--from", dest="caller", default=None, help="caller id (digits)")
    c.add_argument("--did", default=None, help="the service number dialled (default per line)")
    c.add_argument("--lang", default=None)
    c.add_argument("--roaming", action="store_true")
    c.add_argument("--untrusted", action="store_true", help="caller id not trusted (like the 8-800 numbers)")
    c.add_argument("--scenario", type=Path, nargs="*", help="scenario files or folders to run instead")
    c.add_argument("-v", "--verbose", action="store_true", help="print the transcript of each scenario")
    c.set_defaults(func=cmd_call)


# ---- call -------------------------------------------------------------------------------------------


def scenario_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.yaml")) if path.is_dir() else [path])
    return files


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from ivr.app.bootstrap import build_app
    from ivr.engine.events import CallStarted
    from ivr.testbed.console import ConsoleChannel
    from ivr.testbed.scenario import (
        DEFAULT_DID,
        call_describer,
        load_scenario,
        prompt_describer,
        run_scenario,
    )

    app = build_app(settings)
    describe = prompt_describer(settings)
    try:
        if args.scenario is not None:
            failed = 0
            for path in scenario_files(args.scenario):
                scenario = load_scenario(path)
                outcome = run_scenario(scenario, app, describe)
                print(f"{'PASS' if outcome.ok else 'FAIL'} {path} ({scenario.name})")
                if args.verbose or not outcome.ok:
                    print("\n".join(outcome.transcript.lines))
                for failure in outcome.failures:
                    print(f"  ✗ {failure}")
                failed += 0 if outcome.ok else 1
            return 1 if failed else 0
        did = args.did or DEFAULT_DID.get(args.line, "0505")
        call = CallStarted(
            line=args.line,
            did=did,
            caller_id=args.caller,
            language=args.lang or settings.default_language,
            facts={
                "caller_id_trusted": not (args.untrusted or did.startswith("8800")),
                "roaming": args.roaming,
            },
            call_id=f"console-{uuid.uuid4().hex[:12]}",
        )
        channel = ConsoleChannel(lambda lang, ref: describe(args.line, lang, ref), language=call.language)
        who = args.caller or "withheld"
        print(f"Calling {args.line} ({did}) from {who}. Keys, 'say: ...', empty line = silence.")
        try:
            session = app.session(call, channel)
        except LookupError:  # not a service number (prompts/numbers/service_numbers.yaml) or no tree
            print(f"{did} is not a service number of line {args.line}: the caller would hear the apology")
            return 1
        channel.describe = call_describer(session, channel.describe)
        ended = asyncio.run(session.run())
        print(f"call ended: {ended.result} {ended.queue}".rstrip())
        return 0
    finally:
        app.close()
