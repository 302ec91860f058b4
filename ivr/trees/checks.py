"""The meaning check of a tree: what a schema cannot see.

Codes: unknown_target, unreachable, dead_end, loop_without_input, duplicate_key, duplicate_phrase,
missing_text, unknown_placeholder, placeholder_kind, unknown_action, unhandled_status, unknown_status,
unknown_arg, unconfirmed_action, reserved_var, unknown_language, bad_setting, secret_in_prompt,
spoken_digits (on a secret input, or in a line with a language that has no digit words), recording (a
recording under prompts/recordings of a text with placeholders or of a key without text; its file named).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import replace

from ivr.engine.actions import ActionCatalog
from ivr.engine.engine import DEFAULT_UNIVERSAL_PHRASES
from ivr.engine.spoken import DIGIT_WORDS, digit_words, normalize_phrase
from ivr.engine.tree import (
    CALL_FACT_VARS,
    RESERVED_VARS,
    ActionNode,
    AnyNode,
    CallFlowNode,
    ChooseNode,
    CollectDigitsNode,
    ConfirmNode,
    HangUpNode,
    MenuNode,
    PromptSpec,
    Retries,
    ReturnNode,
    SetLanguageNode,
    SetVarsNode,
    TransferNode,
    Tree,
    successors,
)
from ivr.trees.errors import TreeError
from ivr.trees.texts import PLACEHOLDER_KINDS, TextCatalog, recording_problems

WAITS = (
    MenuNode,
    CollectDigitsNode,
    ConfirmNode,
    ChooseNode,
    ActionNode,
)  # nodes that wait for the caller or a result
ENDS = (TransferNode, HangUpNode, ReturnNode)


def check_tree(tree: Tree, catalog: ActionCatalog | None, texts: TextCatalog | None) -> list[TreeError]:
    return _Checker(tree, catalog, texts).run()


def prompt_keys(tree: Tree) -> set[str]:
    """Every prompt key a tree (and the engine for it) may play."""
    return {spec.key for spec, _line in _Checker(tree, None, None).prompt_specs()}


class _Checker:
    def __init__(self, tree: Tree, catalog: ActionCatalog | None, texts: TextCatalog | None) -> None:
        self.tree, self.catalog, self.texts = tree, catalog, texts
        self.file = tree.source or f"{tree.line}.yaml"
        self.errors: list[TreeError] = []
        self.prefixes: tuple[str, ...] = ()
        self.secret_vars = {
            n.into for n in tree.nodes.values() if isinstance(n, CollectDigitsNode) and n.secret
        }

    def err(self, lineno: int, code: str, message: str) -> None:
        self.errors.append(TreeError(self.file, lineno, code, message))

    def run(self) -> list[TreeError]:
        self.check_settings()
        self.check_targets()
        if not any(e.code == "unknown_target" for e in self.errors):
            self.check_graph()
            self.check_confirmations()
        for node in self.tree.nodes.values():
            self.check_node(node)
        self.check_texts()
        self.check_recordings()
        return self.errors

    # ---- settings and targets ----------------------------------------------------------------------

    def check_settings(self) -> None:
        s = self.tree.settings
        if s.default_language not in s.languages:
            self.err(
                1, "unknown_language", f"default_language {s.default_language!r} not in {list(s.languages)}"
            )
        keys = [k for k in s.keys.by_key()]
        if len(keys) != len(set(keys)):
            self.err(1, "duplicate_key", "two universal keys share a key")
        for name in (s.start, s.main_menu):
            if name not in self.tree.nodes:
                self.err(1, "unknown_target", f"settings name node {name!r}, which does not exist")
        shortest = min(
            [s.action_timeout]
            + [n.timeout for n in self.tree.nodes.values() if isinstance(n, ActionNode) and n.timeout]
        )
        if s.hold_after >= shortest:
            self.err(
                1,
                "bad_setting",
                f"hold_after ({s.hold_after} s) must be shorter than every action time limit ({shortest} s)",
            )

    def check_targets(self) -> None:
        for node in self.tree.nodes.values():
            linenos = [c.lineno for c in node.choices] if isinstance(node, MenuNode) else []
            for i, (label, target) in enumerate(successors(node)):
                if target not in self.tree.nodes:
                    where = f" ({label})" if label else ""
                    self.err(
                        linenos[i] if i < len(linenos) else node.lineno,
                        "unknown_target",
                        f"node {node.id}{where} goes to {target!r}, which does not exist",
                    )

    # ---- graph ---------------------------------------------------------------------------------------

    def edges(self, node: AnyNode) -> list[str]:
        return [t for _label, t in successors(node) if t in self.tree.nodes]

    def check_graph(self) -> None:
        nodes = self.tree.nodes
        s = self.tree.settings
        roots = [n for n in (s.start, s.main_menu) if n in nodes]
        seen: set[str] = set(roots)
        queue = deque(roots)
        while queue:
            for t in self.edges(nodes[queue.popleft()]):
                if t not in seen:
                    seen.add(t)
                    queue.append(t)
        for node in nodes.values():
            if node.id not in seen:
                self.err(node.lineno, "unreachable", f"node {node.id} cannot be reached from {s.start!r}")
        # Dead ends: nodes from which no ending (transfer, hang-up, return) can be reached.
        reverse: dict[str, set[str]] = {n: set() for n in nodes}
        for node in nodes.values():
            for t in self.edges(node):
                reverse[t].add(node.id)
        good = {n.id for n in nodes.values() if isinstance(n, ENDS)}
        queue = deque(good)
        while queue:
            for src in reverse[queue.popleft()]:
                if src not in good:
                    good.add(src)
                    queue.append(src)
        for node in nodes.values():
            if isinstance(node, MenuNode) and not node.choices:
                self.err(node.lineno, "dead_end", f"menu {node.id} has no choices")
            elif isinstance(node, ActionNode) and not node.branches and not node.default:
                self.err(node.lineno, "dead_end", f"action {node.id} has no results")
            elif node.id not in good:
                self.err(
                    node.lineno,
                    "dead_end",
                    f"node {node.id}: no path from here ends the call (transfer/hangup)",
                )
        # Loops that never wait for the caller would spin forever.
        quick = {n.id for n in nodes.values() if not isinstance(n, WAITS + ENDS)}
        color: dict[str, int] = {}
        reported: set[str] = set()

        def visit(nid: str) -> None:
            color[nid] = 1
            for t in self.edges(nodes[nid]):
                if t not in quick:
                    continue
                if color.get(t) == 1 and t not in reported:
                    reported.add(t)
                    self.err(
                        nodes[t].lineno,
                        "loop_without_input",
                        f"node {t} loops back to itself without waiting for the caller",
                    )
                elif t not in color:
                    visit(t)
            color[nid] = 2

        for nid in sorted(quick):
            if nid not in color:
                visit(nid)

    def check_confirmations(self) -> None:
        """Every state-changing action must be reached only right after a confirm's `yes` (say, set, if,
        language nodes may sit between). Any other waiting node or action in between clears it."""
        if self.catalog is None:
            return
        nodes = self.tree.nodes
        start = [n for n in (self.tree.settings.start, self.tree.settings.main_menu) if n in nodes]
        seen: set[tuple[str, bool]] = set()
        queue = deque((n, False) for n in start)
        reported: set[str] = set()
        while queue:
            nid, confirmed = queue.popleft()
            if (nid, confirmed) in seen:
                continue
            seen.add((nid, confirmed))
            node = nodes[nid]
            if isinstance(node, ActionNode):
                info = self.catalog.get(node.name)
                if info and info.changes_state and not confirmed and nid not in reported:
                    reported.add(nid)
                    self.err(
                        node.lineno,
                        "unconfirmed_action",
                        f"{node.name} changes something: put a confirm before node {nid} on every path",
                    )
            for label, target in successors(node):
                if target not in nodes:
                    continue
                if isinstance(node, ConfirmNode):
                    nxt = label == "yes"
                elif isinstance(node, WAITS) or (isinstance(node, CallFlowNode) and label == "return"):
                    nxt = False
                else:
                    nxt = confirmed
                queue.append((target, nxt))

    # ---- nodes -------------------------------------------------------------------------------------

    def check_node(self, node: AnyNode) -> None:
        s = self.tree.settings
        if isinstance(node, MenuNode):
            self.check_menu(node)
        if isinstance(node, ActionNode):
            self.check_action(node)
        if isinstance(node, CollectDigitsNode | ChooseNode) and node.into in RESERVED_VARS:
            self.err(node.lineno, "reserved_var", f"{node.into} is set only by actions and the call itself")
        if isinstance(node, CollectDigitsNode) and node.min_length > node.max_length:
            self.err(node.lineno, "bad_setting", f"collect {node.id}: length minimum above maximum")
        if isinstance(node, CollectDigitsNode) and node.spoken_digits:
            self.check_spoken_digits(node)
        if isinstance(node, SetVarsNode):
            for name in node.values:
                if name in RESERVED_VARS or name in CALL_FACT_VARS:
                    self.err(node.lineno, "reserved_var", f"set {name}: reserved call variable")
        if isinstance(node, SetLanguageNode) and node.language not in s.languages:
            self.err(node.lineno, "unknown_language", f"{node.language!r} is not a language of this line")

    def check_spoken_digits(self, node: CollectDigitsNode) -> None:
        if node.secret:
            self.err(
                node.lineno,
                "spoken_digits",
                f"collect {node.id}: spoken_digits on a secret input: a PIN or code said aloud is heard "
                "by anyone near the caller and goes through the recogniser; secrets are keys only",
            )
        for lang in self.tree.settings.languages:
            if not digit_words(lang):
                self.err(
                    node.lineno,
                    "spoken_digits",
                    f"collect {node.id}: spoken_digits, but there are no digit words for {lang!r} "
                    f"(ivr/engine/spoken.py has {', '.join(sorted(DIGIT_WORDS))})",
                )

    def check_menu(self, node: MenuNode) -> None:
        s = self.tree.settings
        universal = {k: name for k, name in s.keys.by_key().items() if name in node.universal}
        seen_keys: dict[str, int] = {}
        for choice in node.choices:
            if choice.language and choice.language not in s.languages:
                self.err(
                    choice.lineno, "unknown_language", f"{choice.language!r} is not a language of this line"
                )
            if not choice.key and not choice.phrases:
                self.err(choice.lineno, "dead_end", f"menu {node.id}: a choice needs a key or phrases")
            if choice.key:
                if choice.key in universal:
                    self.err(
                        choice.lineno,
                        "duplicate_key",
                        f"menu {node.id}: key {choice.key} is the universal {universal[choice.key]!r} key",
                    )
                elif choice.key in seen_keys:
                    self.err(
                        choice.lineno,
                        "duplicate_key",
                        f"menu {node.id}: key {choice.key} also at line {seen_keys[choice.key]}",
                    )
                seen_keys.setdefault(choice.key, choice.lineno)
        for lang in s.languages:
            seen: dict[str, tuple[str, int]] = {}
            if node.universal:
                phrases = s.keys.phrases.get(lang) or DEFAULT_UNIVERSAL_PHRASES.get(lang, {})
                for name, ps in phrases.items():
                    if name not in node.universal:
                        continue
                    for p in ps:
                        seen[normalize_phrase(p)] = (f"universal {name}", 0)
            for choice in node.choices:
                for phrase in choice.phrases.get(lang, ()):
                    norm = normalize_phrase(phrase)
                    other = seen.get(norm)
                    if other and other[0] != choice.goto:
                        where = other[0] if other[1] == 0 else f"line {other[1]}"
                        self.err(
                            choice.lineno,
                            "duplicate_phrase",
                            f"menu {node.id}: phrase {phrase!r} ({lang}) also for {where}",
                        )
                    seen.setdefault(norm, (choice.goto, choice.lineno))
            for choice in node.choices:
                if choice.phrases and lang not in choice.phrases and len(s.languages) > 1 and not choice.key:
                    self.err(
                        choice.lineno,
                        "missing_text",
                        f"menu {node.id}: speech-only choice has no {lang} phrases",
                    )

    def check_action(self, node: ActionNode) -> None:
        if self.catalog is None:
            return
        info = self.catalog.get(node.name)
        if info is None:
            self.err(node.lineno, "unknown_action", f"no action named {node.name!r}")
            return
        for status in node.branches:
            if status not in info.statuses:
                self.err(
                    node.lineno,
                    "unknown_status",
                    f"{node.name} never returns {status!r} (it returns {sorted(info.statuses)})",
                )
        missing = sorted(info.statuses - set(node.branches) - {"error"})
        if missing and not node.default:
            self.err(
                node.lineno,
                "unhandled_status",
                f"{node.name} may return {', '.join(missing)}: add results for them or a default",
            )
        if info.args:
            for arg in node.args:
                if arg not in info.args:
                    self.err(
                        node.lineno,
                        "unknown_arg",
                        f"{node.name} takes no argument {arg!r} (it takes {sorted(info.args)})",
                    )

    # ---- texts -------------------------------------------------------------------------------------

    def prompt_specs(self) -> Iterable[tuple[PromptSpec, int]]:
        s = self.tree.settings
        for key in (
            s.error_prompt,
            s.goodbye_prompt,
            s.time_exceeded_prompt,
            s.transfer_prompt,
            s.help_prompt,
            s.hold_prompt,
        ):
            yield PromptSpec(key), 1

        def of_retries(r: Retries | None, lineno: int) -> Iterable[tuple[PromptSpec, int]]:
            if r is None:
                return
            for h in (*r.no_input, *r.no_match):
                for p in h.prompts:
                    yield p, p.lineno or lineno

        yield from of_retries(s.retries, 1)
        for node in self.tree.nodes.values():
            yield from of_retries(node.retries, node.lineno)
            for attr in ("prompts", "help", "invalid"):
                for p in getattr(node, attr, ()):
                    yield p, p.lineno or node.lineno
            if isinstance(node, ChooseNode) and node.item_prompt:
                yield replace(node.item_prompt, each=node.items), node.item_prompt.lineno or node.lineno

    def available_vars(self) -> tuple[set[str], bool]:
        """Variable names some node or action may set, and whether that list is complete."""
        names = set(CALL_FACT_VARS)
        prefixes: list[str] = []
        complete = True
        for node in self.tree.nodes.values():
            if isinstance(node, CollectDigitsNode):
                names.add(node.into)
            elif isinstance(node, ChooseNode):
                names.add(node.into)
                prefixes.append(f"{node.into}_")  # the chosen item's fields
            elif isinstance(node, SetVarsNode):
                names.update(node.values)
            elif isinstance(node, ActionNode):
                info = self.catalog.get(node.name) if self.catalog is not None else None
                if info is None or not info.values:
                    complete = False
                else:
                    names.update(info.values)
        self.prefixes = tuple(prefixes)
        return names, complete

    def check_texts(self) -> None:
        if self.texts is None:
            return
        names, complete = self.available_vars()
        reported: set[tuple[str, str]] = set()
        for spec, lineno in self.prompt_specs():
            for lang in self.tree.settings.languages:
                entry = self.texts.get(lang, spec.key)
                if entry is None:
                    if (spec.key, lang) not in reported:
                        reported.add((spec.key, lang))
                        self.err(
                            lineno,
                            "missing_text",
                            f"no {lang} text for prompt {spec.key!r} (texts/{self.tree.line}.{lang}.yaml)",
                        )
                    continue
                for name, kind in entry.placeholders():
                    if kind and kind not in PLACEHOLDER_KINDS:
                        self.err(
                            entry.lineno,
                            "placeholder_kind",
                            f"{entry.file}: {spec.key}: unknown kind {kind!r}",
                        )
                    var = spec.values.get(name, name)
                    if var in self.secret_vars and (spec.key, name) not in reported:
                        reported.add((spec.key, name))
                        self.err(
                            lineno, "secret_in_prompt", f"prompt {spec.key!r} would say the secret {{{name}}}"
                        )
                    if spec.each is not None:
                        continue  # filled from the list item's fields first
                    if (
                        complete
                        and var not in names
                        and not var.startswith(self.prefixes)
                        and (spec.key, name) not in reported
                    ):
                        reported.add((spec.key, name))
                        self.err(
                            lineno,
                            "unknown_placeholder",
                            f"prompt {spec.key!r} ({lang}) needs {{{name}}}, which nothing sets",
                        )

    def check_recordings(self) -> None:
        """A recording replaces the synthesis of one text without placeholders: one of a text with
        placeholders, or of a key without text in its language, refuses the set (the file is named)."""
        if self.texts is None or not self.texts.recordings or self.texts.recordings_dir is None:
            return
        texts = {
            pair: {key: entry.text for key, entry in entries.items()}
            for pair, entries in self.texts.by_source.items()
        }
        for path, message in recording_problems(texts, self.texts.recordings, self.texts.recordings_dir):
            self.errors.append(TreeError(str(path), 1, "recording", message))
