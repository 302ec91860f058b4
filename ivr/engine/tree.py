"""The prompt tree as the engine sees it: an immutable, already validated model.

`ivr.trees.loader` builds a `Tree` from YAML (and checks it); unit tests may build one directly.
Every node has an `id` and a `lineno` (its line in the YAML file, 0 when built in code) so runtime logs and
validation errors can point at the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Call variables that only action results or the driver (CallStarted facts) may set.
RESERVED_VARS = frozenset(
    {
        "subscriber_id",
        "account_id",
        "authenticated",
        "access_level",
        "caller_id_trusted",
        "roaming",
        "card_id",
        # caller identification (docs/security.md): how the caller proved who they are, the step-up
        # state, the throttling bucket of the caller ID
        "auth_method",
        "otp_verified",
        "pin_unlocked",
        "step_up_required",
        "caller_bucket",
    }
)
# Variables every call has from its start.
CALL_FACT_VARS = frozenset({"line", "did", "caller_id", "language", "call_id"}) | RESERVED_VARS

HandlerThen = Literal["reprompt", "help", "operator", "goodbye"]


@dataclass(frozen=True)
class Condition:
    """`var` compared with `value` by `op` (eq, ne, lt, le, gt, ge, in, set, unset, true, false)."""

    var: str
    op: str = "true"
    value: Any = None
    lineno: int = 0


@dataclass(frozen=True)
class PromptSpec:
    """A prompt key to play. `values` maps placeholder name -> call variable name (the loader fills it
    from the text's placeholders); `each` plays the prompt once per item of a list variable, the item's
    fields filling placeholders first; `when` plays it only if the condition holds."""

    key: str
    values: Mapping[str, str] = field(default_factory=dict)
    each: str | None = None
    limit: int | None = None
    when: Condition | None = None
    lineno: int = 0


@dataclass(frozen=True)
class RetryHandler:
    """What the n-th no-input / no-match at a node does: say `prompts`, then reprompt, give full help,
    transfer to the operator, or say goodbye and hang up."""

    then: HandlerThen
    prompts: tuple[PromptSpec, ...] = ()


@dataclass(frozen=True)
class Retries:
    no_input: tuple[RetryHandler, ...]
    no_match: tuple[RetryHandler, ...]


DEFAULT_RETRIES = Retries(
    no_input=(
        RetryHandler("reprompt", (PromptSpec("no_input"),)),
        RetryHandler("help", (PromptSpec("no_input"),)),
        RetryHandler("operator", (PromptSpec("transfer_to_operator"),)),
    ),
    no_match=(
        RetryHandler("reprompt", (PromptSpec("no_match"),)),
        RetryHandler("help", (PromptSpec("no_match"),)),
        RetryHandler("operator", (PromptSpec("transfer_to_operator"),)),
    ),
)


@dataclass(frozen=True)
class UniversalKeys:
    """Keys (and phrases per language) that work in every menu. An empty key disables it."""

    repeat: str = "*"
    back: str = "#"
    main: str = "9"
    operator: str = "0"
    phrases: Mapping[str, Mapping[str, tuple[str, ...]]] = field(
        default_factory=dict
    )  # lang -> name -> phrases

    def by_key(self) -> dict[str, str]:
        named = {"repeat": self.repeat, "back": self.back, "main": self.main, "operator": self.operator}
        return {key: name for name, key in named.items() if key}


@dataclass(frozen=True)
class LineSettings:
    languages: tuple[str, ...] = ("ru",)
    default_language: str = "ru"
    start: str = "start"
    main_menu: str = "main"
    operator_queue: str = "operators"
    max_call_seconds: int = 900
    first_digit_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    # Every action runs under a time limit (an action node's `timeout` overrides it). After `hold_after`
    # seconds the caller hears the hold prompt; past the limit, the apology and the operator.
    action_timeout: float = 6.0
    hold_after: float = 1.5
    keys: UniversalKeys = field(default_factory=UniversalKeys)
    retries: Retries = DEFAULT_RETRIES
    # Prompt keys the engine itself plays.
    error_prompt: str = "error_apology"
    goodbye_prompt: str = "goodbye"
    time_exceeded_prompt: str = "call_time_exceeded"
    transfer_prompt: str = "transfer_to_operator"
    help_prompt: str = "universal_keys_help"
    hold_prompt: str = "please_wait"
    confirm_phrases: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    key: str  # DTMF key ("" for speech-only)
    phrases: Mapping[str, tuple[str, ...]]  # language -> phrases
    goto: str
    language: str | None = None  # choosing it switches the call's language
    lineno: int = 0


@dataclass(frozen=True)
class Node:
    id: str
    lineno: int = 0
    # Per-node override of the line's retry handlers.
    retries: Retries | None = None


@dataclass(frozen=True)
class MenuNode(Node):
    prompts: tuple[PromptSpec, ...] = ()
    help: tuple[PromptSpec, ...] = ()
    choices: tuple[Choice, ...] = ()
    # Which universal keys work here: all (the default), none, or the named ones (e.g. repeat, operator in
    # an identification menu, where "main menu" would skip identification).
    universal: frozenset[str] = frozenset({"repeat", "back", "main", "operator"})
    # False: the prompts are heard whole, neither a key nor the caller's voice stops them (legal notices,
    # a question asked once in full); input is taken once they end.
    barge_in: bool = True


@dataclass(frozen=True)
class CollectDigitsNode(Node):
    prompts: tuple[PromptSpec, ...] = ()
    help: tuple[PromptSpec, ...] = ()
    into: str = ""
    min_length: int = 1
    max_length: int = 1
    terminator: str | None = "#"
    check: str | None = None  # luhn | ean13 | ru_phone | card (luhn or ean13)
    secret: bool = False
    integer: bool = False  # store the digits as an int (days, points), else as a string
    first_digit_timeout: float | None = None
    inter_digit_timeout: float | None = None
    goto: str = ""
    invalid: tuple[PromptSpec, ...] = ()  # said on a no-match before the handler's prompts
    barge_in: bool = True  # False: the prompts are heard whole (as on a menu)
    # The caller may say the digits one by one in words (`ivr.engine.spoken`): the grammar is the digit
    # words of the call's language, and a sequence of them answers like the same keys. Never secret.
    spoken_digits: bool = False


@dataclass(frozen=True)
class SayNode(Node):
    prompts: tuple[PromptSpec, ...] = ()
    goto: str = ""
    barge_in: bool = True  # False: the prompts are heard whole (as on a menu)


@dataclass(frozen=True)
class ConfirmNode(Node):
    prompts: tuple[PromptSpec, ...] = ()
    help: tuple[PromptSpec, ...] = ()
    yes: str = ""
    no: str = ""
    barge_in: bool = True  # False: the prompts are heard whole (as on a menu)


@dataclass(frozen=True)
class ActionNode(Node):
    name: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)  # "{var}" strings are filled from call vars
    branches: Mapping[str, str] = field(default_factory=dict)  # status -> node id
    default: str | None = None  # for statuses not listed
    timeout: float | None = None  # seconds; None: the line's action_timeout


@dataclass(frozen=True)
class TransferNode(Node):
    queue: str | None = None  # None: the line's operator queue
    reason: str = ""
    context: tuple[str, ...] = ()  # call variables the agent sees
    prompts: tuple[PromptSpec, ...] = ()


@dataclass(frozen=True)
class CallFlowNode(Node):
    """Run a shared sub-flow starting at `flow`; its `return` node comes back to `goto`."""

    flow: str = ""
    goto: str = ""


@dataclass(frozen=True)
class ReturnNode(Node):
    pass


@dataclass(frozen=True)
class SetLanguageNode(Node):
    language: str = ""
    goto: str = ""


@dataclass(frozen=True)
class Branch:
    when: tuple[Condition, ...]  # all must hold
    goto: str
    lineno: int = 0


@dataclass(frozen=True)
class IfNode(Node):
    branches: tuple[Branch, ...] = ()
    otherwise: str = ""


@dataclass(frozen=True)
class SetVarsNode(Node):
    values: Mapping[str, Any] = field(default_factory=dict)
    goto: str = ""


@dataclass(frozen=True)
class ChooseNode(Node):
    """Say each item of a list variable (`item_prompt`), then collect the caller's choice by the item's
    `key` (or its `name` spoken). Stores the key in `into` and each other field of the chosen item in
    `<into>_<field>` (e.g. `plan_key_name`)."""

    items: str = ""
    item_prompt: PromptSpec | None = None
    prompts: tuple[PromptSpec, ...] = ()
    help: tuple[PromptSpec, ...] = ()
    into: str = ""
    goto: str = ""
    empty: str | None = None  # where to go when the list is empty (default: goto the menu back)
    barge_in: bool = True  # False: the prompts are heard whole (as on a menu)


@dataclass(frozen=True)
class HangUpNode(Node):
    prompts: tuple[PromptSpec, ...] = ()
    reason: str = "normal"


AnyNode = (
    MenuNode
    | CollectDigitsNode
    | SayNode
    | ConfirmNode
    | ActionNode
    | TransferNode
    | CallFlowNode
    | ReturnNode
    | SetLanguageNode
    | IfNode
    | SetVarsNode
    | ChooseNode
    | HangUpNode
)
WAITING_KINDS = (MenuNode, CollectDigitsNode, ConfirmNode, ChooseNode)


@dataclass(frozen=True)
class Tree:
    line: str
    version: str
    nodes: Mapping[str, AnyNode]
    settings: LineSettings = field(default_factory=LineSettings)
    source: str = ""  # file it was loaded from

    def node(self, node_id: str) -> AnyNode:
        return self.nodes[node_id]


def successors(node: AnyNode) -> list[tuple[str, str]]:
    """(label, target) edges leaving a node, in source order."""
    match node:
        case MenuNode():
            return [(c.key or "/".join(next(iter(c.phrases.values()), ())), c.goto) for c in node.choices]
        case CollectDigitsNode() | SayNode() | SetLanguageNode() | SetVarsNode() | ChooseNode():
            out = [("", node.goto)]
            if isinstance(node, ChooseNode) and node.empty:
                out.append(("empty", node.empty))
            return out
        case ConfirmNode():
            return [("yes", node.yes), ("no", node.no)]
        case ActionNode():
            out = [(status, target) for status, target in node.branches.items()]
            if node.default:
                out.append(("*", node.default))
            return out
        case CallFlowNode():
            return [("call", node.flow), ("return", node.goto)]
        case IfNode():
            return [(f"if{i + 1}", b.goto) for i, b in enumerate(node.branches)] + [("else", node.otherwise)]
        case _:
            return []
