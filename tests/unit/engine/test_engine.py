"""Events in, commands out: the dialog engine's behaviour, table-driven where the shape repeats."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

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
from ivr.engine.engine import CallState, Engine, EngineError, normalize_phrase
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
from ivr.engine.tree import Tree


def act(name: str, args: dict[str, object], key: str, timeout: float = 6.0) -> InvokeAction:
    """The command for an action node: its key, and the line's time limit and hold prompt."""
    return InvokeAction(name, args, key, timeout=timeout, hold=PromptRef("please_wait"), hold_after=1.5)


def call(trusted: bool = True, language: str = "ru") -> CallStarted:
    return CallStarted("test", "0505", "79001112233", language, {"caller_id_trusted": trusted}, call_id="c1")


def keys(commands: Sequence[Command]) -> list[str]:
    """Every prompt key in the commands, in order."""
    out: list[str] = []
    for c in commands:
        if isinstance(c, Play | Collect):
            out.extend(p.key for p in c.prompts)
    return out


def last(commands: Sequence[Command]) -> Command:
    return commands[-1]


def run(
    tree: Tree, events: Sequence[Event], start: CallStarted | None = None
) -> tuple[CallState, list[Command]]:
    engine = Engine(tree)
    state, commands = engine.start(start or call())
    for event in events:
        state, commands = engine.step(state, event)
    return state, commands


FOUND = ActionResult("found", {"subscriber_id": 7})


def at_main(tree: Tree) -> tuple[Engine, CallState]:
    engine = Engine(tree)
    state, _ = engine.start(call())
    state, commands = engine.step(state, FOUND)
    assert state.node == "main" and isinstance(last(commands), Collect)
    return engine, state


# ---- identification and menus ----------------------------------------------------------------------


def test_trusted_caller_is_identified_by_action_with_idempotency_key(tree: Tree) -> None:
    state, commands = Engine(tree).start(call())
    assert commands == [act("subscriber.identify", {}, "c1:identify:1")]
    assert state.waiting == "action"


def test_untrusted_caller_is_asked_for_a_secret_pin(tree: Tree) -> None:
    state, commands = Engine(tree).start(call(trusted=False))
    collect = last(commands)
    assert (
        isinstance(collect, Collect) and collect.secret and (collect.min_digits, collect.max_digits) == (4, 6)
    )
    state, commands = Engine(tree).step(state, Digits("1234"))
    assert state.node == "main" and "pin" in state.secret_vars


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (Digits("1"), act("balance.report", {}, "c1:balance:1")),
        (Speech("баланс"), act("balance.report", {}, "c1:balance:1")),
        (Speech("Мой СЧЕТ, пожалуйста"), act("balance.report", {}, "c1:balance:1")),
        (Speech("счёт"), act("balance.report", {}, "c1:balance:1")),
    ],
)
def test_keys_and_phrases_are_one_input(tree: Tree, event: Event, expected: Command) -> None:
    engine, state = at_main(tree)
    state, commands = engine.step(state, event)
    assert commands == [expected]


def test_menu_collect_carries_grammar_and_universal_escape_keys(tree: Tree) -> None:
    _, commands = run(tree, [FOUND])
    collect = last(commands)
    assert isinstance(collect, Collect)
    assert collect.max_digits == 1 and collect.terminator is None
    assert set(collect.escape_keys) == set("*#90")
    assert "баланс" in collect.grammar and "оператор" in collect.grammar
    assert keys(commands) == ["main_menu"]


def test_state_is_immutable_value(tree: Tree) -> None:
    engine, state = at_main(tree)
    before = (state.node, dict(state.vars), dict(state.visits))
    engine.step(state, Digits("1"))
    assert (state.node, dict(state.vars), dict(state.visits)) == before


# ---- VoiceXML-style retries ------------------------------------------------------------------------


def test_no_input_handlers_are_picked_by_count(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, first = engine.step(state, NoInput())
    assert keys(first) == ["no_input", "main_menu"]  # 1: short reprompt
    state, second = engine.step(state, NoInput())
    assert keys(second) == ["no_input", "main_help"]  # 2: full help
    state, third = engine.step(state, NoInput())
    assert isinstance(last(third), Transfer) and last(third).reason == "no_input"  # type: ignore[union-attr]
    assert state.finished and state.result == "transfer"


def test_no_match_help_without_node_help_adds_universal_keys_help(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("2"))
    state, first = engine.step(state, Digits("7"))
    assert keys(first) == ["no_match", "tariff_menu"]
    state, second = engine.step(state, Speech("абракадабра"))
    assert keys(second) == ["no_match", "tariff_menu", "universal_keys_help"]


def test_counters_reset_on_reentry(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("7"))
    state, _ = engine.step(state, Digits("7"))
    assert state.no_match == 2
    state, _ = engine.step(state, Digits("2"))  # tariff menu
    state, _ = engine.step(state, Digits("1"))  # back to main: a new entry
    assert state.no_match == 0
    state, commands = engine.step(state, Digits("7"))
    assert keys(commands) == ["no_match", "main_menu"]  # the first handler again, not the third


def test_node_retries_override_line_retries(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("4"))
    state, first = engine.step(state, Digits("4111111111111112"))  # fails Luhn
    assert keys(first) == ["card_invalid", "no_match", "ask_card"]
    state, second = engine.step(state, Digits("123"))  # too short
    assert isinstance(last(second), HangUp) and keys(second) == ["card_invalid", "goodbye"]


def test_repeat_key_does_not_count_as_a_retry(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("7"))
    state, commands = engine.step(state, Digits("*"))
    assert keys(commands) == ["main_menu"] and state.no_match == 1


# ---- universal keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expect"),
    [
        (Digits("0"), "transfer"),
        (Speech("оператор"), "transfer"),
        (Digits("9"), "main"),
        (Speech("главное меню"), "main"),
        (Digits("#"), "main"),  # back from the tariff menu is the main menu
        (Digits("*"), "tariff_menu"),
    ],
)
def test_universal_keys_work_in_a_submenu(tree: Tree, event: Event, expect: str) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("2"))
    state, commands = engine.step(state, event)
    if expect == "transfer":
        assert isinstance(last(commands), Transfer) and last(commands).reason == "caller_request"  # type: ignore[union-attr]
        assert keys(commands) == ["transfer_to_operator"]
    else:
        assert state.node == expect and keys(commands) == [expect.replace("main", "main_menu")]


def test_digit_collect_escapes_only_on_non_digit_universal_keys(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, commands = engine.step(state, Digits("3"))
    collect = last(commands)
    assert isinstance(collect, Collect) and collect.escape_keys == "*" and collect.terminator == "#"
    state, commands = engine.step(state, Digits("1*"))  # barge-in star ends the collect: repeat
    assert keys(commands) == ["block_days"] and state.node == "block_days"
    state, commands = engine.step(state, Digits("0"))  # a digit is a digit here, not the operator
    assert state.node == "block_confirm" and state.vars["days"] == 0


# ---- confirmation and actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "confirmed"),
    [
        (Digits("1"), True),
        (Speech("да"), True),
        (Speech("Да, конечно"), True),
        (Digits("2"), False),
        (Speech("нет"), False),
        (Speech("да нет"), False),
    ],
)
def test_confirm_before_change(tree: Tree, answer: Event, confirmed: bool) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("3"))
    state, commands = engine.step(state, Digits("14"))
    assert keys(commands) == ["block_confirm"]
    state, commands = engine.step(state, answer)
    if confirmed:
        assert commands == [act("number.block", {"days": 14, "note": "for 14 days"}, "c1:block:1")]
    else:
        assert state.node == "main"


def test_confirm_in_english(tree: Tree) -> None:
    engine = Engine(tree)
    state, _ = engine.start(call(language="en"))
    state, _ = engine.step(state, FOUND)
    for event in (Digits("3"), Digits("5")):
        state, _ = engine.step(state, event)
    state, commands = engine.step(state, Speech("Yes"))
    assert isinstance(last(commands), InvokeAction)


def test_action_values_become_vars_and_lists_are_iterated(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("1"))
    charges = [{"amount": Decimal("1.5")}, {"amount": Decimal("2")}, {"amount": Decimal("3")}]
    state, commands = engine.step(
        state, ActionResult("ok", {"balance": Decimal("42"), "available": 42, "charges": charges})
    )
    assert state.last_action == "balance.report:ok"
    play = commands[0]
    assert isinstance(play, Play)
    assert [p.key for p in play.prompts] == ["balance_is", "charge_item", "charge_item", "low"]
    assert play.prompts[1].values == {"amount": Decimal("1.5"), "balance": Decimal("42")}
    assert state.vars["balance"] == Decimal("42")


def test_error_status_apologises_and_transfers(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("1"))
    state, commands = engine.step(state, ActionResult("error"))
    assert keys(commands) == ["error_apology"]
    transfer = last(commands)
    assert (
        isinstance(transfer, Transfer) and transfer.queue == "operators" and transfer.reason == "action_error"
    )
    assert transfer.context["subscriber_id"] == "7"


def test_unhandled_status_is_never_dead_air(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("1"))
    state, commands = engine.step(state, ActionResult("surprise"))
    assert keys(commands) == ["error_apology"] and isinstance(last(commands), Transfer)


def test_idempotency_key_counts_visits(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, first = engine.step(state, Digits("1"))
    state, _ = engine.step(state, ActionResult("ok", {"available": 500}))
    state, second = engine.step(state, Digits("1"))
    assert [c.idempotency_key for c in (*first, *second) if isinstance(c, InvokeAction)] == [
        "c1:balance:1",
        "c1:balance:2",
    ]


def test_secret_input_never_reaches_transfer_context(tree: Tree) -> None:
    engine = Engine(tree)
    state, _ = engine.start(call(trusted=False))
    state, _ = engine.step(state, Digits("4321"))
    state, commands = engine.step(state, Digits("0"))
    transfer = last(commands)
    assert isinstance(transfer, Transfer) and "4321" not in repr(transfer)


# ---- collect checks, choose, language, time ----------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "ok"),
    [
        ("4006381333931", True),
        ("4006381333933", False),
        ("4111111111111111", True),
        ("4111111111111112", False),
    ],
)
def test_card_numbers_are_checked(tree: Tree, card: str, ok: bool) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("4"))
    state, _ = engine.step(state, Digits(card))
    assert (state.node == "phone") is ok


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("89001234567", "79001234567"), ("9001234567", "79001234567"), ("79001234567", "79001234567")],
)
def test_russian_numbers_normalised_to_eleven_digits(tree: Tree, typed: str, stored: str) -> None:
    engine, state = at_main(tree)
    for event in (Digits("4"), Digits("4006381333931"), Digits(typed)):
        state, _ = engine.step(state, event)
    assert state.vars["phone"] == stored and state.node == "main"


def test_choose_from_a_list_by_key_or_name(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, _ = engine.step(state, Digits("5"))
    plans = [
        {"key": "1", "name": "Смарт", "monthly_fee": 500},
        {"key": "2", "name": "Безлимит", "monthly_fee": 900},
    ]
    state, commands = engine.step(state, ActionResult("ok", {"plans": plans}))
    assert keys(commands) == ["plans_intro", "plan_item", "plan_item"]
    collect = last(commands)
    assert isinstance(collect, Collect) and "Безлимит" in collect.grammar
    picked, _ = engine.step(state, Speech("безлимит"))
    assert picked.vars["plan_key"] == "2" and picked.vars["plan_key_name"] == "Безлимит"
    picked, _ = engine.step(state, Digits("1"))
    assert picked.vars["plan_key"] == "1" and picked.vars["plan_key_monthly_fee"] == 500


def test_language_choice_sets_language(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, commands = engine.step(state, Speech("English"))
    assert SetLanguage("en") in commands and state.language == "en"
    collect = last(commands)
    assert isinstance(collect, Collect) and "balance" in collect.grammar and "баланс" not in collect.grammar


def test_call_time_exceeded_says_goodbye(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, commands = engine.step(state, CallTimeExceeded())
    assert keys(commands) == ["call_time_exceeded"] and commands[-1] == HangUp("max_call_time")
    assert state.finished


def test_hung_up_and_finished_calls_take_no_more_commands(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, commands = engine.step(state, HungUp())
    assert commands == [] and state.finished and state.result == "hungup"
    assert engine.step(state, Digits("1")) == (state, [])


def test_out_of_turn_events_are_refused(tree: Tree) -> None:
    engine, state = at_main(tree)
    with pytest.raises(EngineError):
        engine.step(state, ActionResult("ok"))


def test_language_at_start_falls_back_to_default(tree: Tree) -> None:
    _state, commands = Engine(tree).start(call(language="de"))
    assert commands[0] == SetLanguage("ru")


@pytest.mark.parametrize(("raw", "norm"), [("Ёлка!", "елка"), ("  Мой   СЧЁТ, да ", "мой счет да")])
def test_normalize_phrase(raw: str, norm: str) -> None:
    assert normalize_phrase(raw) == norm


@pytest.mark.parametrize(
    ("check", "digits", "stored"),
    [
        ("ean13", "4006381333931", "4006381333931"),
        ("ean13", "4006381333932", None),
        ("luhn", "4006381333932", "4006381333932"),
        ("card", "4006381333933", None),
        ("ru_phone", "89221110505", "79221110505"),
        ("ru_phone", "1234", None),
        ("length", "12a", None),
    ],
)
def test_digit_checks(check: str, digits: str, stored: str | None) -> None:
    from ivr.engine.checks import check_digits

    assert check_digits(check, digits) == stored


def test_main_and_back_do_not_skip_identification(tree: Tree) -> None:
    engine = Engine(tree)
    state, commands = engine.start(call(trusted=False))  # inside the auth sub-flow, at the PIN collect
    collect = last(commands)
    assert (
        isinstance(collect, Collect)
        and "главное меню" not in collect.grammar
        and "оператор" in collect.grammar
    )
    state, commands = engine.step(state, Speech("главное меню"))
    assert state.node == "ask_pin" and state.no_match == 1


def test_back_from_the_main_menu_repeats_it(tree: Tree) -> None:
    engine, state = at_main(tree)
    state, commands = engine.step(state, Digits("#"))
    assert state.node == "main" and keys(commands) == ["main_menu"]


def test_menu_may_limit_universal_keys(make_tree: Any, tree_text: str) -> None:
    text = tree_text.replace(
        "    menu: [tariff_menu]\n", "    menu: [tariff_menu]\n    universal: [repeat, operator]\n"
    )
    engine, state = at_main(make_tree(text))
    state, commands = engine.step(state, Digits("2"))
    collect = last(commands)
    assert isinstance(collect, Collect) and set(collect.escape_keys) == {"*", "0"}
    state, commands = engine.step(state, Digits("9"))
    assert state.no_match == 1 and state.node == "tariff_menu"


@pytest.mark.parametrize(
    ("op", "value", "var", "holds"),
    [
        ("true", None, True, True),
        ("true", None, [], False),
        ("false", None, None, True),
        ("set", None, 0, True),
        ("unset", None, None, True),
        ("eq", "ru", "ru", True),
        ("ne", "ru", "en", True),
        ("lt", 100, Decimal("-123.45"), True),
        ("lt", 100, None, False),
        ("ge", 3, 2, False),
        ("in", ["0505", "0500"], "0500", True),
        ("in", ["0505", "0500"], "88005500500", False),
        ("gt", 0, "text", False),  # incomparable: false, never an exception mid-call
    ],
)
def test_conditions(op: str, value: Any, var: Any, holds: bool) -> None:
    from ivr.engine.engine import evaluate
    from ivr.engine.tree import Condition

    assert evaluate(Condition("x", op, value), {"x": var}) is holds


def test_an_action_carries_its_time_limit_and_hold_prompt(make_tree: Any, tree_text: str) -> None:
    """The line's action_timeout and hold settings reach the driver in the command; a node's own `timeout`
    wins for that action."""
    text = tree_text.replace(
        "  max_call_seconds: 60\n", "  max_call_seconds: 60\n  action_timeout: 4\n  hold_after: 2\n"
    )
    text = text.replace("    action: balance.report\n", "    action: balance.report\n    timeout: 12\n")
    tree = make_tree(text)
    engine = Engine(tree)
    state, commands = engine.start(call())
    hold = PromptRef("please_wait")
    assert commands == [
        InvokeAction("subscriber.identify", {}, "c1:identify:1", timeout=4, hold=hold, hold_after=2)
    ]
    state, commands = engine.step(state, FOUND)
    state, commands = engine.step(state, Digits("1"))
    assert last(commands) == InvokeAction(
        "balance.report", {}, "c1:balance:1", timeout=12, hold=hold, hold_after=2
    )
