"""AgiChannel's collection rules over a scripted AGI transport: typed-ahead keys, terminator, escape
keys, maximum length, timeouts, barge-in, and secrets kept out of the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fake_asterisk import CallScript

from ivr.engine.commands import Collect, PromptRef
from ivr.engine.events import Digits, NoInput
from ivr.telephony.agi import AgiResponse, parse_response
from ivr.telephony.agi_channel import AgiChannel
from ivr.telephony.channel import ChannelHungUp


class ScriptTransport:
    def __init__(self, script: CallScript) -> None:
        self.script = script

    async def command(self, text: str, *, timeout: float) -> AgiResponse:
        return parse_response(self.script.answer(text))

    async def close(self) -> None:
        return None


class Voice:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self, line: str, lang: str, ref: PromptRef) -> list[Path]:
        path = self.folder / lang / line / f"{ref.key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return [path, self.folder / "missing.wav"]  # a missing file is skipped, never streamed


def collect(tmp_path: Path, script: CallScript, command: Collect, typed_ahead: str = "") -> object:
    channel = AgiChannel(ScriptTransport(script), Voice(tmp_path), "operator", "ru")
    return asyncio.run(channel.collect(command, typed_ahead))


MENU = Collect((PromptRef("main_menu"),), max_digits=1)
PIN = Collect((PromptRef("ask_pin"),), max_digits=6, min_digits=4, secret=True)


def test_key_during_the_prompt_answers_a_menu(tmp_path: Path) -> None:
    script = CallScript(barge={"main_menu": "1"})
    assert collect(tmp_path, script, MENU) == Digits("1")
    assert not any(c.startswith("WAIT FOR DIGIT") for c in script.commands)
    assert script.streamed == [str(tmp_path / "ru" / "operator" / "main_menu")]  # no extension, no missing


def test_silence_is_no_input(tmp_path: Path) -> None:
    script = CallScript()
    assert collect(tmp_path, script, MENU) == NoInput()
    assert "WAIT FOR DIGIT 5000" in script.commands


def test_pin_until_terminator_is_stripped(tmp_path: Path) -> None:
    script = CallScript(keys=list("234#"), barge={"ask_pin": "1"})
    assert collect(tmp_path, script, PIN) == Digits("1234")
    assert "WAIT FOR DIGIT 3000" in script.commands  # inter-digit timeout after the first key


def test_a_key_past_max_digits_answers_the_next_question(tmp_path: Path) -> None:
    # Six digits fill the PIN; the seventh key arrives where its # was awaited: the caller is typing the
    # next answer ahead, so it answers the next prompt at once (barge-in) instead of being lost.
    script = CallScript(keys=list("23456789"))
    channel = AgiChannel(ScriptTransport(script), Voice(tmp_path), "operator", "ru")

    async def pin_then_menu() -> tuple[object, object]:
        return await channel.collect(PIN, "1"), await channel.collect(MENU, "")

    assert asyncio.run(pin_then_menu()) == (Digits("123456"), Digits("7"))
    assert script.streamed == []  # the menu prompt was answered before it played
    assert script.keys == list("89")


def test_the_terminator_after_a_full_input_is_consumed(tmp_path: Path) -> None:
    """ "Enter the 11-digit number and press #": the # belongs to the number, not to the PIN asked next
    (it once answered the PIN question with an empty input: "no input")."""
    number = Collect((PromptRef("ask_number"),), max_digits=11, min_digits=11)
    script = CallScript(keys=[*"9161234567", "#", *"1234#"])
    channel = AgiChannel(ScriptTransport(script), Voice(tmp_path), "operator", "ru")

    async def both() -> tuple[object, object]:
        return await channel.collect(number, "7"), await channel.collect(PIN, "")

    assert asyncio.run(both()) == (Digits("79161234567"), Digits("1234"))
    assert "WAIT FOR DIGIT 2000" in script.commands  # the grace for the terminator


def test_a_full_input_without_terminator_ends_after_the_grace(tmp_path: Path) -> None:
    number = Collect((PromptRef("ask_number"),), max_digits=11, min_digits=11)
    script = CallScript(keys=list("9161234567"))
    assert collect(tmp_path, script, number, typed_ahead="7") == Digits("79161234567")
    assert script.commands[-1] == "WAIT FOR DIGIT 2000"


def test_a_one_key_menu_does_not_wait_for_a_terminator(tmp_path: Path) -> None:
    script = CallScript(barge={"main_menu": "1"}, keys=["#"])
    assert collect(tmp_path, script, MENU) == Digits("1")
    assert script.keys == ["#"]


def test_inter_digit_timeout_ends_input(tmp_path: Path) -> None:
    script = CallScript(keys=list("12"))
    assert collect(tmp_path, script, PIN) == Digits("12")  # too short: the engine decides it is no match


def test_escape_key_first_ends_at_once(tmp_path: Path) -> None:
    number = Collect((PromptRef("ask_number"),), max_digits=11, escape_keys="0*")
    assert collect(tmp_path, CallScript(keys=list("555")), number, typed_ahead="*") == Digits("*")
    assert collect(tmp_path, CallScript(keys=["*"]), number, typed_ahead="790") == Digits("790*")


def test_typed_ahead_keys_skip_the_prompt(tmp_path: Path) -> None:
    script = CallScript(keys=["#"])
    assert collect(tmp_path, script, PIN, typed_ahead="98") == Digits("98")
    assert script.streamed == []


def test_hangup_while_waiting(tmp_path: Path) -> None:
    class HangsUp(CallScript):
        def answer(self, command: str) -> str:
            return "200 result=-1" if command.startswith("WAIT FOR DIGIT") else super().answer(command)

    with pytest.raises(ChannelHungUp):
        collect(tmp_path, HangsUp(), MENU)


def test_secret_digits_never_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    collect(tmp_path, CallScript(keys=list("9731#")), PIN)
    assert "9731" not in caplog.text


def test_a_transfer_publishes_the_context_for_the_agent_and_nothing_secret(tmp_path: Path) -> None:
    from ivr.engine.commands import Transfer

    script = CallScript()
    channel = AgiChannel(ScriptTransport(script), Voice(tmp_path), "operator", "ru")
    context = {
        "node": "balance_menu",
        "subscriber_id": "1",
        "tried": "balance.report:ok",
        "note": 'two\nlines "quoted" <sip:x>',
        "pin": "1234",
        "otp_code": "654321",
    }
    asyncio.run(channel.transfer(Transfer(queue="operators", reason="no_match", context=context)))
    assert script.variables["__IVR_CTX_NODE"] == "balance_menu"
    assert script.variables["__IVR_CTX_SUBSCRIBER_ID"] == "1"
    assert script.variables["__IVR_CTX_NOTE"] == "two lines quoted sip:x"  # one safe line for a SIP header
    assert "node=balance_menu" in script.variables["__IVR_CONTEXT"]
    assert "tried=balance.report%3Aok" in script.variables["__IVR_CONTEXT"]
    assert (script.variables["IVR_QUEUE"], script.variables["IVR_RESULT"]) == ("operators", "transfer")
    published = " ".join(f"{k}={v}" for k, v in script.history)
    assert "1234" not in published and "654321" not in published and "PIN" not in published


def test_the_queue_status_comes_from_the_queue_functions(tmp_path: Path) -> None:
    class QueueScript(CallScript):
        def answer(self, command: str) -> str:
            values = {
                "QUEUE_EXISTS(operators)": "1",
                "QUEUE_WAITING_COUNT(operators)": "3",
                "QUEUE_MEMBER(operators,logged)": "2",
                "QUEUE_MEMBER(operators,free)": "0",
                "QUEUEHOLDTIME": "45",
            }
            for expression, value in values.items():
                if command == f'GET FULL VARIABLE "${{{expression}}}"':
                    self.commands.append(command)
                    return f"200 result=1 ({value})"
            return super().answer(command)

    channel = AgiChannel(ScriptTransport(QueueScript()), Voice(tmp_path), "operator", "ru")
    status = asyncio.run(channel.queue_status("operators"))
    assert status is not None
    assert (status.waiting, status.agents_logged, status.agents_free, status.holdtime) == (3, 2, 0, 45.0)
    assert asyncio.run(channel.queue_status("nosuchqueue")) is None  # QUEUE_EXISTS says no
    assert asyncio.run(channel.queue_status("bad name;x")) is None  # never sent to Asterisk
