"""Properties of the dialog engine under random calls, on generated valid trees and on the shipped trees.

1. It never raises. The one exception is documented: an event out of turn (caller input while an action
   runs, an action result while the caller is asked, a second CallStarted) breaks the driver contract and
   is refused with `EngineError`; nothing else may escape, and the call's state is a value, so the call
   goes on unharmed.
2. It never leaves the caller in silence. Drivers act on the first `Collect`, `InvokeAction`, `Transfer`
   or `HangUp` in a step's commands (ivr/engine/commands.py, ivr/app/session.py, which gives up on a step
   with none), so after every step that does not end the call the commands are not empty, the last one
   is what the call now waits on (a `Collect` at a node that takes input, or the `InvokeAction` of the
   action node whose result the engine awaits) and nothing before it waits or ends. A step that ends the
   call ends with the `Transfer` or `HangUp` the state records; only the caller's own hang-up ends it
   without one.
3. Every call ends in a hang-up or a transfer. A `CallTimeExceeded` (the driver's clock passing the
   line's maximum call length) ends the call at once, with the time-exceeded prompt, from every state a
   call reaches; a caller who stays silent, or keeps saying what matches nothing, is sent on by the
   node's retry handlers within as many turns as they take to reach `operator` or `goodbye`; a call still
   going after its events (at most MAX_EVENTS) ends on the time limit.

Generated trees are tree-file data (what YAML gives the loader) built by the loader, valid by
construction (a test checks that the schema and `check_tree` accept them); the property tests still keep
only trees `check_tree` accepts, as trees that fail it never reach the engine. Events are drawn for the
turn the engine is at (keys and phrases of the current node, valid and invalid numbers for a collect, the
known statuses of the awaited action), with wrong input, random keys and text, universal keys and
phrases, `error` and unknown statuses, hang-ups, time-outs and out-of-turn events mixed in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ivr.app import actions
from ivr.engine.actions import ActionCatalog, ActionInfo
from ivr.engine.commands import (
    Collect,
    Command,
    HangUp,
    InvokeAction,
    Play,
    SetLanguage,
    SetVariable,
    Transfer,
)
from ivr.engine.engine import (
    DEFAULT_CONFIRM_PHRASES,
    DEFAULT_UNIVERSAL_PHRASES,
    CallState,
    Engine,
    EngineError,
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
from ivr.engine.tree import (
    WAITING_KINDS,
    ActionNode,
    ChooseNode,
    CollectDigitsNode,
    HangUpNode,
    IfNode,
    MenuNode,
    PromptSpec,
    ReturnNode,
    TransferNode,
    Tree,
    successors,
)
from ivr.trees import load_tree
from ivr.trees.checks import check_tree
from ivr.trees.loader import build_tree, check_structure

ROOT = Path(__file__).resolve().parents[3]
MAX_EVENTS = 200  # per call
GARBAGE = "zzqxzzqx"  # speech no node, phrase or list item matches: a no-match everywhere
ENDING = ("operator", "goodbye")  # retry handlers that send the caller on

# ---- generated trees -------------------------------------------------------------------------------

CATALOG: dict[str, ActionInfo] = {
    "fake.lookup": ActionInfo(
        "fake.lookup",
        frozenset({"found", "unknown", "closed"}),
        False,
        frozenset({"number"}),
        frozenset({"subscriber_id", "level", "flag"}),
    ),
    "fake.list": ActionInfo("fake.list", frozenset({"ok", "none"}), False, values=frozenset({"items"})),
    "fake.ping": ActionInfo("fake.ping", frozenset({"ok"}), False),
    "fake.change": ActionInfo(
        "fake.change",
        frozenset({"ok", "refused", "limit"}),
        True,
        frozenset({"amount"}),
        frozenset({"amount"}),
    ),
}
SAFE_ACTIONS = ("fake.lookup", "fake.list", "fake.ping")  # "fake.change" only right after a confirm's yes

# Menu phrases by index; a menu gives each choice its own index, so no two choices share a phrase.
PHRASES = {
    "ru": ("баланс", "тариф", "карта", "новая карта", "подарки", "да", "нет", "пароль"),
    "en": ("balance", "plan", "card", "new card", "gifts", "yes", "no", "password"),
}
ITEM_NAMES = ("альфа", "beta", "новая карта", "")
KEY_PRESETS = (
    {"repeat": "*", "back": "#", "main": "9", "operator": "0"},
    {"repeat": "#", "back": "*", "main": "", "operator": "0"},
    {"repeat": "*", "back": "", "main": "8", "operator": "9"},
)
RETRY_PRESETS: tuple[dict[str, Any], ...] = (
    {
        "no_input": [{"then": "reprompt"}, {"say": ["bye"], "then": "goodbye"}],
        "no_match": [{"say": ["sorry"], "then": "help"}, {"then": "operator"}],
    },
    {
        "no_input": [{"then": "operator"}],
        "no_match": [{"then": "reprompt"}, {"then": "reprompt"}, {"say": ["bye"], "then": "goodbye"}],
    },
    {"no_match": [{"say": ["invalid"], "then": "reprompt"}, {"then": "goodbye"}]},
    # A tree may keep asking a silent caller: then only the call-time limit ends the call.
    {"no_input": [{"say": ["still_there"], "then": "reprompt"}]},
)
CONDITIONS: tuple[dict[str, Any], ...] = (
    {"var": "flag"},
    {"var": "flag", "is": False},
    {"var": "level", "eq": "gold"},
    {"var": "level", "ne": "gold"},
    {"var": "amount", "gt": 10},
    {"var": "amount", "le": 3},
    {"var": "items", "is": "set"},
    {"var": "items", "is": "unset"},
    {"var": "language", "eq": "en"},
    {"var": "authenticated"},
    {"var": "code", "in": ["1234", "0000"]},
)
SET_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "flag": st.booleans(),
    "level": st.sampled_from(["gold", "basic", "{code}"]),
    "amount": st.one_of(st.integers(-3, 30), st.just("{amount}")),
    "note": st.sampled_from(["code {code}", "", "x"]),
    # a list for a choose node or an `each` prompt, or not a list at all: the tree may set anything
    "items": st.one_of(
        st.just([{"key": "1", "name": "альфа"}, {"key": "2", "name": "beta"}]),
        st.just(["альфа", "beta"]),
        st.just([]),
        st.integers(0, 3),
        st.booleans(),
        st.just("альфа"),
    ),
}
QUICK = ("say", "set", "if", "language", "call")  # nodes passed without waiting
ANCHORS = ("menu", "confirm", "action", "choose")  # waits with at least one edge forward
INNER = (
    "menu",
    "menu",
    "collect",
    "collect",
    "confirm",
    "action",
    "action",
    "choose",
    "choose",
    "set",
    *QUICK,
)
ENDS = ("transfer", "hangup", "hangup", "return")


def _prompts(draw: st.DrawFn, name: str, min_size: int = 1) -> list[Any]:
    out: list[Any] = []
    for k in range(draw(st.integers(min_size, 2))):
        kind = draw(st.sampled_from(["plain", "plain", "plain", "when", "each"]))
        if kind == "plain":
            out.append(f"{name}_{k}")
        elif kind == "when":
            out.append({"key": f"{name}_{k}", "when": draw(st.sampled_from(CONDITIONS))})
        else:
            limit = draw(st.integers(1, 3))
            out.append({"key": f"{name}_{k}", "each": "items", "limit": limit, "values": {"nm": "name"}})
    return out


@st.composite
def tree_data(draw: st.DrawFn) -> dict[str, Any]:
    """A valid tree by construction. Nodes are in a row and the last ones end the call. Every node has an
    edge to a later node, except that the one edge of a say, set, language or collect node may go back to
    a menu, confirm, action or choose; such a back edge is sent forward if it closes a loop no ending
    leaves, so each node can reach an ending. Nodes passed without waiting go back only to waiting nodes,
    so they never loop by themselves. A state-changing action sits right after the confirm whose `yes`
    goes there, and nothing else does. Nodes not reached from the start or the main menu are dropped."""
    languages = draw(st.sampled_from([["ru"], ["ru", "en"]]))
    keys = draw(st.sampled_from(KEY_PRESETS))
    first = draw(st.sampled_from(["main", *INNER]))  # "main": the call starts at the main menu
    middle = draw(st.lists(st.sampled_from(INNER), min_size=1, max_size=9))
    ends = draw(st.lists(st.sampled_from(ENDS), min_size=1, max_size=3))
    row = [*([] if first == "main" else [first]), "main", *middle, *ends]
    kinds: list[str] = []
    main = 0
    for drawn in row:
        if drawn == "main":
            main, drawn = len(kinds), "menu"
        kind = "say" if drawn == "language" and len(languages) == 1 else drawn
        if kind == "choose" and draw(st.integers(0, 2)) == 0:
            kinds.append("set_list")  # a list the tree itself offers: set, then choose
        kinds.append(kind)
        if kind == "confirm" and draw(st.booleans()):
            kinds.append("change")
    ids = [f"n{i}" for i in range(len(kinds))]
    ids[main] = "main"
    if main:
        ids[0] = "start"
    n = len(kinds)

    backward: set[int] = set()  # nodes whose one edge goes back

    def forward(i: int) -> str:
        return draw(st.sampled_from([ids[j] for j in range(i + 1, n) if kinds[j] != "change"]))

    def anywhere(i: int) -> str:
        return draw(st.sampled_from([ids[j] for j in range(n) if kinds[j] != "change"]))

    def single(i: int) -> str:
        """The one edge of a say, set, language or collect node: forward, or back to a waiting node."""
        back = [ids[j] for j in range(i) if kinds[j] in ANCHORS]
        if back and draw(st.integers(0, 3)) == 0:
            backward.add(i)
            return draw(st.sampled_from(back))
        return forward(i)

    def retries() -> dict[str, Any]:
        if draw(st.integers(0, 3)):
            return {}
        return {"retries": draw(st.sampled_from(RETRY_PRESETS))}

    def action(i: int, name: str) -> dict[str, Any]:
        statuses = sorted(CATALOG[name].statuses)
        handled = [s for s in statuses if draw(st.integers(0, 4))]
        default = len(handled) < len(statuses) or draw(st.integers(0, 4)) == 0
        targets = [forward(i)] + [anywhere(i) for _ in range(len(handled) + default - 1)]
        node: dict[str, Any] = {"action": name, "results": dict(zip(handled, targets, strict=False))}
        if default:
            node["default"] = targets[-1]
        if name == "fake.lookup" and draw(st.booleans()):
            node["args"] = {"number": "{code}"}
        if name == "fake.change":
            node["args"] = {"amount": "{amount}"}
        return node

    def make(i: int, kind: str) -> dict[str, Any]:
        name = ids[i]
        if kind == "menu":
            universals: list[bool | list[str]] = [
                True,
                True,
                True,
                False,
                ["repeat", "operator"],
                ["back", "main"],
            ]
            universal = draw(st.sampled_from(universals))
            allowed = {"repeat", "back", "main", "operator"} if universal is True else set(universal or ())
            taken = {key for uname, key in keys.items() if key and uname in allowed}
            free = [k for k in "1234567890*#" if k not in taken]
            count = draw(st.integers(1, 4))
            choice_keys = draw(st.lists(st.sampled_from(free), min_size=count, max_size=count, unique=True))
            phrase_ids = draw(st.permutations(range(len(PHRASES["ru"]))))
            choices: list[dict[str, Any]] = []
            for c in range(count):
                choice: dict[str, Any] = {"goto": forward(i) if c == 0 else anywhere(i)}
                keyed = c == 0 or draw(st.integers(0, 3)) > 0
                if keyed:
                    choice["key"] = choice_keys[c]
                if not keyed or draw(st.booleans()):
                    choice["say"] = {lang: [PHRASES[lang][phrase_ids[c]]] for lang in languages}
                if len(languages) > 1 and draw(st.integers(0, 5)) == 0:
                    choice["language"] = draw(st.sampled_from(languages))
                choices.append(choice)
            node = {"menu": _prompts(draw, name), "choices": choices, **retries()}
            if universal is not True:
                node["universal"] = universal
            if draw(st.booleans()):
                node["help"] = [f"{name}_help"]
            return node
        if kind == "collect":
            check = draw(st.sampled_from([None, "length", "luhn", "ru_phone", "card", "ean13"]))
            lengths: Any
            if check == "card":
                lengths = [13, 19]
            elif check == "ean13":
                lengths = 13
            elif check == "ru_phone":
                lengths = [10, 11]
            else:
                low = draw(st.integers(1, 6))
                lengths = [low, draw(st.integers(low, 8))]
            node = {
                "collect": _prompts(draw, name),
                "into": draw(st.sampled_from(["code", "amount", "phone"])),
                "length": lengths,
                "goto": single(i),
                **retries(),
            }
            if check:
                node["check"] = check
            for flag in ("secret", "integer"):
                if draw(st.integers(0, 3)) == 0:
                    node[flag] = True
            if draw(st.integers(0, 2)) == 0:
                node["terminator"] = draw(st.sampled_from(["*", None]))
            if draw(st.booleans()):
                node["invalid"] = [f"{name}_invalid"]
            return node
        if kind == "confirm":
            yes = ids[i + 1] if i + 1 < n and kinds[i + 1] == "change" else forward(i)
            node = {"confirm": _prompts(draw, name), "yes": yes, "no": anywhere(i), **retries()}
            if draw(st.booleans()):
                node["help"] = [f"{name}_help"]
            return node
        if kind == "action":
            return action(i, draw(st.sampled_from(SAFE_ACTIONS)))
        if kind == "change":
            return action(i, "fake.change")
        if kind == "choose":
            node = {"choose": "items", "into": "pick", "goto": forward(i), **retries()}
            if draw(st.booleans()):
                node["say"] = _prompts(draw, name)
            if draw(st.integers(0, 3)):
                node["item"] = {"key": f"{name}_item", "values": {"nm": "name"}}
            if draw(st.booleans()):
                node["empty"] = anywhere(i)
            return node
        if kind == "say":
            return {"say": _prompts(draw, name), "goto": single(i)}
        if kind == "set_list":
            return {"set": {"items": draw(SET_VALUES["items"])}, "goto": ids[i + 1]}
        if kind == "set":
            names = draw(st.lists(st.sampled_from(sorted(SET_VALUES)), min_size=1, max_size=2, unique=True))
            return {"set": {var: draw(SET_VALUES[var]) for var in names}, "goto": single(i)}
        if kind == "language":
            return {"language": draw(st.sampled_from(languages)), "goto": single(i)}
        if kind == "if":
            branches = [
                {
                    "when": draw(
                        st.one_of(
                            st.sampled_from(CONDITIONS),
                            st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=2),
                        )
                    ),
                    "goto": forward(i),
                }
                for _ in range(draw(st.integers(1, 2)))
            ]
            return {"if": branches, "else": forward(i)}
        if kind == "call":
            return {"call": forward(i), "goto": forward(i)}
        if kind == "transfer":
            node = {"transfer": draw(st.sampled_from([None, "sales"])), "reason": f"{name}_reason"}
            if draw(st.booleans()):
                node["context"] = ["code", "level"]
            if draw(st.booleans()):
                node["say"] = _prompts(draw, name)
            return node
        if kind == "hangup":
            return {"hangup": _prompts(draw, name, min_size=0)}
        assert kind == "return", kind
        return {"return": True}

    settings_: dict[str, Any] = {
        "languages": languages,
        "start": ids[0],
        "main_menu": "main",
        "max_call_seconds": 60,
        "keys": keys,
    }
    if draw(st.integers(0, 3)) == 0:
        settings_["retries"] = draw(st.sampled_from(RETRY_PRESETS[:3]))
    if draw(st.integers(0, 4)) == 0:
        settings_["confirm_phrases"] = {"ru": {"yes": ["ага"], "no": ["неа"]}}
    data: dict[str, Any] = {
        "version": 1,
        "line": "gen",
        "settings": settings_,
        "nodes": {ids[i]: make(i, kind) for i, kind in enumerate(kinds)},
    }
    # A node whose one edge goes back may close a loop no ending leaves: send the last such one forward,
    # to a node that reaches an ending, until none is left.
    while True:
        tree = build_tree(data, {}, "gen.yaml", None)
        good = {
            nid
            for nid, node in tree.nodes.items()
            if isinstance(node, TransferNode | HangUpNode | ReturnNode)
        }
        grown = True
        while grown:
            grown = False
            for nid, node in tree.nodes.items():
                if nid not in good and any(t in good for _label, t in successors(node)):
                    good.add(nid)
                    grown = True
        stuck = [i for i in backward if ids[i] not in good]
        if not stuck:
            break
        i = max(stuck)
        backward.discard(i)
        data["nodes"][ids[i]]["goto"] = draw(
            st.sampled_from([ids[j] for j in range(i + 1, n) if ids[j] in good and kinds[j] != "change"])
        )
    seen = {ids[0], "main"}
    todo = list(seen)
    while todo:
        for _label, target in successors(tree.nodes[todo.pop()]):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    data["nodes"] = {nid: node for nid, node in data["nodes"].items() if nid in seen}
    return data


def generated_tree(data: dict[str, Any]) -> Tree:
    """The tree as the loader builds it; only trees the checks accept reach the engine."""
    tree = build_tree(data, {}, "gen.yaml", None)
    assume(not check_tree(tree, CATALOG, None))
    return tree


ITEMS = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from(["1", "2", "3", "12"]), "name": st.sampled_from(ITEM_NAMES)},
        optional={"active": st.booleans()},
    ),
    max_size=3,
)
GENERATED_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "items": ITEMS,
        "subscriber_id": st.integers(1, 9),
        "level": st.sampled_from(["gold", "basic"]),
        "flag": st.booleans(),
        "amount": st.integers(0, 50),
    },
)
CALLS = st.builds(
    CallStarted,
    line=st.just("test"),
    did=st.sampled_from(["0505", "0500", "88005500500"]),
    caller_id=st.sampled_from([None, "79001112233"]),
    language=st.sampled_from(["ru", "en", "de"]),
    facts=st.fixed_dictionaries({}, optional={"caller_id_trusted": st.booleans(), "roaming": st.booleans()}),
    call_id=st.just("c1"),
)

# ---- one random call ---------------------------------------------------------------------------------

VALID_NUMBERS = {
    "card": ("4006381333931", "4111111111111111"),
    "ean13": ("4006381333931",),
    "luhn": ("79927398713", "4111111111111111"),
    "ru_phone": ("89161234567", "9161234567", "79161234567"),
}


def phrases_of(tree: Tree) -> list[str]:
    """Everything a caller might say that means something somewhere in the tree, and some that do not."""
    out: set[str] = {"", "да нет", "1234", "мой номер 9161234567", *ITEM_NAMES}
    for node in tree.nodes.values():
        if isinstance(node, MenuNode):
            for choice in node.choices:
                for phrases in choice.phrases.values():
                    out.update(phrases)
    s = tree.settings
    for table in (DEFAULT_UNIVERSAL_PHRASES, s.keys.phrases):
        for by_name in table.values():
            for phrases in by_name.values():
                out.update(phrases)
    for answers in (*DEFAULT_CONFIRM_PHRASES.values(), *s.confirm_phrases.values()):
        for phrases in answers:
            out.update(phrases)
    return sorted(out)


class Caller:
    """Draws the events of one call for the turn the engine is at. A call has a noise level: 0 is a
    cooperative caller (answers what is asked, actions return their known statuses) who gets deep into the
    tree; 1 and 2 add more and more wrong, random and out-of-turn input, failing actions, hang-ups and
    time-outs."""

    def __init__(
        self,
        data: st.DataObject,
        tree: Tree,
        catalog: ActionCatalog,
        values: st.SearchStrategy[dict[str, Any]],
    ) -> None:
        self.draw, self.tree, self.catalog, self.values = data.draw, tree, catalog, values
        self.noise = data.draw(st.integers(0, 2), label="noise")
        self.phrases = phrases_of(tree)
        self.keys = sorted({*tree.settings.keys.by_key(), "1", "2", "3", "*", "#", "0", "9"})

    def next(self, state: CallState) -> tuple[Event, bool]:
        """An event and whether it is in turn (out-of-turn events are refused with EngineError)."""
        odd = ["time", "hung_up", "out_of_turn"] * self.noise
        what = self.draw(st.sampled_from(["turn"] * 40 + odd), label="kind")
        if what == "time":
            return CallTimeExceeded(), True
        if what == "hung_up":
            return HungUp(), True
        if what == "out_of_turn":
            if state.waiting == "action":
                wrong: list[Event] = [Digits("1"), Speech("да"), NoInput()]
            else:
                wrong = [ActionResult("ok")]
            return self.draw(st.sampled_from([*wrong, CallStarted("test", "0505", None)])), False
        if state.waiting == "action":
            return self.result(state), True
        return self.input(state), True

    def result(self, state: CallState) -> ActionResult:
        node = self.tree.nodes[state.node]
        assert isinstance(node, ActionNode)
        info = self.catalog.get(node.name)
        known = sorted(info.statuses) if info else []
        if not self.noise:  # a cooperative caller's actions mostly lead on, not to an ending
            ends = (TransferNode, HangUpNode)
            onward = [
                s
                for s in known
                if not isinstance(self.tree.nodes.get(node.branches.get(s) or node.default or ""), ends)
            ]
            known = onward or known
        odd = ["error", "surprise"] * self.noise
        status = self.draw(
            st.sampled_from(known * 4 + odd if known else ["error", "surprise"]), label="status"
        )
        return ActionResult(status, self.draw(self.values, label="values"))

    def input(self, state: CallState) -> Event:
        odd = ["key", "digits", "speech", "any_phrase", "no_input"] * self.noise
        kind = self.draw(st.sampled_from(["answer"] * 6 + ["phrase"] * 2 + ["no_input", *odd]), label="input")
        if kind == "answer":  # a key or number this node takes, mostly valid
            return Digits(self.draw(st.sampled_from(self.answers(state)), label="answer"))
        if kind in ("phrase", "any_phrase"):
            said = self.draw(
                st.sampled_from(self.said(state) if kind == "phrase" else self.phrases), label="phrase"
            )
            return Speech(said + self.draw(st.sampled_from(["", "", ", пожалуйста", "!"])))
        if kind == "key":
            return Digits(self.draw(st.sampled_from(self.keys), label="key"))
        if kind == "digits":
            return Digits(self.draw(st.text("0123456789*#", max_size=20), label="digits"))
        if kind == "speech":
            return Speech(self.draw(st.text(max_size=12), label="speech"))
        return NoInput()

    def answers(self, state: CallState) -> list[str]:
        node = self.tree.nodes[state.node]
        if isinstance(node, MenuNode):
            return [c.key for c in node.choices if c.key] or ["1"]
        if isinstance(node, ChooseNode):
            return [str(item.get("key")) for item in items_of(state, node)] or ["1"]
        if isinstance(node, CollectDigitsNode):
            typed = self.draw(
                st.one_of(
                    st.sampled_from(VALID_NUMBERS.get(node.check or "", ("1234",))),
                    st.text("0123456789", min_size=node.min_length, max_size=node.max_length),
                ),
                label="number",
            )
            return [typed, typed + (node.terminator or ""), typed + "*"]
        return ["1", "2"]  # a confirm: yes, no

    def said(self, state: CallState) -> list[str]:
        """Phrases this node takes, in the call's language."""
        node = self.tree.nodes[state.node]
        if isinstance(node, MenuNode):
            out = [p for c in node.choices for p in c.phrases.get(state.language, ())]
        elif isinstance(node, ChooseNode):
            out = [str(item.get("name")) for item in items_of(state, node)]
        elif isinstance(node, CollectDigitsNode):
            out = ["мой номер 9161234567", "1234", "один два"]
        else:
            yes, no = self.tree.settings.confirm_phrases.get(state.language) or DEFAULT_CONFIRM_PHRASES.get(
                state.language, ((), ())
            )
            out = [*yes, *no]
        return out or self.phrases


def items_of(state: CallState, node: ChooseNode) -> list[Mapping[str, Any]]:
    items = state.vars.get(node.items)
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list | tuple) else []


def check_turn(tree: Tree, state: CallState, commands: Sequence[Command]) -> None:
    """Property 2: the caller hears something or is waited on, and the driver knows what to wait for."""
    if state.finished:
        if state.result == "hungup":
            assert commands == []
            return
        assert state.result in ("transfer", "hangup"), state.result
        assert commands, "the call ended without a transfer or a hang-up"
        assert isinstance(commands[-1], Transfer if state.result == "transfer" else HangUp), commands
    else:
        assert commands, f"silence: the call goes on at {state.node} but the engine gave no command"
        last, node = commands[-1], tree.nodes[state.node]
        if state.waiting == "input":
            assert isinstance(last, Collect), commands
            assert isinstance(node, WAITING_KINDS), node
            # Keys the caller can type. (A choose node sizes its collect by its items' keys: over items
            # without a key it asks for at most 0 keys; drivers then take one, so that is no silence.)
            assert 1 <= last.min_digits <= last.max_digits or isinstance(node, ChooseNode), last
        else:
            assert state.waiting == "action", state
            assert isinstance(last, InvokeAction) and isinstance(node, ActionNode), commands
            assert last.name == node.name
    # Drivers act on the first waiting or ending command: there is one, and it is the last.
    assert all(isinstance(c, Play | SetLanguage | SetVariable) for c in commands[:-1]), commands


def check_time_limit(engine: Engine, tree: Tree, state: CallState) -> None:
    """Property 3: the driver's clock ends the call at once, from any state."""
    ended, commands = engine.step(state, CallTimeExceeded())
    check_turn(tree, ended, commands)
    assert ended.finished and ended.result == "hangup"
    assert commands[-1] == HangUp("max_call_time")
    assert any(
        isinstance(c, Play) and tree.settings.time_exceeded_prompt in [p.key for p in c.prompts]
        for c in commands
    )


def check_retries_end(engine: Engine, tree: Tree, state: CallState) -> None:
    """Property 3: a caller who says nothing, or nothing that matches, is sent on by the retry handlers."""
    if state.waiting != "input":
        return
    node = tree.nodes[state.node]
    retries = node.retries or tree.settings.retries
    for answer, handlers, used in (
        (NoInput(), retries.no_input, state.no_input),
        (Speech(GARBAGE), retries.no_match, state.no_match),
    ):
        ends_at = next((count for count, h in enumerate(handlers, 1) if h.then in ENDING), None)
        if ends_at is None:
            continue  # this tree keeps asking: only the call-time limit ends such a call
        assert used < ends_at
        current = state
        for _turn in range(ends_at - used):
            current, commands = engine.step(current, answer)
            check_turn(tree, current, commands)
            if current.finished:
                break
            assert current.node == state.node  # asked again at the same node
        assert current.finished and current.result in ("transfer", "hangup"), (answer, current)


def run_call(
    data: st.DataObject,
    tree: Tree,
    catalog: ActionCatalog,
    values: st.SearchStrategy[dict[str, Any]],
) -> CallState:
    engine, caller = Engine(tree), Caller(data, tree, catalog, values)
    state, commands = engine.start(data.draw(CALLS, label="call"))
    check_turn(tree, state, commands)
    for _event in range(MAX_EVENTS):
        if state.finished:
            break
        check_time_limit(engine, tree, state)
        check_retries_end(engine, tree, state)
        incoming, in_turn = caller.next(state)
        if not in_turn:
            with pytest.raises(EngineError):
                engine.step(state, incoming)
            continue
        state, commands = engine.step(state, incoming)
        check_turn(tree, state, commands)
        if isinstance(incoming, CallTimeExceeded):
            assert state.finished and commands[-1] == HangUp("max_call_time")
    event(f"ended by {state.result or 'the time limit'}")
    if not state.finished:
        check_time_limit(engine, tree, state)
        state, commands = engine.step(state, CallTimeExceeded())
    assert state.finished and state.result in ("transfer", "hangup", "hungup")
    assert engine.step(state, Digits("1")) == (state, [])  # an ended call takes no more commands
    return state


# ---- the properties ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=tree_data())
def test_generated_trees_are_well_formed_and_valid(data: dict[str, Any]) -> None:
    """The generator writes tree files the schema accepts and builds trees the checks accept."""
    assert check_structure(data, {}, "gen.yaml") == []
    assert check_tree(build_tree(data, {}, "gen.yaml", None), CATALOG, None) == []


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=tree_data(), calls=st.data())
def test_generated_trees_never_raise_never_fall_silent_and_always_end(
    data: dict[str, Any], calls: st.DataObject
) -> None:
    tree = generated_tree(data)
    run_call(calls, tree, CATALOG, GENERATED_VALUES)


# Whatever a list variable holds: the tree (`set`) and an action result (its values) may put any YAML or
# JSON value there, not only the list of {key, name, ...} items a choose node offers.
ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["key", "name", "active", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def list_tree_data(draw: st.DrawFn) -> dict[str, Any]:
    """A tree whose choose node offers a list the tree itself sets, or one an action returns."""
    if draw(st.booleans()):
        start: dict[str, Any] = {"set": {"items": draw(ANYTHING)}, "goto": "pick"}
    else:
        start = {"action": "fake.list", "results": {"ok": "pick", "none": "main"}}
    pick: dict[str, Any] = {"choose": "items", "into": "pick", "goto": "main"}
    if draw(st.booleans()):
        pick["say"] = _prompts(draw, "pick")
    if draw(st.booleans()):
        pick["item"] = {"key": "pick_item", "values": {"nm": "name"}}
    if draw(st.booleans()):
        pick["empty"] = "bye"
    nodes = {
        "start": start,
        "pick": pick,
        "main": {
            "menu": ["main_menu"],
            "choices": [{"key": "1", "goto": "start"}, {"key": "2", "goto": "bye"}],
        },
        "bye": {"hangup": ["goodbye"]},
    }
    return {"version": 1, "line": "gen", "settings": {"languages": ["ru"]}, "nodes": nodes}


@settings(max_examples=200, deadline=None)
@given(data=list_tree_data(), calls=st.data())
def test_choose_takes_whatever_its_list_variable_holds(data: dict[str, Any], calls: st.DataObject) -> None:
    run_call(calls, generated_tree(data), CATALOG, st.fixed_dictionaries({"items": ANYTHING}))


@functools.cache
def shipped(line: str) -> tuple[Tree, ActionCatalog, st.SearchStrategy[dict[str, Any]]]:
    catalog = actions.catalog()
    tree = load_tree(ROOT / "prompts" / f"{line}.yaml", catalog)
    conditions: set[str] = set()
    lists: set[str] = set()

    def prompts(specs: Sequence[PromptSpec]) -> None:
        for spec in specs:
            if spec.when is not None:
                conditions.add(spec.when.var)
            if spec.each is not None:
                lists.add(spec.each)

    for node in tree.nodes.values():
        for attr in ("prompts", "help", "invalid"):
            prompts(getattr(node, attr, ()))
        if isinstance(node, IfNode):
            conditions.update(c.var for b in node.branches for c in b.when)
        if isinstance(node, ChooseNode):
            lists.add(node.items)
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 1000), st.sampled_from(["ru", "en", "x"]))
    values = st.fixed_dictionaries(
        {},
        optional={
            **{name: scalar for name in sorted(conditions)},
            **{name: ITEMS for name in sorted(lists)},
            "subscriber_id": st.integers(1, 9),
        },
    )
    return tree, catalog, values


@pytest.mark.parametrize("line", ["operator", "loyalty"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.data())
def test_shipped_trees_never_raise_never_fall_silent_and_always_end(line: str, calls: st.DataObject) -> None:
    tree, catalog, values = shipped(line)
    run_call(calls, tree, catalog, values)
