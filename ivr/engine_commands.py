"""CLI: `ivr validate`, `ivr tree graph|schema`, `ivr call` (the console simulator and scenarios)."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.engine.actions import ActionCatalog
from ivr.engine.commands import PromptRef
from ivr.engine.tree import Tree, successors

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check prompt trees (structure, meaning, texts, audio)")
    p.add_argument("paths", nargs="*", type=Path, help="tree files (default: every tree under prompts/)")
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


def action_catalog() -> ActionCatalog | None:
    try:
        from ivr.app.actions import catalog
    except ImportError:
        log.warning("ivr.app.actions is not importable: action names are not checked")
        return None
    return catalog()


# ---- validate -----------------------------------------------------------------------------------------


def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts.trees import TreeInvalid, load_tree
    from ivr.prompts.validate import prompt_keys

    paths = args.paths or sorted(settings.prompts.glob("*.yaml"))
    if not paths:
        print(f"no trees under {settings.prompts}", file=sys.stderr)
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
        problems = [] if args.no_audio else audio_problems(settings, tree, prompt_keys(tree))
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
    if not args.paths:  # everything: the service-number table too
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


def audio_problems(settings: Settings, tree: Tree, keys: set[str]) -> list[str]:
    try:
        from ivr.prompts.render import check_prompts
    except ImportError:
        return []
    try:
        result = check_prompts(settings, tree.line, {lang: keys for lang in tree.settings.languages})
    except Exception as exc:  # the audio check must not hide the tree check's verdict
        log.warning("prompt audio check failed: %s", exc)
        return [f"audio check failed: {exc}"]
    return list(result)


# ---- tree graph / schema ----------------------------------------------------------------------------


def tree_dot(tree: Tree) -> str:
    shapes = {
        "Menu": "box",
        "CollectDigits": "parallelogram",
        "Confirm": "diamond",
        "Action": "component",
        "TransferNode": "doubleoctagon",
        "HangUpNode": "doublecircle",
        "If": "hexagon",
        "Choose": "box3d",
    }
    out = [f'digraph "{tree.line}" {{', "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for node in tree.nodes.values():
        kind = type(node).__name__
        detail = getattr(node, "name", "") or getattr(node, "queue", "") or ""
        label = f"{node.id}\\n{kind}{': ' + detail if detail else ''}"
        out.append(f'  "{node.id}" [shape={shapes.get(kind, "ellipse")}, label="{label}"];')
        for edge_label, target in successors(node):
            out.append(f'  "{node.id}" -> "{target}" [label="{edge_label.replace(chr(34), "")}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def cmd_graph(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.prompts.trees import TreeInvalid, load_tree

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
    from ivr.prompts.schema import schema_json

    sys.stdout.write(schema_json())
    return 0


# ---- call -------------------------------------------------------------------------------------------


def prompt_describer(settings: Settings) -> Callable[[str, str, PromptRef], str]:
    """(line, lang, ref) -> what the caller hears, as text (PromptVoice), or the key and values."""
    voice: Any = None
    try:
        from ivr.prompts.voice import PromptVoice

        voice = PromptVoice(settings)
    except Exception as exc:
        log.warning("prompt texts unavailable (%s): showing prompt keys", exc)

    def describe(line: str, lang: str, ref: PromptRef) -> str:
        if voice is not None:
            try:
                return str(voice.text(line, lang, ref))
            except Exception as exc:
                log.warning("no text for %s/%s/%s: %s", line, lang, ref.key, exc)
        values = ", ".join(f"{k}={v}" for k, v in ref.values.items())
        return f"<{ref.key}{' ' + values if values else ''}>"

    return describe


def scenario_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.yaml")) if path.is_dir() else [path])
    return files


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from ivr.app.bootstrap import build_app
    from ivr.engine.events import CallStarted
    from ivr.telephony.console import ConsoleChannel
    from ivr.telephony.scenario import DEFAULT_DID, load_scenario, run_scenario

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
        ended = asyncio.run(session.run())
        print(f"call ended: {ended.result} {ended.queue}".rstrip())
        return 0
    finally:
        app.close()
