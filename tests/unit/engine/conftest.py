"""Engine tests build small trees from YAML text (structure only: the meaning checks are tested in
tests/unit/trees)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.engine.tree import Tree
from ivr.trees.loader import build_tree, check_structure
from ivr.trees.yamlfile import read_yaml

TREE = """
version: 1
line: test
settings:
  languages: [ru, en]
  max_call_seconds: 60
nodes:
  start:
    call: auth
    goto: main
  auth:
    if:
      - when: {var: caller_id_trusted}
        goto: identify
    else: ask_pin
  identify:
    action: subscriber.identify
    results: {found: auth_done, unknown: ask_pin}
  ask_pin:
    collect: [ask_pin]
    into: pin
    length: [4, 6]
    secret: true
    goto: auth_done
  auth_done:
    return: true
  main:
    menu: [main_menu]
    help: [main_help]
    choices:
      - {key: "1", say: {ru: [баланс, счёт], en: [balance]}, goto: balance}
      - {key: "2", say: {ru: [тариф]}, goto: tariff_menu}
      - {key: "3", say: {ru: [блокировка]}, goto: block_days}
      - {key: "4", goto: card}
      - {key: "5", goto: pick_plan_list}
      - {key: "8", say: {ru: [english]}, goto: to_en}
  to_en:
    language: en
    goto: main
  balance:
    action: balance.report
    results: {ok: balance_said}
  balance_said:
    say:
      - balance_is
      - {key: charge_item, each: charges, limit: 2, values: {amount: amount, balance: balance}}
      - {key: low, when: {var: available, lt: 100}}
    goto: main
  tariff_menu:
    menu: [tariff_menu]
    choices:
      - {key: "1", goto: main}
  block_days:
    collect: [block_days]
    into: days
    length: [1, 2]
    integer: true
    goto: block_confirm
  block_confirm:
    confirm: [block_confirm]
    yes: block
    no: main
  block:
    action: number.block
    args: {days: "{days}", note: "for {days} days"}
    results: {ok: blocked, already_blocked: main}
  blocked:
    hangup: [blocked]
  card:
    collect: [ask_card]
    into: card_number
    length: [13, 16]
    check: card
    invalid: [card_invalid]
    retries:
      no_match:
        - {say: [no_match], then: reprompt}
        - {then: goodbye}
    goto: phone
  phone:
    collect: [ask_phone]
    into: phone
    length: [10, 11]
    check: ru_phone
    goto: main
  pick_plan_list:
    action: tariff.alternatives
    results: {ok: pick_plan, none: main}
  pick_plan:
    choose: plans
    say: [plans_intro]
    item: plan_item
    into: plan_key
    goto: main
    empty: main
"""


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[str], Tree]:
    def make(text: str = TREE) -> Tree:
        path = tmp_path / "test.yaml"
        path.write_text(text, encoding="utf-8")
        data, lines = read_yaml(path)
        errors = check_structure(data, lines, str(path))
        assert not errors, errors
        return build_tree(data, lines, str(path), None)

    return make


@pytest.fixture
def tree(make_tree: Callable[[str], Tree]) -> Tree:
    return make_tree(TREE)


@pytest.fixture
def tree_text() -> str:
    return TREE
