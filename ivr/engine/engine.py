"""The tree interpreter: `step(state, event) -> (state, commands)`, pure and synchronous.

Semantics follow VoiceXML 2.1 where it has an answer: per-node no-input and no-match counters that reset
whenever the node is entered again; the handler for the n-th event is picked by count (the last one repeats
for higher counts); prompts are interruptible (barge-in) and keys typed during them count as input, unless
the node says `barge_in: false` (VoiceXML's bargein="false": heard whole); universal keys (repeat, back,
main menu, operator) work in every menu. An action result with status `error`, or one the tree does not
branch on, always ends in the apology prompt and the operator queue: a caller never hears silence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ivr.engine.checks import check_digits
from ivr.engine.commands import (
    Collect,
    Command,
    HangUp,
    InvokeAction,
    Play,
    PromptRef,
    SetLanguage,
    Transfer,
)
from ivr.engine.events import (
    ActionResult,
    CallStarted,
    CallTimeExceeded,
    Digits,
    Event,
    HungUp,
    NoInput,
    Speech,
)
from ivr.engine.spoken import digit_words, normalize_phrase, spoken_digits
from ivr.engine.tree import (
    ActionNode,
    AnyNode,
    CallFlowNode,
    Choice,
    ChooseNode,
    CollectDigitsNode,
    Condition,
    ConfirmNode,
    HangUpNode,
    IfNode,
    MenuNode,
    PromptSpec,
    RetryHandler,
    ReturnNode,
    SayNode,
    SetLanguageNode,
    SetVarsNode,
    TransferNode,
    Tree,
)

log = logging.getLogger(__name__)

MAX_HOPS = 200  # nodes passed without waiting for the caller; the validator rejects such loops

DEFAULT_CONFIRM_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ru": (
        ("да", "подтверждаю", "верно", "согласен", "согласна", "конечно"),
        ("нет", "отмена", "не надо", "отменить"),
    ),
    "en": (("yes", "confirm", "correct", "sure"), ("no", "cancel", "stop")),
}
DEFAULT_UNIVERSAL_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "ru": {
        "repeat": ("повтори", "повторить", "ещё раз"),
        "back": ("назад", "предыдущее меню"),
        "main": ("главное меню", "в начало"),
        "operator": ("оператор", "соедините с оператором", "специалист"),
    },
    "en": {
        "repeat": ("repeat", "say again"),
        "back": ("back", "previous menu"),
        "main": ("main menu", "start over"),
        "operator": ("operator", "agent", "representative"),
    },
}


class EngineError(Exception):
    """The driver broke the contract (an event the engine is not waiting for)."""


def _contains_phrase(utterance: str, phrase: str) -> bool:
    return re.search(rf"(?:^| ){re.escape(phrase)}(?: |$)", utterance) is not None


@dataclass(frozen=True)
class CallState:
    """Everything the engine knows about one call. Immutable: `step` returns a new one."""

    node: str
    call_id: str = ""
    language: str = "ru"
    vars: Mapping[str, Any] = field(default_factory=dict)
    visits: Mapping[str, int] = field(default_factory=dict)
    no_input: int = 0
    no_match: int = 0
    history: tuple[str, ...] = ()  # menus entered, for "previous menu"
    returns: tuple[str, ...] = ()  # sub-flow continuations
    secret_vars: frozenset[str] = frozenset()
    tree_version: str = ""
    waiting: str = ""  # "input" | "action" | "" (finished)
    finished: bool = False
    result: str = ""  # "transfer" | "hangup" | "hungup" once finished
    last_action: str = ""  # "name:status" of the last action result


class _Run:
    """Mutable scratch copy of a state while one event is processed."""

    def __init__(self, tree: Tree, state: CallState) -> None:
        self.tree = tree
        self.s = tree.settings
        self.node = state.node
        self.call_id = state.call_id
        self.language = state.language
        self.vars: dict[str, Any] = dict(state.vars)
        self.visits: dict[str, int] = dict(state.visits)
        self.no_input = state.no_input
        self.no_match = state.no_match
        self.history = list(state.history)
        self.returns = list(state.returns)
        self.secret_vars = set(state.secret_vars)
        self.waiting = state.waiting
        self.finished = state.finished
        self.result = state.result
        self.last_action = state.last_action
        self.version = state.tree_version
        self.commands: list[Command] = []

    def freeze(self) -> CallState:
        return CallState(
            node=self.node,
            call_id=self.call_id,
            language=self.language,
            vars=dict(self.vars),
            visits=dict(self.visits),
            no_input=self.no_input,
            no_match=self.no_match,
            history=tuple(self.history),
            returns=tuple(self.returns),
            secret_vars=frozenset(self.secret_vars),
            tree_version=self.version,
            waiting=self.waiting,
            finished=self.finished,
            result=self.result,
            last_action=self.last_action,
        )

    # ---- prompts -------------------------------------------------------------------------------------

    def holds(self, cond: Condition) -> bool:
        return evaluate(cond, self.vars)

    def refs(self, specs: Sequence[PromptSpec]) -> tuple[PromptRef, ...]:
        out: list[PromptRef] = []
        for spec in specs:
            if spec.each is None:
                if spec.when is not None and not self.holds(spec.when):
                    continue
                out.append(PromptRef(spec.key, {ph: self.vars.get(var) for ph, var in spec.values.items()}))
                continue
            items = self.vars.get(spec.each) or []
            if not isinstance(items, list | tuple):
                continue
            for item in list(items)[: spec.limit]:
                fields = item if isinstance(item, Mapping) else {"item": item}
                if spec.when is not None and not evaluate(spec.when, {**self.vars, **fields}):
                    continue
                values = {
                    ph: fields[ph] if ph in fields else self.vars.get(var) for ph, var in spec.values.items()
                }
                out.append(PromptRef(spec.key, values))
        return tuple(out)

    def play(self, specs: Sequence[PromptSpec], barge_in: bool = True) -> None:
        refs = self.refs(specs)
        if not refs:
            return
        last = self.commands[-1] if self.commands else None
        # One Play per run of says (fewer round trips for the driver), as long as all may be interrupted
        # alike: prompts heard whole never join ones a key may skip.
        if isinstance(last, Play) and last.barge_in == barge_in:
            self.commands[-1] = replace(last, prompts=last.prompts + refs)
        else:
            self.commands.append(Play(refs, barge_in))

    def key(self, name: str) -> PromptSpec:
        return PromptSpec(name)

    # ---- entering nodes ------------------------------------------------------------------------------

    def enter(self, node_id: str) -> None:
        for _hop in range(MAX_HOPS):
            node = self.tree.nodes.get(node_id)
            if node is None:
                log.error(
                    "tree %s has no node %r; sending the caller to an operator", self.tree.line, node_id
                )
                self.fail("missing_node")
                return
            self.node = node_id
            self.visits[node_id] = self.visits.get(node_id, 0) + 1
            self.no_input = self.no_match = 0
            nxt = self.enter_one(node)
            if nxt is None:
                return
            node_id = nxt
        log.error(
            "tree %s loops without waiting at %r; sending the caller to an operator", self.tree.line, node_id
        )
        self.fail("loop")

    def enter_one(self, node: AnyNode) -> str | None:
        """Run a node; return the next node id, or None when the call now waits (or has ended)."""
        match node:
            case MenuNode() | CollectDigitsNode() | ConfirmNode():
                if isinstance(node, MenuNode) and node.id == self.s.main_menu:
                    self.history = [node.id]  # the main menu is the root: "back" from it repeats it
                elif isinstance(node, MenuNode) and (not self.history or self.history[-1] != node.id):
                    self.history.append(node.id)
                self.waiting = "input"
                self.commands.append(self.collect(node, node.prompts))
                return None
            case ChooseNode():
                if not self.list_items(node):
                    return node.empty or self.s.main_menu
                self.waiting = "input"
                self.commands.append(self.collect(node, self.choose_prompts(node)))
                return None
            case SayNode():
                self.play(node.prompts, node.barge_in)
                return node.goto
            case ActionNode():
                self.waiting = "action"
                args = {name: self.fill(value) for name, value in node.args.items()}
                visit = self.visits.get(node.id, 1)
                self.commands.append(
                    InvokeAction(
                        node.name,
                        args,
                        f"{self.call_id}:{node.id}:{visit}",
                        timeout=node.timeout or self.s.action_timeout,
                        hold=PromptRef(self.s.hold_prompt),
                        hold_after=self.s.hold_after,
                    )
                )
                return None
            case TransferNode():
                self.play(node.prompts or (self.key(self.s.transfer_prompt),))
                self.transfer(node.queue or self.s.operator_queue, node.reason or node.id, node.context)
                return None
            case CallFlowNode():
                self.returns.append(node.goto)
                return node.flow
            case ReturnNode():
                if self.returns:
                    return self.returns.pop()
                log.warning("return at %r without a caller flow; going to the main menu", node.id)
                return self.s.main_menu
            case SetLanguageNode():
                self.switch_language(node.language)
                return node.goto
            case IfNode():
                for branch in node.branches:
                    if all(self.holds(c) for c in branch.when):
                        return branch.goto
                return node.otherwise
            case SetVarsNode():
                for name, value in node.values.items():
                    self.vars[name] = self.fill(value)
                return node.goto
            case HangUpNode():
                self.play(node.prompts)
                self.hang_up(node.reason)
                return None
        raise EngineError(f"unknown node type {type(node).__name__}")  # pragma: no cover

    def fill(self, value: Any) -> Any:
        """ "{var}" -> the variable's value (any type); other strings are formatted from call vars."""
        if not isinstance(value, str) or "{" not in value:
            return value
        whole = re.fullmatch(r"\{(\w+)\}", value)
        if whole:
            return self.vars.get(whole.group(1))
        return re.sub(r"\{(\w+)\}", lambda m: str(self.vars.get(m.group(1), "")), value)

    def switch_language(self, language: str) -> None:
        if language != self.language:
            self.language = language
            self.vars["language"] = language
            self.commands.append(SetLanguage(language))

    # ---- collecting ----------------------------------------------------------------------------------

    def universal_phrases(self, node: AnyNode | None = None) -> dict[str, tuple[str, ...]]:
        phrases = self.s.keys.phrases.get(self.language) or DEFAULT_UNIVERSAL_PHRASES.get(self.language, {})
        allowed = self.allowed_universal(node)
        return {name: tuple(p) for name, p in phrases.items() if name in allowed}

    def allowed_universal(self, node: AnyNode | None) -> frozenset[str]:
        allowed = (
            node.universal
            if isinstance(node, MenuNode)
            else frozenset({"repeat", "back", "main", "operator"})
        )
        if self.returns:  # inside a sub-flow (identification): leaving it by main/back would skip its end
            allowed = allowed - {"main", "back"}
        return allowed

    def confirm_phrases(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.s.confirm_phrases.get(self.language) or DEFAULT_CONFIRM_PHRASES.get(
            self.language, ((), ())
        )

    def universal_keys(self, node: AnyNode) -> dict[str, str]:
        """key -> universal name, for the ones that work at this node."""
        allowed = self.allowed_universal(node)
        return {k: name for k, name in self.s.keys.by_key().items() if name in allowed}

    def escape_keys(self, node: AnyNode) -> str:
        keys = self.universal_keys(node)
        if isinstance(node, CollectDigitsNode):
            # Digits are part of the number being typed; only non-digit keys can escape.
            return "".join(k for k in keys if not k.isdigit() and k != node.terminator)
        return "".join(keys)

    def choose_prompts(self, node: ChooseNode) -> tuple[PromptSpec, ...]:
        item = (replace(node.item_prompt, each=node.items),) if node.item_prompt else ()
        return tuple(node.prompts) + item

    def collect(self, node: AnyNode, specs: Sequence[PromptSpec]) -> Collect:
        grammar: list[str] = []
        for phrases in self.universal_phrases(node).values():
            grammar.extend(phrases)
        first, inter = self.s.first_digit_timeout, self.s.inter_digit_timeout
        refs = self.refs(specs)
        escape = self.escape_keys(node)
        barge_in = self.barge_in(node)
        if isinstance(node, MenuNode):
            for choice in node.choices:
                grammar.extend(choice.phrases.get(self.language, ()))
            return Collect(refs, 1, 1, first, inter, None, tuple(grammar), escape, barge_in=barge_in)
        if isinstance(node, ConfirmNode):
            yes, no = self.confirm_phrases()
            return Collect(refs, 1, 1, first, inter, None, (*yes, *no, *grammar), escape, barge_in=barge_in)
        if isinstance(node, ChooseNode):
            items = self.list_items(node)
            grammar.extend(str(item.get("name")) for item in items if item.get("name"))
            width = max((len(str(item.get("key", ""))) for item in items), default=1)
            terminator = None if width == 1 else "#"
            return Collect(
                refs, width, 1, first, inter, terminator, tuple(grammar), escape, barge_in=barge_in
            )
        assert isinstance(node, CollectDigitsNode)
        spoken = self.takes_spoken_digits(node)
        if spoken:
            # Vosk makes a grammar a bigram model of its phrases (recognizer.cc, UpdateGrammarFst): one
            # phrase may follow another, so the single digit words come back as sequences ("일 이 삼").
            grammar = [*digit_words(self.language), *grammar]
        return Collect(
            refs,
            node.max_length,
            node.min_length,
            node.first_digit_timeout or first,
            node.inter_digit_timeout or inter,
            node.terminator,
            tuple(grammar),
            escape,
            node.secret,
            barge_in=barge_in,
            spoken_digits=spoken,
        )

    def barge_in(self, node: AnyNode) -> bool:
        return bool(getattr(node, "barge_in", True))

    def takes_spoken_digits(self, node: CollectDigitsNode) -> bool:
        """Digits may be said here: the node asks for it, and never for a secret (the validator refuses
        that; a tree built in code is held to it here too)."""
        return node.spoken_digits and not node.secret

    def list_items(self, node: ChooseNode) -> list[Mapping[str, Any]]:
        """The items a caller can choose: mappings in a list; a variable that holds no list has none."""
        items = self.vars.get(node.items)
        if not isinstance(items, list | tuple):
            return []
        return [i for i in items if isinstance(i, Mapping)]

    def base_prompts(self, node: AnyNode) -> tuple[PromptSpec, ...]:
        if isinstance(node, ChooseNode):
            return self.choose_prompts(node)
        return tuple(getattr(node, "prompts", ()))

    def reprompt(self, node: AnyNode, before: Sequence[PromptSpec]) -> None:
        self.waiting = "input"
        base = self.base_prompts(node)
        self.commands.append(self.collect(node, (*before, *base)))

    def help(self, node: AnyNode, before: Sequence[PromptSpec]) -> None:
        specific: tuple[PromptSpec, ...] = tuple(getattr(node, "help", ()))
        if not specific:
            specific = (*self.base_prompts(node), self.key(self.s.help_prompt))
        self.waiting = "input"
        self.commands.append(self.collect(node, (*before, *specific)))

    def retry(self, node: AnyNode, kind: str) -> None:
        retries = node.retries or self.s.retries
        if kind == "no_input":
            self.no_input += 1
            handlers, count = retries.no_input, self.no_input
        else:
            self.no_match += 1
            handlers, count = retries.no_match, self.no_match
        handler: RetryHandler = handlers[min(count, len(handlers)) - 1]
        before: tuple[PromptSpec, ...] = handler.prompts
        if kind == "no_match" and isinstance(node, CollectDigitsNode) and node.invalid:
            before = (*node.invalid, *before)
        log.info("%s #%d at %s -> %s", kind, count, node.id, handler.then)
        if handler.then == "reprompt":
            self.reprompt(node, before)
        elif handler.then == "help":
            self.help(node, before)
        elif handler.then == "operator":
            self.play(before, self.barge_in(node))
            self.transfer(self.s.operator_queue, kind, ())
        else:
            self.play((*before, self.key(self.s.goodbye_prompt)), self.barge_in(node))
            self.hang_up(kind)

    # ---- endings -------------------------------------------------------------------------------------

    def transfer(self, queue: str, reason: str, context_vars: Sequence[str]) -> None:
        context: dict[str, str] = {"line": self.tree.line, "node": self.node, "reason": reason}
        if self.last_action:
            context["last_action"] = self.last_action
        for name in ("subscriber_id", "card_id", "authenticated", "auth_method", "language", *context_vars):
            if name in self.secret_vars:
                continue
            value = self.vars.get(name)
            if value is not None:
                context[name] = str(value)
        self.commands.append(Transfer(queue, reason, context))
        self.end("transfer")

    def hang_up(self, reason: str) -> None:
        self.commands.append(HangUp(reason))
        self.end("hangup")

    def end(self, result: str) -> None:
        self.waiting = ""
        self.finished = True
        self.result = result

    def fail(self, reason: str) -> None:
        """Apology, then the operator queue: the one way out of anything unexpected."""
        self.play((self.key(self.s.error_prompt),))
        self.transfer(self.s.operator_queue, reason, ())

    # ---- input ---------------------------------------------------------------------------------------

    def on_input(self, event: Digits | Speech | NoInput) -> None:
        node = self.tree.nodes[self.node]
        if isinstance(event, NoInput):
            self.retry(node, "no_input")
            return
        if isinstance(node, ChooseNode) and self.choose(node, event):
            return
        universal = self.universal(node, event)
        if universal:
            self.do_universal(node, universal)
            return
        if not self.match(node, event):
            self.retry(node, "no_match")

    def universal(self, node: AnyNode, event: Digits | Speech) -> str | None:
        if isinstance(event, Digits):
            escape = self.escape_keys(node)
            keys = self.universal_keys(node)
            if event.digits in keys and event.digits in escape:
                return keys[event.digits]
            # A long collect ends at once on an escape key: "12*" means "*".
            if len(event.digits) > 1 and event.digits[-1] in escape and not event.digits[-1].isdigit():
                return keys[event.digits[-1]]
            return None
        said = normalize_phrase(event.text)
        for name, phrases in self.universal_phrases(node).items():
            if any(said == normalize_phrase(p) for p in phrases):
                return name
        return None

    def do_universal(self, node: AnyNode, name: str) -> None:
        log.info("universal key %s at %s", name, node.id)
        if name == "repeat":
            self.reprompt(node, ())
        elif name == "operator":
            self.play((self.key(self.s.transfer_prompt),))
            self.transfer(self.s.operator_queue, "caller_request", ())
        elif name == "main":
            self.history.clear()
            self.returns.clear()
            self.enter(self.s.main_menu)
        elif name == "back":
            if self.history and self.history[-1] == node.id:
                self.history.pop()
            if self.history:
                target = self.history.pop()
                self.enter(target)
            else:
                self.reprompt(node, ())

    def match(self, node: AnyNode, event: Digits | Speech) -> bool:
        if isinstance(node, MenuNode):
            choice = self.menu_choice(node, event)
            if choice is None:
                return False
            if choice.language:
                self.switch_language(choice.language)
            self.enter(choice.goto)
            return True
        if isinstance(node, ConfirmNode):
            answer = self.confirm_answer(event)
            if answer is None:
                return False
            self.enter(node.yes if answer else node.no)
            return True
        if isinstance(node, CollectDigitsNode):
            if isinstance(event, Digits):
                digits = event.digits
            elif self.takes_spoken_digits(node):
                said = spoken_digits(event.text, self.language)
                if said is None:  # not digit words only (or nothing heard): as a wrong key would be
                    return False
                digits = said
            else:
                digits = re.sub(r"\D", "", event.text)
            if node.terminator:
                digits = digits.rstrip(node.terminator)
            if not node.min_length <= len(digits) <= node.max_length:
                return False
            value = check_digits(node.check, digits)
            if value is None:
                return False
            self.vars[node.into] = int(value) if node.integer else value
            if node.secret:
                self.secret_vars.add(node.into)
            self.enter(node.goto)
            return True
        return False

    def menu_choice(self, node: MenuNode, event: Digits | Speech) -> Choice | None:
        if isinstance(event, Digits):
            return next((c for c in node.choices if c.key and c.key == event.digits), None)
        said = normalize_phrase(event.text)
        if not said:
            return None
        phrases = [(c, normalize_phrase(p)) for c in node.choices for p in c.phrases.get(self.language, ())]
        exact = [c for c, p in phrases if p == said]
        if exact:
            return exact[0]
        contained = {c.goto: c for c, p in phrases if _contains_phrase(said, p)}
        return next(iter(contained.values())) if len(contained) == 1 else None

    def confirm_answer(self, event: Digits | Speech) -> bool | None:
        if isinstance(event, Digits):
            return {"1": True, "2": False}.get(event.digits)
        said = normalize_phrase(event.text)
        yes, no = self.confirm_phrases()
        # "нет" wins over "да" in "да нет": a wrong cancel is cheaper than a wrong change.
        if any(_contains_phrase(said, normalize_phrase(p)) for p in no):
            return False
        if any(_contains_phrase(said, normalize_phrase(p)) for p in yes):
            return True
        return None

    def choose(self, node: ChooseNode, event: Digits | Speech) -> bool:
        items = self.list_items(node)
        picked: Mapping[str, Any] | None = None
        if isinstance(event, Digits):
            picked = next((i for i in items if str(i.get("key")) == event.digits), None)
        else:
            said = normalize_phrase(event.text)
            named = [
                i for i in items if i.get("name") and _contains_phrase(said, normalize_phrase(str(i["name"])))
            ]
            picked = named[0] if len(named) == 1 else None
        if picked is None:
            return False
        self.vars[node.into] = str(picked.get("key"))
        for name, value in picked.items():  # the chosen item's fields, e.g. plan_key_name, card_key_last4
            if name != "key":
                self.vars[f"{node.into}_{name}"] = value
        self.enter(node.goto)
        return True

    def on_action(self, result: ActionResult) -> None:
        node = self.tree.nodes[self.node]
        assert isinstance(node, ActionNode)
        self.last_action = f"{node.name}:{result.status}"  # the Session publishes IVR_LAST_ACTION
        if result.status == "error":
            log.warning("action %s failed at %s; apology and operator", node.name, node.id)
            self.fail("action_error")
            return
        for name, value in result.values.items():
            self.vars[name] = value
        target = node.branches.get(result.status) or node.default
        if target is None:
            log.error("action %s returned unhandled status %r at %s", node.name, result.status, node.id)
            self.fail("unhandled_status")
            return
        self.enter(target)


def evaluate(cond: Condition, variables: Mapping[str, Any]) -> bool:
    value = variables.get(cond.var)
    op, other = cond.op, cond.value
    try:
        if op == "true":
            return bool(value)
        if op == "false":
            return not value
        if op == "set":
            return value is not None
        if op == "unset":
            return value is None
        if op == "eq":
            return bool(value == other)
        if op == "ne":
            return bool(value != other)
        if op == "in":
            return value in (other or ())
        if value is None:
            return False
        if op == "lt":
            return bool(value < other)
        if op == "le":
            return bool(value <= other)
        if op == "gt":
            return bool(value > other)
        if op == "ge":
            return bool(value >= other)
    except TypeError:
        return False
    raise ValueError(f"unknown condition operator {op!r}")


class Engine:
    """Runs one tree. Holds no call state: many calls share one Engine."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def start(self, event: CallStarted) -> tuple[CallState, list[Command]]:
        settings = self.tree.settings
        language = event.language if event.language in settings.languages else settings.default_language
        facts: dict[str, Any] = {
            "authenticated": False,
            "access_level": None,
            "caller_id_trusted": False,
            "roaming": False,
        }
        facts.update(event.facts)
        facts.update(
            line=event.line,
            did=event.did,
            caller_id=event.caller_id,
            language=language,
            call_id=event.call_id,
        )
        state = CallState(
            node=settings.start,
            call_id=event.call_id,
            language=language,
            vars=facts,
            tree_version=self.tree.version,
            waiting="",
        )
        run = _Run(self.tree, state)
        if language != event.language:
            run.commands.append(SetLanguage(language))
        run.enter(settings.start)
        return run.freeze(), run.commands

    def step(self, state: CallState, event: Event) -> tuple[CallState, list[Command]]:
        if state.finished:
            return state, []
        if isinstance(event, CallStarted):
            raise EngineError("CallStarted goes to start(), not step()")
        run = _Run(self.tree, state)
        if isinstance(event, HungUp):
            run.end("hungup")
            return run.freeze(), []
        if isinstance(event, CallTimeExceeded):
            run.play((run.key(self.tree.settings.time_exceeded_prompt),))
            run.hang_up("max_call_time")
            return run.freeze(), run.commands
        if isinstance(event, ActionResult):
            if state.waiting != "action":
                raise EngineError(f"action result while waiting for {state.waiting or 'nothing'}")
            run.on_action(event)
        else:
            if state.waiting != "input":
                raise EngineError(f"caller input while waiting for {state.waiting or 'nothing'}")
            run.on_input(event)
        return run.freeze(), run.commands
