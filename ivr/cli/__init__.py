"""The `ivr` command. One module per command group under `ivr/cli/`, each with `register(subparsers)`
(see COMMAND_MODULES), so a new group is a new module and one line here.

Entry points sit above every layer and may import any part of ivr. The command modules import the heavy
parts (SQLAlchemy, the speech model, the server) inside the command functions on purpose: `ivr agi` starts
a process per call, and must not pay for what another command needs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ivr.config import StartupRefused, load_settings
from ivr.logs import setup_logging

# Each module has `register(subparsers)`, which adds parsers whose defaults include `func(settings, args)`.
COMMAND_MODULES = (
    "ivr.cli.serve",  # serve, agi
    "ivr.cli.asterisk",  # asterisk start|stop|status|config|cli, dial
    "ivr.cli.trees",  # validate, tree graph|schema
    "ivr.cli.simulate",  # call (the console simulator and scenario files)
    "ivr.cli.db",  # db init|migrate|downgrade|seed|subscribers|jobs
    "ivr.cli.prompts",  # prompts render|check|list|say
    "ivr.cli.report",  # report (from the call records)
    "ivr.cli.web",  # web (the staff console), staff add|list|passwd|role|disable|enable
    "ivr.cli.models",  # models list|install (speech models per language)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="IVR self-service line")
    parser.add_argument("--config", help="settings file (default: ivr.toml in IVR_HOME)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite under var/)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, database_url=args.database_url, log_level=args.log_level)
    except StartupRefused as exc:  # a misspelt or mistyped setting: the message says which
        print(f"ivr {args.command}: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings, to_stderr=True)
    try:
        result = args.func(settings, args)
    except StartupRefused as exc:
        print(f"ivr {args.command}: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)
