"""Hearing prompts and uploading recordings through the console (espeak-ng renders; ffmpeg decodes)."""

from __future__ import annotations

import base64
import io
import wave

from console_support import json_post, log_in
from pydub import AudioSegment
from pydub.generators import Sine
from starlette.testclient import TestClient

from ivr.config import Settings
from ivr.db.session import make_uow_factory
from ivr.services import tree_versions


def wav_params(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


def test_a_draft_prompt_is_heard_as_callers_will_and_the_live_one_is_untouched(console: TestClient) -> None:
    token = log_in(console, "editor")
    new = "Проверка: вы слушаете черновик."
    assert (
        json_post(
            console, "/lines/operator/text", token, {"lang": "ru", "key": "cancelled", "text": new}
        ).status_code
        == 200
    )
    draft = console.get("/lines/operator/audio/ru/cancelled.wav?from=draft")
    assert draft.status_code == 200 and draft.headers["content-type"] == "audio/wav"
    assert bytes.fromhex(draft.headers["x-prompt-text"]).decode() == new
    rate, channels, width, seconds = wav_params(draft.content)
    assert (rate, channels, width) == (8000, 1, 2) and seconds > 1.0
    live = console.get("/lines/operator/audio/ru/cancelled.wav?from=live")
    assert bytes.fromhex(live.headers["x-prompt-text"]).decode() == "Действие отменено."
    assert live.content != draft.content
    # a prompt with values is heard with example ones
    money = console.get("/lines/operator/audio/ru/balance_is.wav?from=live")
    assert "сто двадцать три" in bytes.fromhex(money.headers["x-prompt-text"]).decode()


def test_an_upload_becomes_a_telephone_recording_in_the_draft(
    console: TestClient, console_settings: Settings
) -> None:
    token = log_in(console, "editor")
    console.get("/lines/operator/edit")
    tone = Sine(440).to_audio_segment(duration=1500, volume=-6).set_channels(2).set_frame_rate(44100)
    for name, fmt in (("greeting.wav", "wav"), ("greeting.ogg", "ogg")):
        upload = io.BytesIO()
        tone.export(upload, format=fmt)
        r = console.post(
            "/lines/operator/upload",
            data={"csrf": token, "lang": "ru", "key": "cancelled"},
            files={"file": (name, upload.getvalue(), "application/octet-stream")},
        )
        assert r.status_code == 303, r.text
        factory = make_uow_factory(console_settings.db_url)
        with factory() as uow:
            draft = tree_versions.draft(uow, "operator", "editor")
            recorded = base64.b64decode(draft.files["recordings/operator/ru/cancelled.wav"])
        factory.dispose()
        rate, channels, width, seconds = wav_params(recorded)
        assert (rate, channels, width) == (8000, 1, 2) and 1.3 < seconds < 1.6, (name, seconds)
        level = AudioSegment.from_file(io.BytesIO(recorded), format="wav").dBFS
        assert -21.5 < level < -18.5, (name, level)  # levelled like the synthesised prompts (-20 dBFS)
    assert "recorded" in console.get("/lines/operator/edit").text


def test_an_upload_that_is_not_audio_is_refused(console: TestClient) -> None:
    token = log_in(console, "editor")
    for name, body in (("notes.txt", b"hello"), ("fake.mp3", b"not an mp3 at all" * 100)):
        r = console.post(
            "/lines/operator/upload",
            data={"csrf": token, "lang": "ru", "key": "cancelled"},
            files={"file": (name, body, "application/octet-stream")},
        )
        assert r.status_code == 400, (name, r.status_code)
    r = console.post(
        "/lines/operator/upload",
        data={"csrf": token, "lang": "ru", "key": "no_such_key"},
        files={"file": ("x.wav", b"RIFF", "audio/wav")},
    )
    assert r.status_code == 400


def test_a_recording_can_be_removed_and_a_text_edit_says_it_is_recorded(
    console: TestClient, console_settings: Settings
) -> None:
    token = log_in(console, "editor")
    console.get("/lines/operator/edit")
    upload = io.BytesIO()
    Sine(300).to_audio_segment(duration=800, volume=-6).export(upload, format="wav")
    console.post(
        "/lines/operator/upload",
        data={"csrf": token, "lang": "ru", "key": "cancelled"},
        files={"file": ("r.wav", upload.getvalue(), "audio/wav")},
    )
    r = json_post(
        console, "/lines/operator/text", token, {"lang": "ru", "key": "cancelled", "text": "Иначе."}
    )
    assert r.json()["recorded"] is True
    removed = console.post(
        "/lines/operator/recording/remove", data={"csrf": token, "lang": "ru", "key": "cancelled"}
    )
    assert removed.status_code == 303
    r = json_post(
        console, "/lines/operator/text", token, {"lang": "ru", "key": "cancelled", "text": "Иначе!"}
    )
    assert r.json()["recorded"] is False
    again = console.post(
        "/lines/operator/recording/remove", data={"csrf": token, "lang": "ru", "key": "cancelled"}
    )
    assert again.status_code == 404
    assert "recording_removed" in console.get("/audit").text
