"""A call in progress keeps the prompt texts and audio of the version it started with. A line's texts are
changed, rendered and taken by the server (the way the staff console publishes) while a call is in the
middle of its first prompt: that call plays the rest of its prompts in the old version, while a call that
starts meanwhile plays the new one. Through the real wiring (LineApp, TreeStore with the server's audio
check, CallHandler, the FastAGI server, AgiChannel) and a fake Asterisk; rendering with espeak-ng."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from fake_asterisk import CallScript, agi_header, run_fake_call

from ivr.app import actions
from ivr.app.bootstrap import LineApp, audio_check
from ivr.app.session import CallHandler
from ivr.config import Settings
from ivr.engine.commands import InvokeAction, PromptRef
from ivr.engine.events import ActionResult
from ivr.prompts.render import MANIFEST, plan_prompts, render_jobs
from ivr.prompts.voice import PromptVoice, asterisk_name, piece_file
from ivr.telephony.fastagi import FastAgiServer
from ivr.trees.store import TreeStore

TREE = """\
version: "1"
line: vtest
settings:
  languages: [ru]
  default_language: ru
  start: main
  main_menu: main
  operator_queue: operators
  timeouts: {first_digit: 2, inter_digit: 2}
nodes:
  main:
    menu: [welcome]
    choices:
      - {key: "1", goto: bye}
  bye:
    hangup: [farewell]
"""
COMMON = """\
error_apology: Ошибка.
queue_first: Соединяю.
queue_position: Перед вами есть звонки.
queue_wait: Подождите.
goodbye: До свидания.
call_time_exceeded: Время вышло.
transfer_to_operator: Оператор.
universal_keys_help: Помощь.
no_input: Не слышу.
no_match: Не поняла.
please_wait: Подождите.
"""
OLD = {"welcome": "Здравствуйте, нажмите один.", "farewell": "Спасибо за звонок."}
NEW = {"welcome": "Добрый день, нажмите один.", "farewell": "Всего доброго."}
HEADER = agi_header("vtest?did=0505&trust=yes&roaming=no")


def write_texts(settings: Settings, texts: Mapping[str, str]) -> None:
    body = "".join(f"{key}: {text}\n" for key, text in texts.items())
    (settings.prompts / "texts" / "vtest.ru.yaml").write_text(body, encoding="utf-8")


def render_line(settings: Settings) -> None:
    """What publishing does after writing the files: render the line's changed prompts."""
    voice = PromptVoice(settings)
    report = render_jobs(settings, plan_prompts(voice, ["vtest"], ["ru"]), engine="espeak", progress=False)
    assert not report.failed, report.failed


def streamed(settings: Settings, texts: Mapping[str, str]) -> list[str]:
    """The STREAM FILE names of a call that hears `welcome` then `farewell` in the version `texts`."""
    folder = settings.sounds.resolve() / "ru" / "vtest"
    return [asterisk_name(folder / piece_file(key, texts[key])) for key in ("welcome", "farewell")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    if not shutil.which("espeak-ng") or not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and sox/ffmpeg are needed (scripts/install_tts.sh)")
    settings = Settings(home=tmp_path, callbacks=False)  # no callback texts here: the queue's alone
    (settings.prompts / "texts").mkdir(parents=True)
    (settings.prompts / "numbers").mkdir()
    (settings.prompts / "vtest.yaml").write_text(TREE, encoding="utf-8")
    (settings.prompts / "texts" / "common.ru.yaml").write_text(COMMON, encoding="utf-8")
    (settings.prompts / "numbers" / "service_numbers.yaml").write_text(
        'lines:\n  vtest: {step_up: never}\nnumbers:\n  - {number: "0505", line: vtest, trust: true}\n',
        encoding="utf-8",
    )
    write_texts(settings, OLD)
    render_line(settings)
    return settings


async def no_action(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
    raise AssertionError("the test line runs no action")


@pytest.fixture
def app(settings: Settings) -> LineApp:
    """`build_app(settings, serving=True)` without the database (the test line runs no action) and with
    reloads when the test says, not from a watcher thread."""
    voice = PromptVoice(settings)
    trees = TreeStore(
        settings.prompts,
        actions.catalog(),
        poll_seconds=None,
        accept=audio_check(settings, voice),
        also_watch=(settings.sounds / MANIFEST,),
    )
    line_app = LineApp(settings=settings, trees=trees, voice=voice)
    line_app.invoker_for = lambda call: no_action
    line_app.reload_changed()
    assert trees.lines() == ["vtest"], trees.errors
    return line_app


async def call_paused_at_first_prompt(
    port: int, script: CallScript, pause: Callable[[], Awaitable[None]]
) -> CallScript:
    """One fake call that holds its first STREAM FILE (the caller is listening) until `pause` returns."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEADER)
    await writer.drain()
    paused = False
    try:
        while line := await reader.readline():
            command = line.decode().rstrip("\n")
            if command.startswith("STREAM FILE") and not paused:
                paused = True
                await pause()
            writer.write(script.answer(command).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    return script


def test_a_call_keeps_its_version_while_a_new_call_gets_the_published_one(
    app: LineApp, settings: Settings
) -> None:
    first_tree = app.trees.get("vtest")
    during: list[CallScript] = []

    async def main() -> CallScript:
        handler = CallHandler(app.session, app.voice, read_timeout=5.0, reload=app.reload)
        server = FastAgiServer(handler, port=0)
        await server.start()

        async def publish_then_call_again() -> None:
            def publish() -> None:  # the console's publish: write the files, render, the server takes them
                write_texts(settings, NEW)
                render_line(settings)
                app.reload_changed()

            await asyncio.to_thread(publish)
            assert app.trees.get("vtest") is not first_tree, app.trees.errors
            during.append(await run_fake_call(server.port, HEADER, CallScript(keys=["1"])))

        try:
            return await call_paused_at_first_prompt(
                server.port, CallScript(keys=["1"]), publish_then_call_again
            )
        finally:
            await server.shutdown()

    first = asyncio.run(main())

    assert first.variables["IVR_RESULT"] == "hangup"
    assert first.streamed == streamed(settings, OLD)  # farewell too: the version the call started with
    assert during[0].variables["IVR_RESULT"] == "hangup"
    assert during[0].streamed == streamed(settings, NEW)
    for name in first.streamed + during[0].streamed:
        assert Path(name + ".wav").is_file(), name
    # The server's voice speaks the set in service; the plain names are the newest render.
    assert app.voice.text("vtest", "ru", PromptRef("farewell")) == NEW["farewell"]
    plain = settings.sounds / "ru" / "vtest" / "farewell.wav"
    assert plain.samefile(Path(streamed(settings, NEW)[1] + ".wav"))


def test_a_refused_publish_leaves_new_calls_on_the_old_version(app: LineApp, settings: Settings) -> None:
    """Published without rendering: the server keeps the old set, and so do new calls (texts and audio)."""
    write_texts(settings, NEW)
    app.reload_changed()
    assert any(e.code == "audio" for e in app.trees.errors["vtest"])

    async def main() -> CallScript:
        server = FastAgiServer(CallHandler(app.session, app.voice, read_timeout=5.0), port=0)
        await server.start()
        try:
            return await run_fake_call(server.port, HEADER, CallScript(keys=["1"]))
        finally:
            await server.shutdown()

    script = asyncio.run(main())
    assert script.streamed == streamed(settings, OLD)
