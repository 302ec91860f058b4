"""Loading prompt trees from YAML: structure check (JSON Schema), model building, meaning check, and the
`TreeStore` that keeps the last good tree of every line and reloads changed files.

YAML is read with YAML 1.2 booleans (only true/false), so `yes:`, `no:`, `on:` stay strings. Every value's
line is remembered, so each error says `file:line`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ivr.engine.actions import ActionCatalog
from ivr.engine.tree import (
    DEFAULT_RETRIES,
    Action,
    AnyNode,
    Branch,
    CallFlow,
    Choice,
    Choose,
    CollectDigits,
    Condition,
    Confirm,
    HangUpNode,
    If,
    LineSettings,
    Menu,
    PromptSpec,
    Retries,
    RetryHandler,
    Return,
    Say,
    SetLanguageNode,
    SetVars,
    TransferNode,
    Tree,
    UniversalKeys,
)
from ivr.prompts.schema import NODE_KINDS, tree_schema
from ivr.prompts.texts import TextCatalog, TextFileError, load_texts

log = logging.getLogger(__name__)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class TreeError:
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code}: {self.message}"


class TreeInvalid(Exception):
    def __init__(self, errors: list[TreeError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.code))
        super().__init__("\n".join(str(e) for e in self.errors))


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_yaml_with_lines(path: Path) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML; return the data and a map from value path to 1-based line. Raises TreeInvalid."""
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        lines: dict[Path_, int] = {}
        data = _construct(loader, root, (), lines, str(path)) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise TreeInvalid([TreeError(str(path), line, "yaml", str(exc.problem or exc))]) from exc
    finally:
        loader.dispose()
    return data, lines


def _construct(loader: _Loader, node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise TreeInvalid(
                    [TreeError(file, key_node.start_mark.line + 1, "duplicate_key", f"{key!r} twice")]
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(loader, value_node, (*path, key), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), lines, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def line_of(lines: Mapping[Path_, int], path: Path_) -> int:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), 1)


# ---- structure ------------------------------------------------------------------------------------


def check_structure(data: Any, lines: Mapping[Path_, int], file: str) -> list[TreeError]:
    schema = tree_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors: list[TreeError] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(err.absolute_path)
        if len(path) == 2 and path[0] == "nodes" and err.validator == "oneOf":
            errors.extend(_node_errors(schema, data["nodes"][path[1]], path, lines, file))
            continue
        where = "/".join(map(str, path)) or "(top)"
        message = err.message
        if err.validator == "oneOf" and path[-2:-1] in (("menu",), ("say",), ("collect",), ("help",)):
            message = "a prompt is a text key or a mapping with `key`"
        errors.append(TreeError(file, line_of(lines, path), "schema", f"{where}: {message}"))
    return errors


def _node_errors(
    schema: dict[str, Any], node: Any, path: Path_, lines: Mapping[Path_, int], file: str
) -> list[TreeError]:
    line = line_of(lines, path)
    if not isinstance(node, dict):
        return [TreeError(file, line, "schema", f"node {path[1]}: a node is a mapping")]
    kinds = [k for k in NODE_KINDS if k in node]
    if len(kinds) > 1 and "say" in kinds:  # `say` is also an attribute of transfer and choose
        kinds.remove("say")
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        return [
            TreeError(
                file,
                line,
                "node_kind",
                f"node {path[1]}: needs exactly one of {', '.join(NODE_KINDS)} ({found})",
            )
        ]
    sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{kinds[0]}"}
    out = []
    for err in jsonschema.Draft202012Validator(sub).iter_errors(node):
        full = (*path, *err.absolute_path)
        where = "/".join(map(str, full[1:]))
        out.append(TreeError(file, line_of(lines, full), "schema", f"{where}: {err.message}"))
    return out


# ---- model ----------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, data: dict[str, Any], lines: Mapping[Path_, int], texts: TextCatalog | None) -> None:
        self.data, self.lines, self.texts = data, lines, texts

    def line(self, *path: str | int) -> int:
        return line_of(self.lines, tuple(path))

    def condition(self, raw: dict[str, Any], path: Path_) -> Condition:
        line = line_of(self.lines, path)
        for op in ("eq", "ne", "lt", "le", "gt", "ge", "in"):
            if op in raw:
                return Condition(raw["var"], op, raw[op], line)
        op = raw.get("is", "true")
        return Condition(raw["var"], str(op).lower() if isinstance(op, bool) else op, None, line)

    def prompt(self, raw: Any, path: Path_) -> PromptSpec:
        line = line_of(self.lines, path)
        if isinstance(raw, str):
            raw = {"key": raw}
        key = raw["key"]
        values = {name: name for name in self.placeholder_names(key)}
        values.update(raw.get("values") or {})
        when = self.condition(raw["when"], (*path, "when")) if raw.get("when") else None
        return PromptSpec(key, values, raw.get("each"), raw.get("limit"), when, line)

    def placeholder_names(self, key: str) -> list[str]:
        names: list[str] = []
        if self.texts is None:
            return names
        for lang in self.texts.languages():
            entry = self.texts.get(lang, key)
            if entry:
                names.extend(n for n, _kind in entry.placeholders() if n not in names)
        return names

    def prompts(self, raw: Any, path: Path_) -> tuple[PromptSpec, ...]:
        return tuple(self.prompt(item, (*path, i)) for i, item in enumerate(raw or []))

    def retries(self, raw: dict[str, Any] | None, path: Path_, base: Retries) -> Retries | None:
        if not raw:
            return None

        def handlers(kind: str) -> tuple[RetryHandler, ...]:
            if kind not in raw:
                return getattr(base, kind)  # type: ignore[no-any-return]
            return tuple(
                RetryHandler(h["then"], self.prompts(h.get("say"), (*path, kind, i, "say")))
                for i, h in enumerate(raw[kind])
            )

        return Retries(handlers("no_input"), handlers("no_match"))

    def settings(self) -> LineSettings:
        raw = self.data.get("settings") or {}
        langs = tuple(raw.get("languages") or ("ru",))
        keys_raw = raw.get("keys") or {}
        defaults = UniversalKeys()
        keys = UniversalKeys(
            repeat=keys_raw.get("repeat", defaults.repeat),
            back=keys_raw.get("back", defaults.back),
            main=keys_raw.get("main", defaults.main),
            operator=keys_raw.get("operator", defaults.operator),
            phrases={
                lang: {n: tuple(p) for n, p in names.items()}
                for lang, names in (keys_raw.get("phrases") or {}).items()
            },
        )
        timeouts = raw.get("timeouts") or {}
        prompts = raw.get("prompts") or {}
        base = LineSettings()
        retries = (
            self.retries(raw.get("retries"), ("settings", "retries"), DEFAULT_RETRIES) or DEFAULT_RETRIES
        )
        return LineSettings(
            languages=langs,
            default_language=raw.get("default_language", langs[0]),
            start=raw.get("start", base.start),
            main_menu=raw.get("main_menu", base.main_menu),
            operator_queue=raw.get("operator_queue", base.operator_queue),
            max_call_seconds=raw.get("max_call_seconds", base.max_call_seconds),
            first_digit_timeout=float(timeouts.get("first_digit", base.first_digit_timeout)),
            inter_digit_timeout=float(timeouts.get("inter_digit", base.inter_digit_timeout)),
            keys=keys,
            retries=retries,
            error_prompt=prompts.get("error", base.error_prompt),
            goodbye_prompt=prompts.get("goodbye", base.goodbye_prompt),
            time_exceeded_prompt=prompts.get("time_exceeded", base.time_exceeded_prompt),
            transfer_prompt=prompts.get("transfer", base.transfer_prompt),
            help_prompt=prompts.get("help", base.help_prompt),
            confirm_phrases={
                lang: (tuple(v["yes"]), tuple(v["no"]))
                for lang, v in (raw.get("confirm_phrases") or {}).items()
            },
        )

    def node(self, node_id: str, raw: dict[str, Any], base: Retries) -> AnyNode:
        p: Path_ = ("nodes", node_id)
        line = line_of(self.lines, p)
        retries = self.retries(raw.get("retries"), (*p, "retries"), base)
        common: dict[str, Any] = {"id": node_id, "line": line, "retries": retries}
        if "menu" in raw:
            choices = tuple(
                Choice(
                    key=str(c.get("key", "")),
                    phrases={lang: tuple(map(str, ph)) for lang, ph in (c.get("say") or {}).items()},
                    goto=c["goto"],
                    language=c.get("language"),
                    line=line_of(self.lines, (*p, "choices", i)),
                )
                for i, c in enumerate(raw["choices"])
            )
            return Menu(
                **common,
                prompts=self.prompts(raw["menu"], (*p, "menu")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                choices=choices,
                universal=_universal(raw.get("universal", True)),
            )
        if "collect" in raw:
            length = raw["length"]
            lo, hi = (length, length) if isinstance(length, int) else (length[0], length[1])
            return CollectDigits(
                **common,
                prompts=self.prompts(raw["collect"], (*p, "collect")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                invalid=self.prompts(raw.get("invalid"), (*p, "invalid")),
                into=raw["into"],
                min_length=lo,
                max_length=hi,
                terminator=raw.get("terminator", "#"),
                check=raw.get("check"),
                secret=bool(raw.get("secret", False)),
                integer=bool(raw.get("integer", False)),
                first_digit_timeout=raw.get("first_digit_timeout"),
                inter_digit_timeout=raw.get("inter_digit_timeout"),
                goto=raw["goto"],
            )
        if "confirm" in raw:
            return Confirm(
                **common,
                prompts=self.prompts(raw["confirm"], (*p, "confirm")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                yes=raw["yes"],
                no=raw["no"],
            )
        if "action" in raw:
            return Action(
                **common,
                name=raw["action"],
                args=dict(raw.get("args") or {}),
                branches=dict(raw.get("results") or {}),
                default=raw.get("default"),
            )
        if "transfer" in raw:
            return TransferNode(
                **common,
                queue=raw["transfer"],
                reason=raw.get("reason", ""),
                context=tuple(raw.get("context") or ()),
                prompts=self.prompts(raw.get("say"), (*p, "say")),
            )
        if "call" in raw:
            return CallFlow(**common, flow=raw["call"], goto=raw["goto"])
        if "return" in raw:
            return Return(**common)
        if "language" in raw:
            return SetLanguageNode(**common, language=raw["language"], goto=raw["goto"])
        if "if" in raw:
            branches = []
            for i, b in enumerate(raw["if"]):
                when = b["when"] if isinstance(b["when"], list) else [b["when"]]
                bp = (*p, "if", i)
                conds = tuple(self.condition(c, (*bp, "when")) for c in when)
                branches.append(Branch(conds, b["goto"], line_of(self.lines, bp)))
            return If(**common, branches=tuple(branches), otherwise=raw["else"])
        if "set" in raw:
            return SetVars(**common, values=dict(raw["set"]), goto=raw["goto"])
        if "choose" in raw:
            return Choose(
                **common,
                items=raw["choose"],
                item_prompt=self.prompt(raw["item"], (*p, "item")) if "item" in raw else None,
                prompts=self.prompts(raw.get("say"), (*p, "say")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                into=raw["into"],
                goto=raw["goto"],
                empty=raw.get("empty"),
            )
        if "hangup" in raw:
            return HangUpNode(
                **common,
                prompts=self.prompts(raw["hangup"], (*p, "hangup")),
                reason=raw.get("reason", "normal"),
            )
        if "say" in raw:  # last: `say` is also an attribute of transfer and choose nodes
            return Say(**common, prompts=self.prompts(raw["say"], (*p, "say")), goto=raw["goto"])
        raise ValueError(f"node {node_id}: no kind")  # the schema check runs first


def _universal(raw: bool | list[str]) -> frozenset[str]:
    if raw is True:
        return frozenset({"repeat", "back", "main", "operator"})
    if raw is False:
        return frozenset()
    return frozenset(raw)


def build_tree(
    data: dict[str, Any], lines: Mapping[Path_, int], file: str, texts: TextCatalog | None
) -> Tree:
    builder = _Builder(data, lines, texts)
    settings = builder.settings()
    nodes = {nid: builder.node(nid, raw, settings.retries) for nid, raw in data["nodes"].items()}
    return Tree(line=data["line"], version=str(data["version"]), nodes=nodes, settings=settings, source=file)


def load_tree(
    path: str | Path, catalog: ActionCatalog | None = None, texts: TextCatalog | None = None
) -> Tree:
    """Read, check and build a tree. `texts` default: `texts/` beside the file. Raises TreeInvalid with
    every error found. With `catalog` None, action names are not checked (say so to the user)."""
    from ivr.prompts.validate import check_tree

    path = Path(path)
    file = str(path)
    data, lines = read_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise TreeInvalid(
            [TreeError(file, 1, "schema", "a tree file is a mapping with version, line, settings, nodes")]
        )
    errors = check_structure(data, lines, file)
    if errors:
        raise TreeInvalid(errors)
    if data["line"] != path.stem:
        errors.append(
            TreeError(file, line_of(lines, ("line",)), "line_name", f"line {data['line']!r} in {path.name}")
        )
    if texts is None:
        try:
            texts = load_texts(path.parent / "texts", data["line"], list(data["settings"]["languages"]))
        except TextFileError as exc:
            raise TreeInvalid([TreeError(exc.file, exc.line, "text_file", exc.message)]) from exc
    tree = build_tree(data, lines, file, texts)
    errors.extend(check_tree(tree, catalog, texts))
    if errors:
        raise TreeInvalid(errors)
    return tree


# ---- the store ------------------------------------------------------------------------------------


class TreeStore:
    """The last good tree of every line under `prompts_dir`. Thread-safe.

    `get(line)` is cheap; when `poll_seconds` has passed since the last look it compares file mtimes and
    reloads changed lines. `reload()` does the same at once (the FastAGI server calls it on SIGHUP). An
    invalid new version is logged and ignored: the old one keeps serving. A call keeps the `Tree` object
    it started with, so a reload never changes a call in progress.
    """

    def __init__(
        self,
        prompts_dir: str | Path,
        catalog: ActionCatalog | None = None,
        *,
        poll_seconds: float = 2.0,
        clock: Any = None,
    ) -> None:
        import time

        self.dir = Path(prompts_dir)
        self.catalog = catalog
        self.poll_seconds = poll_seconds
        self._clock = clock or time.monotonic
        self._lock = threading.RLock()
        self._trees: dict[str, Tree] = {}
        self._signatures: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self.errors: dict[str, list[TreeError]] = {}
        self._last_poll = float("-inf")

    def lines(self) -> list[str]:
        with self._lock:
            return sorted(self._trees)

    def _signature(self, line: str) -> tuple[tuple[str, int, int], ...]:
        texts = self.dir / "texts"
        files = [
            self.dir / f"{line}.yaml",
            *sorted(texts.glob(f"{line}.*.yaml")),
            *sorted(texts.glob("common.*.yaml")),
        ]
        out = []
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload(self) -> dict[str, list[TreeError]]:
        """Re-read every changed line; return the errors of lines whose new version was refused."""
        refused: dict[str, list[TreeError]] = {}
        with self._lock:
            self._last_poll = self._clock()
            for path in sorted(self.dir.glob("*.yaml")):
                line = path.stem
                sig = self._signature(line)
                if self._signatures.get(line) == sig:
                    continue
                self._signatures[line] = sig
                try:
                    tree = load_tree(path, self.catalog)
                except TreeInvalid as exc:
                    refused[line] = exc.errors
                    self.errors[line] = exc.errors
                    kept = self._trees.get(line)
                    log.warning(
                        "tree %s refused (%d errors, first: %s); %s",
                        path,
                        len(exc.errors),
                        exc.errors[0],
                        f"keeping version {kept.version}" if kept else "line has no good version",
                    )
                    continue
                except OSError as exc:
                    log.warning("tree %s unreadable: %s", path, exc)
                    continue
                old = self._trees.get(line)
                self._trees[line] = tree
                self.errors.pop(line, None)
                log.info(
                    "tree %s version %s loaded%s", line, tree.version, f" (was {old.version})" if old else ""
                )
        return refused

    def get(self, line: str) -> Tree:
        """The current good tree of `line`; KeyError if the line never had a valid tree."""
        with self._lock:
            if self._clock() - self._last_poll >= self.poll_seconds:
                self.reload()
            return self._trees[line]
