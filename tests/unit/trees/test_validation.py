"""Tree loading and validation: broken trees are refused with the right code and line; the shipped trees
pass with the contract's catalog and with the real action registry; the exported JSON Schema is current."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from ivr.app import actions
from ivr.engine.actions import ActionCatalog
from ivr.trees import TreeInvalid, TreeStore, load_tree
from ivr.trees.schema import schema_json, tree_schema
from ivr.trees.texts import load_texts
from ivr.trees.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parents[3]
BROKEN = ROOT / "tests" / "fixtures" / "broken_trees"
PROMPTS = ROOT / "prompts"
SHIPPED = sorted(PROMPTS.glob("*.yaml"))


def expected(path: Path) -> tuple[str, int]:
    lines = path.read_text(encoding="utf-8").splitlines()
    code = re.match(r"# expect: (\w+)", lines[0])
    assert code, f"{path.name}: first line must be '# expect: CODE'"
    marked = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith("# <-")]
    assert len(marked) == 1, f"{path.name}: mark the expected line with '# <-'"
    return code.group(1), marked[0]


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_tree_is_refused_with_code_and_line(path: Path, catalog: ActionCatalog) -> None:
    code, line = expected(path)
    texts = load_texts(BROKEN / "texts", "broken", ["ru"])
    with pytest.raises(TreeInvalid) as refused:
        load_tree(path, catalog, texts)
    found = [(e.code, e.lineno) for e in refused.value.errors]
    assert (code, line) in found, f"expected {code} at line {line}, got {found}"
    assert all(e.file == str(path) for e in refused.value.errors if e.code != "text_file")


def test_broken_trees_cover_every_semantic_code() -> None:
    codes = {expected(p)[0] for p in BROKEN.glob("*.yaml")}
    for code in (
        "unknown_target",
        "unreachable",
        "dead_end",
        "loop_without_input",
        "duplicate_key",
        "duplicate_phrase",
        "missing_text",
        "unknown_action",
        "unhandled_status",
        "unconfirmed_action",
        "unknown_placeholder",
        "yaml",
        "schema",
    ):
        assert code in codes


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tree_is_valid_with_contract_catalog(path: Path, catalog: ActionCatalog) -> None:
    tree = load_tree(path, catalog)
    assert tree.line == path.stem and tree.nodes


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tree_is_valid_with_real_action_registry(path: Path) -> None:
    load_tree(path, actions.catalog())


def test_operator_line_offers_every_contract_action(catalog: ActionCatalog) -> None:
    used: set[str] = set()
    for path in SHIPPED:
        tree = load_tree(path, catalog)
        used |= {getattr(n, "name", "") for n in tree.nodes.values()} - {""}
    # Every action in the contract is reachable from one of the shipped lines.
    assert set(catalog) - used == set()


def test_operator_main_menu_key_1_is_balance(catalog: ActionCatalog) -> None:
    tree = load_tree(PROMPTS / "operator.yaml", catalog)
    main = tree.nodes[tree.settings.main_menu]
    choice = next(c for c in main.choices if c.key == "1")  # type: ignore[union-attr]
    assert getattr(tree.nodes[choice.goto], "name", "") == "balance.report"


def test_exported_schema_file_is_in_sync() -> None:
    assert (PROMPTS / "tree.schema.json").read_text(encoding="utf-8") == schema_json(), (
        "run: ivr tree schema > prompts/tree.schema.json"
    )
    assert json.loads(schema_json()) == tree_schema()


def test_yaml_reads_yes_no_on_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("a: {yes: x, no: y, on: z}\nb: true\n", encoding="utf-8")
    data, lines = read_yaml(path)
    assert data == {"a": {"yes": "x", "no": "y", "on": "z"}, "b": True}
    assert lines[("b",)] == 2


# ---- the store ---------------------------------------------------------------------------------------


def _copy_line(dst: Path) -> Path:
    (dst / "texts").mkdir()
    for src in [
        PROMPTS / "loyalty.yaml",
        *(PROMPTS / "texts").glob("loyalty.*.yaml"),
        *(PROMPTS / "texts").glob("common.*.yaml"),
    ]:
        rel = src.relative_to(PROMPTS)
        (dst / rel).write_bytes(src.read_bytes())
    return dst / "loyalty.yaml"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_store_keeps_last_good_version_and_reloads_changes(
    tmp_path: Path, catalog: ActionCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    tree_file = _copy_line(tmp_path)
    clock = FakeClock()
    store = TreeStore(tmp_path, catalog, poll_seconds=5, clock=clock)
    first = store.get("loyalty")
    assert first.version == "2026.12.1"

    good_text = tree_file.read_text(encoding="utf-8")
    tree_file.write_text(
        good_text.replace('version: "2026.12.1"', 'version: "2026.12.2"').replace(
            "goto: identify", "goto: nowhere"
        ),
        encoding="utf-8",
    )
    clock.now = 1.0
    assert store.get("loyalty") is first  # not polled yet: cheap
    clock.now = 10.0
    with caplog.at_level(logging.WARNING, logger="ivr.trees.loader"):
        assert store.get("loyalty") is first  # invalid: refused, the old one keeps serving
    assert "refused" in caplog.text and "keeping version 2026.12.1" in caplog.text
    assert store.errors["loyalty"][0].code == "unknown_target"

    tree_file.write_text(good_text.replace('version: "2026.12.1"', 'version: "2026.12.3"'), encoding="utf-8")
    refused = store.reload()  # explicit (SIGHUP)
    assert refused == {}
    second = store.get("loyalty")
    assert second.version == "2026.12.3" and second is not first
    # A call that captured `first` at its start still has it, unchanged.
    assert first.version == "2026.12.1"


def test_store_reloads_when_only_texts_change(tmp_path: Path, catalog: ActionCatalog) -> None:
    _copy_line(tmp_path)
    store = TreeStore(tmp_path, catalog, poll_seconds=0)
    first = store.get("loyalty")
    texts = tmp_path / "texts" / "loyalty.ru.yaml"
    texts.write_text(texts.read_text(encoding="utf-8").replace("welcome:", "welcome_gone:"), encoding="utf-8")
    assert store.get("loyalty") is first  # missing text: refused
    assert any(e.code == "missing_text" for e in store.errors["loyalty"])


def test_store_unknown_line_raises(tmp_path: Path) -> None:
    store = TreeStore(tmp_path)
    with pytest.raises(KeyError):
        store.get("nothing")


def test_bad_text_file_is_reported_with_its_line(tmp_path: Path, catalog: ActionCatalog) -> None:
    tree_file = _copy_line(tmp_path)
    texts = tmp_path / "texts" / "loyalty.ru.yaml"
    texts.write_text("welcome: Здравствуйте!\nwho_menu: Один.\nwelcome: Ещё раз.\n", encoding="utf-8")
    with pytest.raises(TreeInvalid) as refused:
        load_tree(tree_file, catalog)
    (error,) = refused.value.errors
    assert (error.file, error.lineno, error.code) == (str(texts), 3, "text_file")


def test_missing_english_text_is_reported_at_the_prompt_line(tmp_path: Path, catalog: ActionCatalog) -> None:
    (tmp_path / "texts").mkdir()
    for src in [PROMPTS / "operator.yaml", *(PROMPTS / "texts").glob("*.yaml")]:
        (tmp_path / src.relative_to(PROMPTS)).write_bytes(src.read_bytes())
    en = tmp_path / "texts" / "operator.en.yaml"
    en.write_text(
        en.read_text(encoding="utf-8").replace("\ntariff_menu:", "\ntariff_menu_gone:"), encoding="utf-8"
    )
    with pytest.raises(TreeInvalid) as refused:
        load_tree(tmp_path / "operator.yaml", catalog)
    tree_lines = (tmp_path / "operator.yaml").read_text(encoding="utf-8").splitlines()
    (error,) = refused.value.errors
    assert error.code == "missing_text" and "'tariff_menu'" in error.message and " en " in error.message
    assert tree_lines[error.lineno - 1].strip() == "menu: [tariff_menu]"


def test_hold_after_must_come_before_every_action_time_limit(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "prompts" / "texts", tmp_path / "texts")
    text = (ROOT / "prompts" / "operator.yaml").read_text(encoding="utf-8")
    (tmp_path / "operator.yaml").write_text(text.replace("settings:\n", "settings:\n  hold_after: 7\n", 1))
    with pytest.raises(TreeInvalid) as refused:
        load_tree(tmp_path / "operator.yaml", actions.catalog())
    assert [(e.code, e.lineno) for e in refused.value.errors] == [("bad_setting", 1)]
    assert "hold_after (7.0 s)" in refused.value.errors[0].message


@pytest.mark.parametrize(
    ("text", "lineno"),
    [
        ("a: 1\nb: [x, y\nc: 3\n", 2),  # an unclosed [ is noticed on the next line; the fix is on this one
        ("a: 1\nb 2\nc: 3\n", 2),  # a key without its colon
        ('a: "x\nb: 2\n', 1),  # an unclosed quote
        ("a: 1\n  b: 2\n", 2),
    ],
)
def test_a_yaml_error_names_the_line_to_fix(tmp_path: Path, text: str, lineno: int) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TreeInvalid) as refused:
        load_tree(path)
    (error,) = refused.value.errors
    assert (error.code, error.lineno) == ("yaml", lineno), str(error)
