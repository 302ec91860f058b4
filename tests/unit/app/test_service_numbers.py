"""The service-number table: the server's own word on line, trust and roaming for each dialled number,
whatever the dialplan's query flags say; and the shipped table against the shipped dialplan."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.app.lines import LinesFileError, ServiceNumbers, UnknownServiceNumber, load_service_numbers
from ivr.engine.events import CallStarted

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def table() -> ServiceNumbers:
    return load_service_numbers(ROOT / "prompts")


def call(
    did: str, caller: str | None = "79161234567", *, line: str = "operator", **facts: Any
) -> CallStarted:
    flags = {"caller_id_trusted": True, "roaming": False, **facts}
    return CallStarted(line=line, did=did, caller_id=caller, facts=flags, call_id="t1")


@pytest.mark.parametrize("did", ["0505", "0500"])
def test_short_numbers_trust_caller_id(table: ServiceNumbers, did: str) -> None:
    got = table.resolve(call(did, '"Ivan" <sip:+7 916 123-45-67@10.0.0.1>'))
    assert got.caller_id == "79161234567" and got.did == did and got.line == "operator"
    assert got.facts["caller_id_trusted"] is True and got.facts["roaming"] is False
    assert got.facts["step_up_required"] is False
    assert got.facts["caller_bucket"] == "79161234567"


@pytest.mark.parametrize("did", ["79221110505", "+79221110505", "89221110505", "79261110500"])
def test_long_numbers_trust_and_mark_roaming(table: ServiceNumbers, did: str) -> None:
    got = table.resolve(call(did, roaming=False))  # the table, not the flag, says roaming
    assert got.facts["caller_id_trusted"] is True and got.facts["roaming"] is True
    assert got.did in ("79221110505", "79261110500")


@pytest.mark.parametrize("did", ["88005500500", "+78005500500", "78005500500"])
def test_landline_number_ignores_a_trust_flag(
    table: ServiceNumbers, did: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ivr.app.lines"):
        got = table.resolve(call(did, caller_id_trusted=True))
    assert got.facts["caller_id_trusted"] is False
    assert got.facts["step_up_required"] is True  # the line's policy: untrusted -> one-time code
    assert got.did == "88005500500"
    assert "trust=yes ignored" in caplog.text


@pytest.mark.parametrize("caller", [None, "", "anonymous", "unknown", "<sip:anonymous@anonymous.invalid>"])
def test_withheld_caller_id_on_a_trusted_number_is_not_trusted(
    table: ServiceNumbers, caller: str | None
) -> None:
    got = table.resolve(call("0505", caller))
    assert got.caller_id is None
    assert got.facts["caller_id_trusted"] is False and got.facts["step_up_required"] is True
    assert got.facts["caller_bucket"] == "withheld"


def test_hostile_caller_id_is_dropped(table: ServiceNumbers) -> None:
    got = table.resolve(call("0505", "79161234567'; DROP TABLE subscriber; --"))
    assert got.caller_id is None and got.facts["caller_id_trusted"] is False
    assert got.facts["caller_bucket"] == "invalid"


def test_dialplan_can_take_trust_away_but_not_grant_it(table: ServiceNumbers) -> None:
    assert table.resolve(call("0505", caller_id_trusted=False)).facts["caller_id_trusted"] is False


@pytest.mark.parametrize("did", ["", "1234", "88005553600", "79161234567", "0505; Dial(x)", "9" * 200])
def test_unknown_numbers_are_refused(table: ServiceNumbers, did: str) -> None:
    with pytest.raises(UnknownServiceNumber):
        table.resolve(call(did))
    assert issubclass(UnknownServiceNumber, LookupError)  # the drivers' failure path catches LookupError


def test_the_table_decides_the_line(table: ServiceNumbers) -> None:
    got = table.resolve(call("88005553609", line="operator"))
    assert got.line == "loyalty" and got.facts["caller_id_trusted"] is False


def test_every_dialplan_entry_is_in_the_table(table: ServiceNumbers) -> None:
    dialplan = (ROOT / "dialplans" / "ivr.conf").read_text(encoding="utf-8")
    entries = re.findall(r"ivr-facts,s,1\((\w+),(\d+),(yes|no),(yes|no)\)", dialplan)
    assert len(entries) >= 6
    for line, did, trust, roaming in entries:
        entry = table.lookup(did)
        assert entry is not None, did
        assert (entry.line, entry.trust, entry.roaming) == (line, trust == "yes", roaming == "yes"), did


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "mapping"),
        ({"lines": {"x": {"step_up": "sometimes"}}, "numbers": []}, "step_up"),
        ({"lines": {"x": {}}, "numbers": [{"number": "0505"}]}, "needs"),
        ({"lines": {"x": {}}, "numbers": [{"number": "0505", "line": "y"}]}, "no entry"),
        ({"lines": {"x": {}}, "numbers": [{"number": "0505", "line": "x", "trust": "yes"}]}, "true or false"),
        ({"lines": {"x": {}}, "numbers": [{"number": "05;05", "line": "x"}]}, "not a phone number"),
        (
            {
                "lines": {"x": {}},
                "numbers": [{"number": "88005500500", "line": "x"}, {"number": "+78005500500", "line": "x"}],
            },
            "twice",
        ),
    ],
)  # fmt: skip
def test_broken_tables_are_refused(data: Any, message: str) -> None:
    with pytest.raises(LinesFileError, match=message):
        ServiceNumbers.parse(data)


def test_policy_always_asks_for_a_code_even_on_trusted_numbers() -> None:
    numbers = [{"number": "0505", "line": "operator", "trust": True}]
    table = ServiceNumbers.parse({"lines": {"operator": {"step_up": "always"}}, "numbers": numbers})
    got = table.resolve(call("0505"))
    assert got.facts["caller_id_trusted"] is True and got.facts["step_up_required"] is True


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """`ivr.cli.main` sets up logging on the root logger: take its handlers away after the test."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_ivr", False):
            root.removeHandler(handler)
    root.setLevel(level)


def _prompts_copy(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    return tmp_path / "prompts"


def test_ivr_validate_checks_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cli_logging: None
) -> None:
    from ivr.cli import main

    prompts = _prompts_copy(tmp_path)
    monkeypatch.setenv("IVR_PROMPTS_DIR", str(prompts))
    assert main(["validate", "--no-audio"]) == 0
    assert "6 service numbers" in capsys.readouterr().err
    table = prompts / "numbers" / "service_numbers.yaml"
    table.write_text(
        table.read_text(encoding="utf-8").replace("line: loyalty", "line: lojalty"), encoding="utf-8"
    )
    assert main(["validate", "--no-audio"]) == 1
    assert "service_numbers:" in capsys.readouterr().out
    table.write_text(
        "lines: {operator: {}}\nnumbers:\n  - {number: '0505', line: nowhere}\n", encoding="utf-8"
    )
    assert main(["validate", "--no-audio"]) == 1
    assert "line nowhere has no entry" in capsys.readouterr().out


def test_reload_keeps_the_last_good_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ivr.app.bootstrap import build_app
    from ivr.config import load_settings

    prompts = _prompts_copy(tmp_path)
    settings = load_settings(None, prompts_dir=str(prompts), var_dir=str(tmp_path / "var"))
    app = build_app(settings)
    try:
        table = prompts / "numbers" / "service_numbers.yaml"
        good = table.read_text(encoding="utf-8")
        table.write_text("numbers: [oops", encoding="utf-8")
        with caplog.at_level(logging.ERROR):
            app.reload()
        assert "previous service-number table stays" in caplog.text
        assert app.service_numbers.lookup("0505") is not None
        table.write_text(
            good.replace('  - {number: "0500", line: operator, trust: true}\n', ""), encoding="utf-8"
        )
        app.reload()
        assert app.service_numbers.lookup("0500") is None  # the new table took over
        with pytest.raises(UnknownServiceNumber):
            app.session(call("0500"), None)  # type: ignore[arg-type]
    finally:
        app.close()
    table.write_text("numbers: [oops", encoding="utf-8")
    with pytest.raises(LinesFileError):
        build_app(settings)  # a broken table stops the start


def test_simulator_refuses_a_number_that_is_not_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cli_logging: None
) -> None:
    from ivr.cli import main

    monkeypatch.setenv("IVR_VAR_DIR", str(tmp_path / "var"))
    assert main(["call", "operator", "--did", "4951234567"]) == 1
    assert "is not a service number" in capsys.readouterr().out
