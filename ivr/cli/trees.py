"""CLI: `ivr validate` and `ivr tree graph|schema`: support staff check and draw the menus."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.engine.actions import ActionCatalog
from ivr.engine.tree import Tree

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check prompt trees (structure, meaning, texts, audio)")
    p.add_argument(
        "paths", nargs="*", type=Path, help="tree files or folders (default: every tree in prompts/)"
    )
    p.add_argument("--strict-audio", action="store_true", help="missing or stale prompt audio is an error")
    p.add_argument("--no-audio", action="store_true", help="skip the prompt audio check")
    p.add_argument("-v", "--verbose", action="store_true", help="list every audio problem")
    p.set_defaults(func=cmd_validate)

    t = sub.add_parser("tree", help="prompt tree tools")
    tsub = t.add_subparsers(dest="tree_command", metavar="TREE_COMMAND")
    tsub.required = True
    g = tsub.add_parser("graph", help="draw a line's tree with Graphviz")
    g.add_argument("line")
    g.add_argument("-o", "--output", type=Path, help="out.svg, out.png or out.dot (default: dot to stdout)")
    g.set_defaults(func=cmd_graph)
    s = tsub.add_parser("schema", help="print the tree JSON Schema")
    s.set_defaults(func=cmd_schema)


def action_catalog() -> ActionCatalog:
    from ivr.app.actions import catalog

    return catalog()


def tree_files(paths: list[Path]) -> list[Path]:
    """The tree files named: a file as it is, a folder as the trees directly in it (`ivr validate prompts`;
    texts and the service-number table live in sub-folders)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return files


# ---- validate -----------------------------------------------------------------------------------------


def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.app.queueing import queue_prompt_keys
    from ivr.app.queues import queue_problems, served_queues
    from ivr.trees import TreeInvalid, load_tree
    from ivr.trees.checks import prompt_keys

    paths = tree_files(args.paths or [settings.prompts])
    if not paths:
        where = ", ".join(map(str, args.paths or [settings.prompts]))
        print(f"no trees in {where}", file=sys.stderr)
        return 1
    catalog = action_catalog()
    failed = False
    for path in paths:
        try:
            tree = load_tree(path, catalog)
        except TreeInvalid as exc:
            failed = True
            for error in exc.errors:
                print(error)
            continue
        except OSError as exc:
            failed = True
            print(f"{path}:1: io: {exc}")
            continue
        for lineno, message in queue_problems(tree, served_queues()):
            failed = True
            print(f"{path}:{lineno}: error: queue: {message}")
        keys = prompt_keys(tree) | queue_prompt_keys(settings.callbacks)  # the queue dialog speaks too
        problems = [] if args.no_audio else audio_problems(settings, tree, keys)
        level = "error" if args.strict_audio else "warning"
        shown = problems if args.strict_audio or args.verbose else problems[:5]
        for problem in shown:
            print(f"{path}: {level}: audio: {problem}")
        if len(shown) < len(problems):
            print(f"{path}: {level}: audio: ... and {len(problems) - len(shown)} more (--verbose lists all)")
        failed = failed or (args.strict_audio and bool(problems))
        print(
            f"{path}: ok: line {tree.line} version {tree.version}, {len(tree.nodes)} nodes", file=sys.stderr
        )
        for note in speech_notes(settings, tree):
            print(f"{path}: note: {note}", file=sys.stderr)
    whole = [settings.prompts.resolve()]
    if not args.paths or any(p.is_dir() and p.resolve() in whole for p in args.paths):  # the number table too
        failed = validate_service_numbers(settings) or failed
    return 1 if failed else 0


def validate_service_numbers(settings: Settings) -> bool:
    """Check prompts/numbers/service_numbers.yaml (ivr.app.lines): readable, and every line it names has
    a tree. Prints problems as `file:1: service_numbers: ...`; True when there is any."""
    from ivr.app.lines import FILE_NAME, LinesFileError, load_service_numbers

    path = settings.prompts / FILE_NAME
    try:
        table = load_service_numbers(settings.prompts)
    except LinesFileError as exc:
        print(f"{path}:1: service_numbers: {exc}")
        return True
    trees = {p.stem for p in settings.prompts.glob("*.yaml")}
    missing = sorted({n.line for n in table.numbers.values()} - trees)
    for line in missing:
        print(f"{path}:1: service_numbers: line {line} has no tree ({line}.yaml)")
    if not missing:
        print(f"{path}: ok: {len(table.numbers)} service numbers", file=sys.stderr)
    return bool(missing)


def speech_notes(settings: Settings, tree: Tree) -> list[str]:
    """A note per language of the line without a speech model (it runs keys-only there): not an error, a
    line works without speech. Only looks for the directories (ivr.speech.model); loads nothing."""
    from ivr.speech.model import SpeechUnavailable, model_dir_for

    notes = []
    for language in tree.settings.languages:
        try:
            found = model_dir_for(settings, language)
        except SpeechUnavailable as exc:  # a setting naming no model: the server will say so too
            notes.append(f"{tree.line}: {language}: speech model: {exc}")
            continue
        if found is None:
            notes.append(
                f"{tree.line}: {language}: no speech model, keys only (ivr models install {language})"
            )
    return notes


def audio_problems(settings: Settings, tree: Tree, keys: set[str]) -> list[str]:
    from ivr.prompts.render import check_prompts

    try:
        result = check_prompts(settings, tree.line, {lang: keys for lang in tree.settings.languages})
    except Exception as exc:  # the audio check must not hide the tree check's verdict
        log.warning("prompt audio check failed: %s", exc)
        return [f"audio check failed: {exc}"]
    return list(result)


# ---- tree graph / schema ----------------------------------------------------------------------------


def cmd_graph(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.trees import TreeInvalid, load_tree
    from ivr.trees.graph import tree_dot

    try:
        tree = load_tree(settings.prompts / f"{args.line}.yaml", action_catalog())
    except (TreeInvalid, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    dot = tree_dot(tree)
    if args.output is None or args.output.suffix == ".dot":
        if args.output is None:
            sys.stdout.write(dot)
        else:
            args.output.write_text(dot, encoding="utf-8")
        return 0
    fmt = args.output.suffix.lstrip(".") or "svg"
    done = subprocess.run(["dot", f"-T{fmt}", "-o", str(args.output)], input=dot.encode(), check=False)
    return done.returncode


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.trees.schema import schema_json

    sys.stdout.write(schema_json())
    return 0
