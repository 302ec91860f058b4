"""`barge_in` and `spoken_digits` in tree files: read by the loader, refused where they make no sense, each
refusal at its file and line (the broken_trees fixtures spoken_digits_secret and
schema_spoken_digits_on_menu cover the same through the common fixture test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ivr.engine.actions import ActionCatalog
from ivr.engine.tree import ChooseNode, CollectDigitsNode, ConfirmNode, MenuNode, SayNode
from ivr.trees import TreeInvalid, load_tree
from ivr.trees.schema import tree_schema

ROOT = Path(__file__).resolve().parents[3]
TEXTS = ROOT / "tests" / "fixtures" / "broken_trees" / "texts"

TREE = """\
version: 1
line: switches
settings: {languages: [ru], main_menu: start}
nodes:
  start:
    say: [main_menu]
    barge_in: false
    goto: menu
  menu:
    menu: [main_menu]
    barge_in: false
    choices:
      - {key: "1", goto: code}
      - {key: "2", goto: pick}
  code:
    collect: [main_menu]
    into: code
    length: 4
    barge_in: false
    spoken_digits: true
    goto: sure
  sure:
    confirm: [confirm_q]
    barge_in: false
    yes: bye
    no: bye
  pick:
    choose: items
    item: main_menu
    barge_in: false
    into: item
    goto: bye
  bye:
    hangup: [bye]
"""


def write(tmp_path: Path, text: str) -> Path:
    """The tree file, with its texts beside it (the broken trees' texts and the hold prompt)."""
    texts = tmp_path / "texts"
    texts.mkdir(exist_ok=True)
    (texts / "switches.ru.yaml").write_bytes((TEXTS / "broken.ru.yaml").read_bytes())
    common = (TEXTS / "common.ru.yaml").read_text(encoding="utf-8")
    (texts / "common.ru.yaml").write_text(common + "please_wait: Минуту.\n", encoding="utf-8")
    path = tmp_path / "switches.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusals(path: Path, catalog: ActionCatalog) -> list[str]:
    with pytest.raises(TreeInvalid) as refused:
        load_tree(path, catalog)
    return [str(e) for e in refused.value.errors]


def line_of(path: Path, text: str) -> int:
    return next(i for i, row in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in row)


def test_the_switches_are_read_where_they_belong(tmp_path: Path, catalog: ActionCatalog) -> None:
    tree = load_tree(write(tmp_path, TREE), catalog)
    kinds = (SayNode, MenuNode, CollectDigitsNode, ConfirmNode, ChooseNode)
    for node_id in ("start", "menu", "code", "sure", "pick"):
        node = tree.nodes[node_id]
        assert isinstance(node, kinds) and node.barge_in is False, node_id
    code = tree.nodes["code"]
    assert isinstance(code, CollectDigitsNode) and code.spoken_digits is True


def test_both_default_to_what_was_there_before(tmp_path: Path, catalog: ActionCatalog) -> None:
    text = TREE.replace("    barge_in: false\n", "").replace("    spoken_digits: true\n", "")
    tree = load_tree(write(tmp_path, text), catalog)
    assert all(getattr(node, "barge_in", True) for node in tree.nodes.values())
    code = tree.nodes["code"]
    assert isinstance(code, CollectDigitsNode) and code.spoken_digits is False


def test_spoken_digits_on_a_secret_input_is_refused_at_its_node(
    tmp_path: Path, catalog: ActionCatalog
) -> None:
    path = write(
        tmp_path, TREE.replace("    spoken_digits: true\n", "    spoken_digits: true\n    secret: true\n")
    )
    errors = refusals(path, catalog)
    assert f"{path}:{line_of(path, '  code:')}: spoken_digits: collect code: spoken_digits on a secret" in (
        "\n".join(errors)
    ), errors


@pytest.mark.parametrize("node", ["menu", "sure", "pick", "start"])
def test_spoken_digits_on_another_kind_is_refused_at_its_line(
    tmp_path: Path, catalog: ActionCatalog, node: str
) -> None:
    rows = TREE.splitlines(keepends=True)
    at = rows.index(f"  {node}:\n") + 1
    path = write(tmp_path, "".join([*rows[:at], "    spoken_digits: true  # here\n", *rows[at:]]))
    errors = refusals(path, catalog)
    kind = {"menu": "menu", "sure": "confirm", "pick": "choose", "start": "say"}[node]
    expected = (
        f"{path}:{line_of(path, '# here')}: schema: {node}: 'spoken_digits' is not a field of a {kind} node"
    )
    assert errors == [expected]


@pytest.mark.parametrize("node", ["action", "transfer", "hangup"])
def test_barge_in_only_on_nodes_that_play_and_wait_or_say(
    tmp_path: Path, catalog: ActionCatalog, node: str
) -> None:
    extra = {
        "action": "  act:\n    action: balance.report\n    barge_in: false  # here\n    results: {ok: bye}\n",
        "transfer": "  act:\n    transfer: null\n    barge_in: false  # here\n",
        "hangup": "  act:\n    hangup: [bye]\n    barge_in: false  # here\n",
    }[node]
    text = TREE.replace(
        '      - {key: "2", goto: pick}\n', '      - {key: "2", goto: pick}\n      - {key: "3", goto: act}\n'
    )
    path = write(tmp_path, text + extra)
    errors = refusals(path, catalog)
    assert errors == [
        f"{path}:{line_of(path, '# here')}: schema: act: 'barge_in' is not a field of a {node} node"
    ]


def test_spoken_digits_needs_digit_words_in_every_language_of_the_line(
    tmp_path: Path, catalog: ActionCatalog
) -> None:
    path = write(tmp_path, TREE.replace("languages: [ru]", "languages: [ru, de]"))
    errors = refusals(path, catalog)
    assert any(
        f"{path}:{line_of(path, '  code:')}: spoken_digits: collect code: spoken_digits, but there are no "
        "digit words for 'de'" in e
        for e in errors
    ), errors


def test_the_exported_schema_describes_both() -> None:
    defs = tree_schema()["$defs"]
    for kind in ("menu", "collect", "say", "confirm", "choose"):
        assert defs[kind]["properties"]["barge_in"]["type"] == "boolean", kind
    assert "spoken_digits" in defs["collect"]["properties"]
    assert all(
        "spoken_digits" not in defs[k]["properties"]
        for k in defs
        if k not in ("collect",) and "properties" in defs[k]
    )


def test_ivr_validate_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, TREE.replace("    spoken_digits: true\n", "    spoken_digits: true\n    secret: true\n")
    )
    done = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "validate", "--no-audio", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert f"{path}:{line_of(path, '  code:')}: " in done.stdout and "spoken_digits" in done.stdout
