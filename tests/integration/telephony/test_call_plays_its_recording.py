"""A recording made by a person, published the way the console publishes (the file under prompts/recordings,
then the render), is taken by the server as part of the line's set: refused while its audio is not
rendered, then played to new calls over FastAGI, while a call that started on the set without it keeps the
synthesised audio. A recording of a text with placeholders is refused with its file named. Through the real
wiring (LineApp, TreeStore with the server's audio check, CallHandler, the FastAGI server) and a fake
Asterisk; rendering with espeak-ng."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import struct
import wave
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

TEXTS = {
    "welcome": "Здравствуйте, нажмите один.",
    "farewell": "Спасибо за звонок.",
    "sum": "Итого {n:number}.",
}
HEADER = agi_header("rtest?did=0505&trust=yes&roaming=no")


def voice_wav(seconds: float = 0.6) -> bytes:
    """A stand-in for a person's recording, as the console stores it: 8 kHz mono 16-bit PCM."""
    n = int(8000 * seconds)
    samples = [
        round(8000 * math.sin(math.pi * i / n) * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(n)
    ]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(struct.pack(f"<{n}h", *samples))
    return out.getvalue()


def render_line(settings: Settings) -> None:
    two_node.render_line(settings, "rtest")


def recording(settings: Settings, key: str) -> Path:
    return settings.prompts / "recordings" / "rtest" / "ru" / f"{key}.wav"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return two_node.two_node_line(tmp_path, "rtest", TEXTS)


@pytest.fixture
def app(settings: Settings) -> LineApp:
    return two_node.serving_app(settings, "rtest")


def call(app: LineApp) -> CallScript:
    async def main() -> CallScript:
        server = FastAgiServer(CallHandler(app.session, app.voice, read_timeout=5.0), port=0)
        await server.start()
        try:
            return await run_fake_call(server.port, HEADER, CallScript(keys=["1"]))
        finally:
            await server.shutdown()

    return asyncio.run(main())


def test_a_published_recording_is_played_to_new_calls_once_rendered(app: LineApp, settings: Settings) -> None:
    folder = settings.sounds.resolve() / "ru" / "rtest"
    synthesised = [asterisk_name(folder / piece_file(k, TEXTS[k])) for k in ("welcome", "farewell")]
    assert call(app).streamed == synthesised
    _tree, before = app.trees.get_set("rtest")

    data = voice_wav()
    path = recording(settings, "welcome")
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    app.reload_changed()  # published without its render: refused, the set without it keeps serving
    assert any("older than its recording" in e.message for e in app.trees.errors["rtest"])
    assert call(app).streamed == synthesised

    render_line(settings)
    app.reload_changed()  # the manifest changed: the set is checked again and taken
    assert "rtest" not in app.trees.errors
    recorded = folder / piece_file("welcome", TEXTS["welcome"], hashlib.sha1(data).hexdigest())
    script = call(app)
    assert script.streamed == [asterisk_name(recorded), synthesised[1]]
    assert Path(script.streamed[0] + ".wav").is_file()
    # A call that started on the set without the recording plays the synthesis to its end.
    old_view = app.voice.for_texts(before)
    assert old_view.stream_names("rtest", "ru", PromptRef("welcome")) == synthesised[:1]
    assert app.voice.text("rtest", "ru", PromptRef("welcome")) == TEXTS["welcome"]


def test_a_recording_of_a_text_with_placeholders_is_refused_with_its_file(
    app: LineApp, settings: Settings
) -> None:
    path = recording(settings, "sum")
    path.parent.mkdir(parents=True)
    path.write_bytes(voice_wav())
    app.reload_changed()
    errors = app.trees.errors["rtest"]
    assert [(e.file, e.code) for e in errors] == [(str(path), "recording")]
    assert "{n:number}" in errors[0].message and "without placeholders" in errors[0].message
    assert call(app).streamed[0].endswith(Path(piece_file("welcome", TEXTS["welcome"])).stem)
