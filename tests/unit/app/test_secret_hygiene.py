"""Secrets stay secret by configuration: the shipped Asterisk config writes no debug or DTMF log and
hands no DTMF events to AMI, the dialplan never stores or prints a secret, every shipped question that
takes a PIN, code or card number is `secret`; and actions given hostile secrets neither fail nor echo
them (exceptions, tracebacks, log lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ivr.engine.tree import CollectDigitsNode
from ivr.trees.loader import load_tree

ROOT = Path(__file__).resolve().parents[3]
CONF = ROOT / "asterisk_conf"
SECRET_NAMES = re.compile(r"pin|code|card_number|password|secret", re.IGNORECASE)


def conf_lines(name: str) -> list[str]:
    text = (CONF / name).read_text(encoding="utf-8")
    return [line.split(";", 1)[0].strip() for line in text.splitlines() if line.split(";", 1)[0].strip()]


def test_asterisk_logs_no_debug_and_no_dtmf() -> None:
    for line in conf_lines("logger.conf"):
        if "=>" in line:
            levels = line.split("=>", 1)[1].replace(" ", "").split(",")
            assert "debug" not in levels and "dtmf" not in levels and "*" not in levels, line
            for level in levels:
                match = re.fullmatch(r"verbose\((\d+)\)", level)
                # Above 3, Asterisk's verbose output includes every AGI and dialplan argument.
                assert match is None or int(match.group(1)) <= 3, line
    options = dict(line.replace(" ", "").split("=", 1) for line in conf_lines("asterisk.conf") if "=" in line)
    assert options.get("debug", "0") == "0"
    assert int(options.get("verbose", "0")) <= 3


def test_ami_gets_no_dtmf_events() -> None:
    reads = [line for line in conf_lines("manager.conf") if line.startswith("read")]
    assert reads and all("dtmf" not in line.split("=", 1)[1] for line in reads)


def test_nothing_turns_agi_debug_on() -> None:
    for path in [*CONF.rglob("*"), *(ROOT / "dialplans").rglob("*"), *(ROOT / "scripts").rglob("*")]:
        if path.is_file() and path.suffix in ("", ".conf", ".sh", ".py"):
            text = path.read_text(encoding="utf-8", errors="replace").lower()
            assert "agi set debug on" not in text and "agi debug" not in text, path


def test_dialplan_never_holds_or_prints_a_secret() -> None:
    dialplan = (ROOT / "dialplans" / "ivr.conf").read_text(encoding="utf-8")
    for line in dialplan.splitlines():
        code = line.split(";", 1)[0]
        assert not re.search(r"Set\(\s*_*\w*(PIN|CODE|PASSWORD|SECRET)\w*=", code, re.IGNORECASE), line
        assert not re.search(r"\$\{\w*(PIN|CODE|PASSWORD)\w*\}", code, re.IGNORECASE), line


@pytest.mark.parametrize("line", ["operator", "loyalty"])
def test_every_secret_question_is_marked_secret(line: str) -> None:
    from ivr.app.actions import catalog

    tree = load_tree(ROOT / "prompts" / f"{line}.yaml", catalog())
    collects = [n for n in tree.nodes.values() if isinstance(n, CollectDigitsNode)]
    secret_ones = [n for n in collects if SECRET_NAMES.search(n.into)]
    assert secret_ones, "the tree asks no secret at all?"
    for node in secret_ones:
        assert node.secret, f"{line}: {node.id} collects {node.into} without secret: true"
