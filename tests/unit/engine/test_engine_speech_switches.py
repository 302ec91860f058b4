"""The two per-node speech switches: `barge_in: false` (prompts heard whole) reaches every Play and Collect
the node makes; `spoken_digits: true` offers the digit words of the call's language as the grammar and
treats a recognised run of them exactly as the same keys: lengths, checks, `into`, invalid prompts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from ivr.engine.commands import Collect, Command, HangUp, Play, PromptRef, Transfer
from ivr.engine.engine import CallState, Engine
from ivr.engine.events import CallStarted, Digits, Event, NoInput, Speech
from ivr.engine.spoken import DIGIT_WORDS
from ivr.engine.tree import CollectDigitsNode, HangUpNode, LineSettings, Tree

TREE = """
version: 1
line: test
settings:
  languages: [ru, en, ko]
  keys:
    phrases:
      ko: {operator: [상담원]}
nodes:
  start:
    say: [welcome]
    goto: notice
  notice:
    say: [notice]
    barge_in: false
    goto: main
  main:
    menu: [main_menu]
    choices:
      - {key: "1", goto: code}
      - {key: "2", goto: card}
      - {key: "3", goto: phone}
      - {key: "4", goto: plain}
      - {key: "5", goto: heard_whole}
  code:
    collect: [ask_code]
    into: code
    length: 4
    spoken_digits: true
    invalid: [code_invalid]
    goto: code_confirm
  code_confirm:
    confirm: [code_confirm]
    barge_in: false
    yes: done
    no: main
  card:
    collect: [ask_card]
    into: card_number
    length: [13, 16]
    check: card
    spoken_digits: true
    invalid: [card_invalid]
    goto: done
  phone:
    collect: [ask_phone]
    into: phone
    length: [10, 11]
    check: ru_phone
    integer: false
    spoken_digits: true
    goto: done
  plain:
    collect: [ask_plain]
    into: plain
    length: 2
    goto: done
  heard_whole:
    collect: [ask_whole]
    into: whole
    length: 2
    barge_in: false
    retries:
      no_input:
        - {say: [no_input], then: reprompt}
        - {say: [transfer_to_operator], then: operator}
    goto: done
  done:
    hangup: [bye]
"""

MakeTree = Callable[[str], Tree]


def call(language: str = "ru") -> CallStarted:
    return CallStarted("test", "0505", "79001112233", language, {}, call_id="c1")


def at(tree: Tree, key: str, language: str = "ru") -> tuple[Engine, CallState, list[Command]]:
    """The call at the main menu's choice `key`: the engine, the state and the commands of that step."""
    engine = Engine(tree)
    state, _ = engine.start(call(language))
    state, commands = engine.step(state, Digits(key))
    return engine, state, commands


def collect_of(commands: Sequence[Command]) -> Collect:
    last = commands[-1]
    assert isinstance(last, Collect), commands
    return last


def keys(commands: Sequence[Command]) -> list[str]:
    return [p.key for c in commands if isinstance(c, Play | Collect) for p in c.prompts]


@pytest.fixture
def tree(make_tree: MakeTree) -> Tree:
    return make_tree(TREE)


# ---- barge_in: false ---------------------------------------------------------------------------------


def test_a_say_heard_whole_is_its_own_play_and_the_default_stays_interruptible(tree: Tree) -> None:
    _, commands = Engine(tree).start(call())
    assert commands == [
        Play((PromptRef("welcome"),), barge_in=True),
        Play((PromptRef("notice"),), barge_in=False),  # never joined with a prompt a key may skip
        collect_of(commands),
    ]
    assert collect_of(commands).barge_in is True  # the menu says nothing: barge-in as always


def test_a_question_heard_whole_collects_without_barge_in_on_every_turn(tree: Tree) -> None:
    engine, state, commands = at(tree, "5")
    assert collect_of(commands).barge_in is False
    state, commands = engine.step(state, NoInput())  # the reprompt is heard whole too
    assert keys(commands) == ["no_input", "ask_whole"] and collect_of(commands).barge_in is False
    state, commands = engine.step(state, NoInput())  # and so is what it says before the operator
    assert commands[0] == Play((PromptRef("transfer_to_operator"),), barge_in=False)
    assert isinstance(commands[-1], Transfer)


def test_a_confirm_heard_whole(tree: Tree) -> None:
    engine, state, _ = at(tree, "1")
    state, commands = engine.step(state, Digits("1234"))
    assert keys(commands) == ["code_confirm"] and collect_of(commands).barge_in is False


def test_questions_without_the_switch_keep_barge_in(tree: Tree) -> None:
    for key in ("1", "2", "3", "4"):
        assert collect_of(at(tree, key)[2]).barge_in is True


# ---- spoken_digits: true -----------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["ru", "en", "ko"])
def test_the_grammar_is_the_digit_words_of_the_call_language_and_the_universal_phrases(
    tree: Tree, language: str
) -> None:
    collect = collect_of(at(tree, "1", language)[2])
    assert collect.spoken_digits is True and not collect.secret
    words = tuple(DIGIT_WORDS[language])
    assert collect.grammar[: len(words)] == words
    universal = {"ru": "оператор", "en": "operator", "ko": "상담원"}[language]
    assert universal in collect.grammar
    assert (collect.min_digits, collect.max_digits) == (4, 4)


def test_a_question_without_the_switch_offers_no_digit_words(tree: Tree) -> None:
    collect = collect_of(at(tree, "4")[2])
    assert collect.spoken_digits is False and "один" not in collect.grammar


def same_step(tree: Tree, key: str, said: Event, typed: Event, language: str = "ru") -> list[Command]:
    """Both answers at the same question lead to the same state and the same commands; returns them."""
    engine, state, _ = at(tree, key, language)
    by_voice = engine.step(state, said)
    by_keys = engine.step(state, typed)
    assert by_voice == by_keys
    return by_voice[1]


@pytest.mark.parametrize(
    ("language", "said", "digits"),
    [
        ("ru", "один два три четыре", "1234"),
        ("ru", "Ноль, нуль; две одна", "0021"),
        ("en", "oh seven zero nine", "0709"),
        ("ko", "일 이 삼 사", "1234"),
        ("ko", "공 영 구 팔", "0098"),
    ],
)
def test_spoken_digits_answer_like_the_same_keys(tree: Tree, language: str, said: str, digits: str) -> None:
    commands = same_step(tree, "1", Speech(said, 0.93), Digits(digits), language)
    assert keys(commands) == ["code_confirm"]
    engine, state, _ = at(tree, "1", language)
    state, _ = engine.step(state, Speech(said))
    assert state.vars["code"] == digits and state.node == "code_confirm"


@pytest.mark.parametrize(
    ("said", "typed"),
    [("один два", "12"), ("один два три четыре пять", "12345")],
    ids=["too short", "too long"],
)
def test_a_wrong_length_is_the_same_no_match_as_keys(tree: Tree, said: str, typed: str) -> None:
    commands = same_step(tree, "1", Speech(said), Digits(typed))
    assert keys(commands) == ["code_invalid", "no_match", "ask_code"]


def test_a_failing_check_is_the_same_no_match_as_keys(tree: Tree) -> None:
    said = "четыре один один один один один один один один один один один один один один два"
    commands = same_step(tree, "2", Speech(said), Digits("4111111111111112"))  # fails Luhn
    assert keys(commands) == ["card_invalid", "no_match", "ask_card"]
    good = "четыре ноль ноль шесть три восемь один три три три девять три один"
    assert same_step(tree, "2", Speech(good), Digits("4006381333931"))[-1] == HangUp("normal")


def test_a_checked_number_is_stored_as_keys_would_store_it(tree: Tree) -> None:
    engine, state, _ = at(tree, "3")
    state, _ = engine.step(state, Speech("восемь девять ноль ноль один два три четыре пять шесть семь"))
    assert state.vars["phone"] == "79001234567"


@pytest.mark.parametrize(
    "said",
    ["один два три мама", "двадцать три сорок", "one two three four", "", "   "],
    ids=["a word that is no digit", "numbers as numbers", "another language", "empty", "blank"],
)
def test_text_that_is_not_digit_words_only_is_no_match(tree: Tree, said: str) -> None:
    engine, state, _ = at(tree, "1")
    state, commands = engine.step(state, Speech(said))
    assert keys(commands) == ["code_invalid", "no_match", "ask_code"] and state.no_match == 1
    assert "code" not in state.vars


@pytest.mark.parametrize(("language", "phrase"), [("ru", "оператор"), ("en", "Operator"), ("ko", "상담원")])
def test_a_universal_phrase_still_works(tree: Tree, language: str, phrase: str) -> None:
    engine, state, _ = at(tree, "1", language)
    state, commands = engine.step(state, Speech(phrase))
    transfer = commands[-1]
    assert isinstance(transfer, Transfer) and transfer.reason == "caller_request"


def test_a_secret_question_never_takes_spoken_digits_even_built_in_code() -> None:
    """The validator refuses `spoken_digits` with `secret` in a file; a tree built in code is held to it by
    the engine: no digit words offered, and words said are not read as the PIN."""
    pin = CollectDigitsNode(
        id="start", into="pin", min_length=4, max_length=4, secret=True, spoken_digits=True, goto="bye"
    )
    tree = Tree("test", "1", {"start": pin, "bye": HangUpNode(id="bye")}, LineSettings())
    engine = Engine(tree)
    state, commands = engine.start(call())
    collect = collect_of(commands)
    assert collect.secret and not collect.spoken_digits and "один" not in collect.grammar
    state, _ = engine.step(state, Speech("один два три четыре"))
    assert state.no_match == 1 and "pin" not in state.vars
