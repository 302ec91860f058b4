"""The tree commands of the `ivr` CLI, run in-process through ivr.cli.main."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.engine.commands import Collect, PromptRef
from ivr.engine.events import Digits, NoInput, Speech
from ivr.telephony.channel import ChannelHungUp
from ivr.testbed.console import ConsoleChannel, parse_input

ROOT = Path(__file__).resolve().parents[3]
BROKEN = ROOT / "tests" / "fixtures" / "broken_trees"


def test_validate_shipped_trees_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(ROOT / "prompts" / "operator.yaml"), str(ROOT / "prompts" / "loyalty.yaml")]
    assert main(["validate", "--no-audio", *paths]) == 0
    assert "ok: line operator" in capsys.readouterr().err


def test_validate_broken_tree_prints_file_line_code_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(BROKEN / "texts", tmp_path / "texts")
    tree = tmp_path / "unknown_target.yaml"
    shutil.copyfile(BROKEN / "unknown_target.yaml", tree)
    assert main(["validate", "--no-audio", str(tree)]) == 1
    out = capsys.readouterr().out
    assert f"{tree}:9: unknown_target:" in out


def test_validate_takes_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr validate prompts` checks every tree in the folder and the service-number table beside them
    (it once failed with "Is a directory")."""
    assert main(["validate", "--no-audio", str(ROOT / "prompts")]) == 0
    err = capsys.readouterr().err
    assert "ok: line operator" in err and "ok: line loyalty" in err and "service numbers" in err


def test_validate_a_folder_with_a_broken_tree_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(BROKEN / "texts", tmp_path / "texts")
    shutil.copyfile(BROKEN / "unknown_target.yaml", tmp_path / "unknown_target.yaml")
    assert main(["validate", "--no-audio", str(tmp_path)]) == 1
    assert f"{tmp_path / 'unknown_target.yaml'}:9: unknown_target:" in capsys.readouterr().out


def test_validate_an_empty_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-audio", str(tmp_path)]) == 1
    assert f"no trees in {tmp_path}" in capsys.readouterr().err


def test_tree_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tree", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "IVR prompt tree" and "menu" in schema["$defs"]


def test_tree_graph_writes_dot_and_svg(tmp_path: Path) -> None:
    dot = tmp_path / "operator.dot"
    assert main(["tree", "graph", "operator", "-o", str(dot)]) == 0
    text = dot.read_text(encoding="utf-8")
    assert text.startswith('digraph "operator"') and '"main" -> "balance"' in text
    if shutil.which("dot"):
        svg = tmp_path / "operator.svg"
        assert main(["tree", "graph", "operator", "-o", str(svg)]) == 0
        assert "<svg" in svg.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("typed", "event"),
    [
        ("1", Digits("1")),
        ("123#", Digits("123#")),
        ("say: Баланс", Speech("Баланс")),
        ("", NoInput()),
        ("hangup", None),
    ],
)
def test_console_input(typed: str, event: object) -> None:
    assert parse_input(typed) == event


def test_console_input_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        parse_input("hello")


@pytest.mark.parametrize(("typed", "expected"), [("abc\n1234#\n", Digits("1234")), ("\n", NoInput())])
def test_console_channel_collects(typed: str, expected: object) -> None:
    import asyncio

    out = io.StringIO()
    channel = ConsoleChannel(lambda lang, ref: f"text of {ref.key}", stdin=io.StringIO(typed), stdout=out)
    event = asyncio.run(channel.collect(Collect((PromptRef("ask_pin"),), max_digits=6, secret=True), ""))
    assert event == expected
    assert "text of ask_pin" in out.getvalue()


def test_console_channel_eof_is_a_hang_up() -> None:
    import asyncio

    channel = ConsoleChannel(lambda lang, ref: ref.key, stdin=io.StringIO(""), stdout=io.StringIO())
    with pytest.raises(ChannelHungUp):
        asyncio.run(channel.collect(Collect((PromptRef("main_menu"),)), ""))
