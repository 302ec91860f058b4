"""Loading a prompt tree from YAML: structure check (JSON Schema), model building, meaning check.

YAML is read by `ivr.trees.yamlfile` (YAML 1.2 booleans, the line of every value), so each error says
`file:lineno`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from ivr.engine.actions import ActionCatalog
from ivr.engine.tree import (
    DEFAULT_RETRIES,
    ActionNode,
    AnyNode,
    Branch,
    CallFlowNode,
    Choice,
    ChooseNode,
    CollectDigitsNode,
    Condition,
    ConfirmNode,
    HangUpNode,
    IfNode,
    LineSettings,
    MenuNode,
    PromptSpec,
    Retries,
    RetryHandler,
    ReturnNode,
    SayNode,
    SetLanguageNode,
    SetVarsNode,
    TransferNode,
    Tree,
    UniversalKeys,
)
from ivr.trees.checks import check_tree
from ivr.trees.errors import TreeError, TreeInvalid
from ivr.trees.schema import NODE_KINDS, tree_schema
from ivr.trees.texts import TextCatalog, TextFileError, load_texts
from ivr.trees.yamlfile import KeyPath, YamlFileError, lineno_of, read_yaml

log = logging.getLogger(__name__)


# ---- structure ------------------------------------------------------------------------------------


def check_structure(data: Any, linenos: Mapping[KeyPath, int], file: str) -> list[TreeError]:
    schema = tree_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors: list[TreeError] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(err.absolute_path)
        if len(path) == 2 and path[0] == "nodes" and err.validator == "oneOf":
            errors.extend(_node_errors(schema, data["nodes"][path[1]], path, linenos, file))
            continue
        where = "/".join(map(str, path)) or "(top)"
        message = err.message
        if err.validator == "oneOf" and path[-2:-1] in (("menu",), ("say",), ("collect",), ("help",)):
            message = "a prompt is a text key or a mapping with `key`"
        errors.append(TreeError(file, lineno_of(linenos, path), "schema", f"{where}: {message}"))
    return errors


def _node_errors(
    schema: dict[str, Any], node: Any, path: KeyPath, linenos: Mapping[KeyPath, int], file: str
) -> list[TreeError]:
    lineno = lineno_of(linenos, path)
    if not isinstance(node, dict):
        return [TreeError(file, lineno, "schema", f"node {path[1]}: a node is a mapping")]
    kinds = [k for k in NODE_KINDS if k in node]
    if len(kinds) > 1 and "say" in kinds:  # `say` is also an attribute of transfer and choose
        kinds.remove("say")
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        return [
            TreeError(
                file,
                lineno,
                "node_kind",
                f"node {path[1]}: needs exactly one of {', '.join(NODE_KINDS)} ({found})",
            )
        ]
    sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{kinds[0]}"}
    out = []
    for err in jsonschema.Draft202012Validator(sub).iter_errors(node):
        full = (*path, *err.absolute_path)
        where = "/".join(map(str, full[1:]))
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            # At the line of the field that does not belong (e.g. `spoken_digits` on a menu), by name.
            allowed = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
            for key in (k for k in err.instance if k not in allowed):
                message = (
                    f"{key!r} is not a field of a {kinds[0]} node"
                    if not err.absolute_path
                    else f"{key!r} is not allowed here"
                )
                out.append(TreeError(file, lineno_of(linenos, (*full, key)), "schema", f"{where}: {message}"))
            continue
        out.append(TreeError(file, lineno_of(linenos, full), "schema", f"{where}: {err.message}"))
    return out


# ---- model ----------------------------------------------------------------------------------------


class _Builder:
    def __init__(
        self, data: dict[str, Any], linenos: Mapping[KeyPath, int], texts: TextCatalog | None
    ) -> None:
        self.data, self.linenos, self.texts = data, linenos, texts

    def lineno(self, *path: str | int) -> int:
        return lineno_of(self.linenos, tuple(path))

    def condition(self, raw: dict[str, Any], path: KeyPath) -> Condition:
        lineno = lineno_of(self.linenos, path)
        for op in ("eq", "ne", "lt", "le", "gt", "ge", "in"):
            if op in raw:
                return Condition(raw["var"], op, raw[op], lineno)
        op = raw.get("is", "true")
        return Condition(raw["var"], str(op).lower() if isinstance(op, bool) else op, None, lineno)

    def prompt(self, raw: Any, path: KeyPath) -> PromptSpec:
        lineno = lineno_of(self.linenos, path)
        if isinstance(raw, str):
            raw = {"key": raw}
        key = raw["key"]
        values = {name: name for name in self.placeholder_names(key)}
        values.update(raw.get("values") or {})
        when = self.condition(raw["when"], (*path, "when")) if raw.get("when") else None
        return PromptSpec(key, values, raw.get("each"), raw.get("limit"), when, lineno)

    def placeholder_names(self, key: str) -> list[str]:
        names: list[str] = []
        if self.texts is None:
            return names
        for lang in self.texts.languages():
            entry = self.texts.get(lang, key)
            if entry:
                names.extend(n for n, _kind in entry.placeholders() if n not in names)
        return names

    def prompts(self, raw: Any, path: KeyPath) -> tuple[PromptSpec, ...]:
        return tuple(self.prompt(item, (*path, i)) for i, item in enumerate(raw or []))

    def retries(self, raw: dict[str, Any] | None, path: KeyPath, base: Retries) -> Retries | None:
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
            action_timeout=float(raw.get("action_timeout", base.action_timeout)),
            hold_after=float(raw.get("hold_after", base.hold_after)),
            keys=keys,
            retries=retries,
            error_prompt=prompts.get("error", base.error_prompt),
            goodbye_prompt=prompts.get("goodbye", base.goodbye_prompt),
            time_exceeded_prompt=prompts.get("time_exceeded", base.time_exceeded_prompt),
            transfer_prompt=prompts.get("transfer", base.transfer_prompt),
            help_prompt=prompts.get("help", base.help_prompt),
            hold_prompt=prompts.get("hold", base.hold_prompt),
            confirm_phrases={
                lang: (tuple(v["yes"]), tuple(v["no"]))
                for lang, v in (raw.get("confirm_phrases") or {}).items()
            },
        )

    def node(self, node_id: str, raw: dict[str, Any], base: Retries) -> AnyNode:
        p: KeyPath = ("nodes", node_id)
        lineno = lineno_of(self.linenos, p)
        retries = self.retries(raw.get("retries"), (*p, "retries"), base)
        common: dict[str, Any] = {"id": node_id, "lineno": lineno, "retries": retries}
        if "menu" in raw:
            choices = tuple(
                Choice(
                    key=str(c.get("key", "")),
                    phrases={lang: tuple(map(str, ph)) for lang, ph in (c.get("say") or {}).items()},
                    goto=c["goto"],
                    language=c.get("language"),
                    lineno=lineno_of(self.linenos, (*p, "choices", i)),
                )
                for i, c in enumerate(raw["choices"])
            )
            return MenuNode(
                **common,
                prompts=self.prompts(raw["menu"], (*p, "menu")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                choices=choices,
                universal=_universal(raw.get("universal", True)),
                barge_in=bool(raw.get("barge_in", True)),
            )
        if "collect" in raw:
            length = raw["length"]
            lo, hi = (length, length) if isinstance(length, int) else (length[0], length[1])
            return CollectDigitsNode(
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
                barge_in=bool(raw.get("barge_in", True)),
                spoken_digits=bool(raw.get("spoken_digits", False)),
            )
        if "confirm" in raw:
            return ConfirmNode(
                **common,
                prompts=self.prompts(raw["confirm"], (*p, "confirm")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                yes=raw["yes"],
                no=raw["no"],
                barge_in=bool(raw.get("barge_in", True)),
            )
        if "action" in raw:
            return ActionNode(
                **common,
                name=raw["action"],
                args=dict(raw.get("args") or {}),
                branches=dict(raw.get("results") or {}),
                default=raw.get("default"),
                timeout=float(raw["timeout"]) if "timeout" in raw else None,
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
            return CallFlowNode(**common, flow=raw["call"], goto=raw["goto"])
        if "return" in raw:
            return ReturnNode(**common)
        if "language" in raw:
            return SetLanguageNode(**common, language=raw["language"], goto=raw["goto"])
        if "if" in raw:
            branches = []
            for i, b in enumerate(raw["if"]):
                when = b["when"] if isinstance(b["when"], list) else [b["when"]]
                bp = (*p, "if", i)
                conds = tuple(self.condition(c, (*bp, "when")) for c in when)
                branches.append(Branch(conds, b["goto"], lineno_of(self.linenos, bp)))
            return IfNode(**common, branches=tuple(branches), otherwise=raw["else"])
        if "set" in raw:
            return SetVarsNode(**common, values=dict(raw["set"]), goto=raw["goto"])
        if "choose" in raw:
            return ChooseNode(
                **common,
                items=raw["choose"],
                item_prompt=self.prompt(raw["item"], (*p, "item")) if "item" in raw else None,
                prompts=self.prompts(raw.get("say"), (*p, "say")),
                help=self.prompts(raw.get("help"), (*p, "help")),
                into=raw["into"],
                goto=raw["goto"],
                empty=raw.get("empty"),
                barge_in=bool(raw.get("barge_in", True)),
            )
        if "hangup" in raw:
            return HangUpNode(
                **common,
                prompts=self.prompts(raw["hangup"], (*p, "hangup")),
                reason=raw.get("reason", "normal"),
            )
        if "say" in raw:  # last: `say` is also an attribute of transfer and choose nodes
            return SayNode(
                **common,
                prompts=self.prompts(raw["say"], (*p, "say")),
                goto=raw["goto"],
                barge_in=bool(raw.get("barge_in", True)),
            )
        raise ValueError(f"node {node_id}: no kind")  # the schema check runs first


def _universal(raw: bool | list[str]) -> frozenset[str]:
    if raw is True:
        return frozenset({"repeat", "back", "main", "operator"})
    if raw is False:
        return frozenset()
    return frozenset(raw)


def build_tree(
    data: dict[str, Any], linenos: Mapping[KeyPath, int], file: str, texts: TextCatalog | None
) -> Tree:
    builder = _Builder(data, linenos, texts)
    settings = builder.settings()
    nodes = {nid: builder.node(nid, raw, settings.retries) for nid, raw in data["nodes"].items()}
    return Tree(line=data["line"], version=str(data["version"]), nodes=nodes, settings=settings, source=file)


def load_tree(
    path: str | Path, catalog: ActionCatalog | None = None, texts: TextCatalog | None = None
) -> Tree:
    """Read, check and build a tree. `texts` default: `texts/` beside the file. Raises TreeInvalid with
    every error found. With `catalog` None, action names are not checked (say so to the user)."""
    return load_line(path, catalog, texts)[0]


def load_line(
    path: str | Path, catalog: ActionCatalog | None = None, texts: TextCatalog | None = None
) -> tuple[Tree, TextCatalog]:
    """`load_tree`, returning the texts the tree was checked against too: the two serve as one unit."""
    path = Path(path)
    file = str(path)
    try:
        data, linenos = read_yaml(path)
    except YamlFileError as exc:
        raise TreeInvalid([TreeError(exc.file, exc.lineno, exc.code, exc.message)]) from exc
    if not isinstance(data, dict):
        raise TreeInvalid(
            [TreeError(file, 1, "schema", "a tree file is a mapping with version, line, settings, nodes")]
        )
    errors = check_structure(data, linenos, file)
    if errors:
        raise TreeInvalid(errors)
    if data["line"] != path.stem:
        errors.append(
            TreeError(
                file, lineno_of(linenos, ("line",)), "line_name", f"line {data['line']!r} in {path.name}"
            )
        )
    if texts is None:
        try:
            texts = load_texts(path.parent / "texts", data["line"], list(data["settings"]["languages"]))
        except TextFileError as exc:
            raise TreeInvalid([TreeError(exc.file, exc.lineno, "text_file", exc.message)]) from exc
    tree = build_tree(data, linenos, file, texts)
    errors.extend(check_tree(tree, catalog, texts))
    if errors:
        raise TreeInvalid(errors)
    return tree, texts
