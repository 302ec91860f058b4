"""A call in progress keeps the prompt texts and audio of the version it started with. A line's texts are
changed, rendered and taken by the server (the way the staff console publishes) while a call is in the
middle of its first prompt: that call plays the rest of its prompts in the old version, while a call that
starts meanwhile plays the new one. Through the real wiring (LineApp, TreeStore with the server's audio
check, CallHandler, the FastAGI server, AgiChannel) and a fake Asterisk; rendering with espeak-ng."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import pytest
import two_node_line as two_node
from fake_asterisk import CallScript, agi_header, run_fake_call

from ivr.app.bootstrap import LineApp
from ivr.app.session import CallHandler
from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.voice import asterisk_name, piece_file
from ivr.telephony.fastagi import FastAgiServer

OLD = {"welcome": "Здравствуйте, нажмите один.", "farewell": "Спасибо за звонок."}
NEW = {"welcome": "Добрый день, нажмите один.", "farewell": "Всего доброго."}
HEADER = agi_header("vtest?did=0505&trust=yes&roaming=no")


def write_texts(settings: Settings, texts: Mapping[str, str]) -> None:
    two_node.write_texts(settings, "vtest", texts)


def render_line(settings: Settings) -> None:
    two_node.render_line(settings, "vtest")


def streamed(settings: Settings, texts: Mapping[str, str]) -> list[str]:
    """The STREAM FILE names of a call that hears `welcome` then `farewell` in the version `texts`."""
    folder = settings.sounds.resolve() / "ru" / "vtest"
    return [asterisk_name(folder / piece_file(key, texts[key])) for key in ("welcome", "farewell")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return two_node.two_node_line(tmp_path, "vtest", OLD)


@pytest.fixture
def app(settings: Settings) -> LineApp:
    return two_node.serving_app(settings, "vtest")


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
