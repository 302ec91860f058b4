"""The `ivr` command. Each area registers its own subcommands (see COMMAND_MODULES), so the CLI grows
without every area editing this file."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ivr.config import StartupRefused, load_settings
from ivr.logs import setup_logging

# Each module has `register(subparsers)`, which adds parsers whose defaults include `func(settings, args)`.
COMMAND_MODULES = (
    "ivr.telephony.commands",  # serve, agi, dial, asterisk
    "ivr.engine_commands",  # call (simulator), validate, tree
    "ivr.db.commands",  # db init / seed / migrate
    "ivr.prompts.commands",  # prompts render / list
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="IVR self-service line")
    parser.add_argument("--config", help="settings file (default: ivr.toml in IVR_HOME)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite under var/)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # an area not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = load_settings(args.config, database_url=args.database_url, log_level=args.log_level)
    setup_logging(settings, to_stderr=True)
    try:
        result = args.func(settings, args)
    except StartupRefused as exc:
        print(f"ivr {args.command}: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
