"""Rendering for real: espeak-ng + sox/ffmpeg, files checked for format, length, level and trimming."""

from __future__ import annotations

import json
import logging
import math
import shutil
import socket
import subprocess
import wave
from array import array
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ivr.cli import main as ivr_main
from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts.render import (
    KEEP_AFTER_MS,
    KEEP_BEFORE_MS,
    MANIFEST,
    PAUSE_MS,
    PEAK_LIMIT_DBFS,
    TARGET_RMS_DBFS,
    TRIM_FLOOR_DBFS,
    TRIM_RANGE_DB,
    RenderError,
    RenderJob,
    check_all,
    check_prompts,
    render,
    render_jobs,
    render_names,
    resample_to_telephone,
    telephone_audio,
)
from ivr.prompts.tts import get_engine
from ivr.prompts.voice import PromptVoice, name_slug, piece_file


def read_samples(path: Path) -> tuple[wave._wave_params, array[int]]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        samples = array("h")
        samples.frombytes(wav.readframes(wav.getnframes()))
    return params, samples


def dbfs(samples: array[int]) -> float:
    rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
    return 20 * math.log10(rms / 32767) if rms else -200.0


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, home_factory: Callable[[Path], Settings]
) -> Iterator[Settings]:
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed")
    settings = home_factory(tmp_path_factory.mktemp("rendered"))
    report = render(settings, engine="espeak", progress=False)
    assert not report.failed, report.failed
    assert report.rendered == report.planned > 250
    yield settings


def all_wavs(settings: Settings) -> list[Path]:
    return sorted(settings.sounds.rglob("*.wav"))


def copy_home(rendered: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(rendered.home, tmp_path / "home")
    return Settings(home=tmp_path / "home")


def test_every_file_is_8khz_mono_16bit_of_sane_length(rendered: Settings) -> None:
    wavs = all_wavs(rendered)
    assert len(wavs) > 250
    for path in wavs:
        params, samples = read_samples(path)
        assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2), path
        seconds = len(samples) / 8000
        if path.name == "pause.wav":
            assert seconds == pytest.approx(PAUSE_MS / 1000)
            assert max(map(abs, samples)) == 0
        else:
            assert 0.08 < seconds < 10, (path, seconds)


def test_levels_are_normalised_and_never_clip(rendered: Settings) -> None:
    levels = []
    for path in all_wavs(rendered):
        if path.name == "pause.wav":
            continue
        _params, samples = read_samples(path)
        peak = max(abs(min(samples)), abs(max(samples)))
        assert peak <= 32767 * 10 ** (-1 / 20) + 2, path  # peak limited to -1 dBFS
        levels.append(dbfs(samples))
        # The gain lands on one of its two limits: RMS at the target, or the peak at its limit.
        at_target = dbfs(samples) == pytest.approx(TARGET_RMS_DBFS, abs=0.05)
        at_peak_limit = peak >= 32767 * 10 ** ((PEAK_LIMIT_DBFS - 0.05) / 20)
        assert at_target or at_peak_limit, (path, dbfs(samples), peak)
    # -20 dBFS RMS unless the peak limit held a very peaky word lower.
    assert all(-27 < level < -19.5 for level in levels), (min(levels), max(levels))
    assert sorted(levels)[len(levels) // 2] == pytest.approx(-20, abs=0.5)


def test_silence_is_trimmed(rendered: Settings) -> None:
    window = 80  # 10 ms
    quiet = 32767 * 10 ** (-50 / 20)
    for path in all_wavs(rendered):
        if path.name == "pause.wav":
            continue
        _params, samples = read_samples(path)
        windows = [
            math.sqrt(sum(s * s for s in samples[i : i + window]) / window)
            for i in range(0, len(samples) - window + 1, window)
        ]
        lead = next(i for i, rms in enumerate(windows) if rms > quiet)
        tail = next(i for i, rms in enumerate(reversed(windows)) if rms > quiet)
        assert lead <= 3, (path, lead)  # at most 30 ms before the speech
        assert tail <= 5, (path, tail)  # at most 50 ms after it
        # By the trimming rule itself (speech = within TRIM_RANGE_DB of the loudest window and above the
        # floor; 0.5 dB slack for rounding), exactly the padding is left: at most KEEP_BEFORE_MS before
        # the first speech window and KEEP_AFTER_MS after the last (less where the engine's audio began
        # or ended with speech).
        threshold = max(max(windows) * 10 ** (-TRIM_RANGE_DB / 20), 32767 * 10 ** (TRIM_FLOOR_DBFS / 20))
        speech = [i for i, rms in enumerate(windows) if rms >= threshold * 10 ** (-0.5 / 20)]
        assert speech[0] <= KEEP_BEFORE_MS // 10, (path, speech[0])
        assert len(windows) - 1 - speech[-1] <= KEEP_AFTER_MS // 10, (path, len(windows) - 1 - speech[-1])


def test_amount_files_exist_after_render(rendered: Settings) -> None:
    voice = PromptVoice(rendered)
    for amount in ("0", "0.01", "1.21", "-123.45", "21000", "999999999.99"):
        files = voice.files("alpha", "ru", PromptRef("balance", {"balance": Decimal(amount), "points": 21}))
        assert files and all(p.is_file() for p in files), [p for p in files if not p.is_file()]
    files = voice.files("alpha", "en", PromptRef("balance", {"balance": Decimal("-1.01")}))
    assert all(p.is_file() for p in files)


def test_manifest_records_and_skips_unchanged(rendered: Settings, tmp_path: Path) -> None:
    settings = copy_home(rendered, tmp_path)
    manifest = json.loads((settings.sounds / MANIFEST).read_text(encoding="utf-8"))
    entry = manifest["files"][f"ru/alpha/{piece_file('balance.0', 'Ваш баланс')}"]
    assert entry["text"] == "Ваш баланс"
    assert entry["engine"] == "espeak" and entry["voice"] == "ru" and len(entry["hash"]) == 20

    second = render(settings, engine="espeak", progress=False)
    assert second.rendered == 0 and second.skipped == second.planned

    texts = settings.prompts / "texts" / "alpha.ru.yaml"
    texts.write_text(
        texts.read_text(encoding="utf-8").replace("Здравствуйте!", "Добрый день!"), encoding="utf-8"
    )
    third = render(settings, engine="espeak", progress=False)
    assert third.rendered == 1
    new_welcome = piece_file("welcome", "Добрый день! Вы позвонили в службу поддержки.")
    assert json.loads((settings.sounds / MANIFEST).read_text(encoding="utf-8"))["files"][
        f"ru/alpha/{new_welcome}"
    ]["text"].startswith("Добрый день!")

    (settings.sounds / "ru" / "words" / "dve.wav").unlink()  # a deleted file is rendered again
    assert render(settings, engine="espeak", progress=False).rendered == 1

    forced = render(settings, "beta", engine="espeak", progress=False, force=True)
    assert forced.rendered == forced.planned


def test_render_one_line_and_language(rendered: Settings, tmp_path: Path) -> None:
    settings = copy_home(rendered, tmp_path)
    report = render(settings, "beta", langs=["ru"], engine="espeak", progress=False, force=True)
    # beta's one text, the two common ru texts, and the ru vocabulary: nothing of alpha, nothing English.
    from ivr.prompts.voice import vocabulary

    assert report.planned == 1 + 2 + len(vocabulary("ru"))


def test_check_prompts(rendered: Settings, tmp_path: Path) -> None:
    settings = copy_home(rendered, tmp_path)
    keys = {"ru": ["welcome", "balance", "goodbye"], "en": ["welcome", "balance", "goodbye"]}
    assert check_prompts(settings, "alpha", keys) == []
    assert check_all(settings) == []

    problems = check_prompts(settings, "alpha", {"en": ["plan"], "ru": ["nope"]}, check_audio=False)
    assert any("'plan' has no text" in p and "/en" in p for p in problems)
    assert any("'nope' has no text" in p for p in problems)

    texts = settings.prompts / "texts" / "alpha.ru.yaml"
    texts.write_text(
        texts.read_text(encoding="utf-8").replace("Вы позвонили", "Вы звоните")
        + "bad: 'Итого {x:furlongs}'\n",
        encoding="utf-8",
    )
    problems = check_prompts(settings, "alpha", {"ru": ["welcome", "bad"]})
    assert any("welcome" in p and "older than its text" in p for p in problems)
    assert any("unknown placeholder kind {x:furlongs}" in p for p in problems)

    (settings.sounds / "ru" / "words" / "odin.wav").unlink()
    problems = check_prompts(settings, "alpha", {"ru": ["balance"]})
    assert any("value words have no audio" in p for p in problems)


def test_render_names_hook(rendered: Settings, tmp_path: Path) -> None:
    settings = copy_home(rendered, tmp_path)
    voice = PromptVoice(settings)
    ref = PromptRef("plan", {"plan": "Безлимит Плюс"})
    assert len(voice.files("alpha", "ru", ref)) == 1  # name not rendered yet: skipped, not an error

    report = render_names(["Безлимит Плюс", " ", "Безлимит Плюс"], settings, langs=["ru"], engine="espeak")
    assert report.rendered == 1 and not report.failed
    name_file = settings.sounds.resolve() / "ru" / "words" / f"{name_slug('Безлимит Плюс')}.wav"
    assert voice.files("alpha", "ru", ref) == [
        settings.sounds.resolve() / "ru" / "alpha" / piece_file("plan.0", "Ваш тариф"),
        name_file,
    ]
    assert render_names(["Безлимит Плюс"], settings, langs=["ru"], engine="espeak").rendered == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gtts_unreachable_falls_back_and_says_so(
    home: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Route gTTS's HTTPS through a proxy on a closed loopback port: the request fails at once, locally.
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    jobs = [
        RenderJob("ru/alpha/one.wav", "Здравствуйте", "ru", "prompt"),
        RenderJob("ru/alpha/two.wav", "До свидания", "ru", "prompt"),
        RenderJob("en/alpha/one.wav", "Hello", "en", "prompt"),
    ]
    with caplog.at_level(logging.WARNING):
        report = render_jobs(home, jobs, engine="gtts", progress=False, workers=1)
    assert report.rendered == 3 and not report.failed
    assert report.fallbacks == 3
    assert "gtts" not in report.by_engine
    assert "gTTS unreachable" in caplog.text and "rendering with" in caplog.text
    assert caplog.text.count("gTTS unreachable") == 1  # said once, not once per file
    manifest = json.loads((home.sounds / MANIFEST).read_text(encoding="utf-8"))
    assert {e["engine"] for e in manifest["files"].values()} <= {"espeak", "rhvoice"}


def _tone(path: Path, freq: float, rate: int = 22050, seconds: float = 1.0) -> None:
    samples = array(
        "h", (int(16000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(rate * seconds)))
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def test_resampling_low_passes_instead_of_aliasing(tmp_path: Path) -> None:
    if not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("sox or ffmpeg needed")
    # A 5 kHz tone cannot exist at 8 kHz; a bare decimation folds it to 3 kHz at full level.
    _tone(tmp_path / "high.wav", 5000)
    _tone(tmp_path / "speech_band.wav", 1000)
    high = resample_to_telephone(tmp_path / "high.wav").get_array_of_samples()
    passed = resample_to_telephone(tmp_path / "speech_band.wav").get_array_of_samples()
    assert len(passed) == pytest.approx(8000, abs=10)
    assert dbfs(passed) == pytest.approx(dbfs(array("h", [16000, -16000])) - 3.0, abs=1.0)  # sine RMS
    edge = 200  # the filter's start-up and tail transients
    assert dbfs(high[edge:-edge]) < dbfs(passed[edge:-edge]) - 50


def test_ffmpeg_fallback_low_passes_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without sox, ffmpeg resamples (`-ar 8000`): it must be band-limited as well.
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg needed")
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "sox" else which(name))
    _tone(tmp_path / "high.wav", 5000)
    _tone(tmp_path / "speech_band.wav", 1000)
    high = resample_to_telephone(tmp_path / "high.wav").get_array_of_samples()
    passed = resample_to_telephone(tmp_path / "speech_band.wav").get_array_of_samples()
    assert len(passed) == pytest.approx(8000, abs=10)
    assert dbfs(passed) == pytest.approx(dbfs(array("h", [16000, -16000])) - 3.0, abs=1.0)
    edge = 200
    assert dbfs(high[edge:-edge]) < dbfs(passed[edge:-edge]) - 50


def _mp3(wav: Path) -> Path:
    """The WAV as an MP3, like gTTS's output (ffmpeg's encoder; pydub decodes it back through ffmpeg)."""
    mp3 = wav.with_suffix(".mp3")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(wav), "-b:a", "128k", str(mp3)], check=True
    )
    return mp3


@pytest.mark.parametrize("sox", [True, False], ids=["sox", "ffmpeg"])
def test_mp3_is_decoded_and_low_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sox: bool) -> None:
    if not shutil.which("ffmpeg") or (sox and not shutil.which("sox")):
        pytest.skip("ffmpeg (and sox) needed")
    if not sox:
        which = shutil.which
        monkeypatch.setattr(shutil, "which", lambda name: None if name == "sox" else which(name))
    _tone(tmp_path / "high.wav", 5000, rate=24000)
    _tone(tmp_path / "speech_band.wav", 1000, rate=24000)
    high = resample_to_telephone(_mp3(tmp_path / "high.wav")).get_array_of_samples()
    passed = resample_to_telephone(_mp3(tmp_path / "speech_band.wav")).get_array_of_samples()
    assert len(passed) == pytest.approx(8000, abs=10)  # the encoder's delay and padding are dropped
    assert dbfs(passed) == pytest.approx(dbfs(array("h", [16000, -16000])) - 3.0, abs=1.0)
    edge = 200
    assert dbfs(high[edge:-edge]) < dbfs(passed[edge:-edge]) - 50


@pytest.mark.parametrize("content", ["error page", "picture"])
def test_undecodable_audio_is_a_render_error(tmp_path: Path, content: str) -> None:
    # A RenderError fails that one file; anything else would abort the whole render.
    bad = tmp_path / "bad.mp3"
    if content == "picture":  # ffprobe finds a stream, but no audio stream
        if not shutil.which("ffmpeg"):
            pytest.skip("ffmpeg needed")
        png = tmp_path / "bad.png"
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "color=red:s=8x8", "-frames:v", "1"]
        subprocess.run([*cmd, str(png)], check=True)
        png.replace(bad)
    else:
        bad.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(RenderError, match=r"cannot decode bad\.mp3"):
        resample_to_telephone(bad)


def test_gtts_mp3_renders_to_telephone_audio(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # gTTS offline: its save() writes espeak-ng's voice as MP3; the rest is the real path (pydub decode,
    # sox, trim, gain) through render_jobs.
    gtts = pytest.importorskip("gtts")
    if not (shutil.which("espeak-ng") and shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and ffmpeg needed")

    def save(self: object, path: str) -> None:
        wav = Path(path).with_suffix(".src.wav")
        text = str(getattr(self, "text", ""))
        subprocess.run(["espeak-ng", "-v", "ru", "-w", str(wav), "--stdin"], input=text.encode(), check=True)
        _mp3(wav).replace(path)
        wav.unlink()

    monkeypatch.setattr(gtts.gTTS, "save", save)
    report = render_jobs(home, [RenderJob("ru/alpha/mp3.wav", "Ваш баланс", "ru", "prompt")], engine="gtts")
    assert report.by_engine == {"gtts": 1} and not report.failed
    params, samples = read_samples(home.sounds / "ru/alpha/mp3.wav")
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert 0.3 < len(samples) / 8000 < 3
    peak = max(abs(min(samples)), abs(max(samples)))
    assert peak <= 32767 * 10 ** (PEAK_LIMIT_DBFS / 20) + 2
    at_peak_limit = peak >= 32767 * 10 ** ((PEAK_LIMIT_DBFS - 0.05) / 20)
    assert dbfs(samples) == pytest.approx(TARGET_RMS_DBFS, abs=0.05) or at_peak_limit


def test_telephone_audio_writes_what_it_reports(home: Settings, tmp_path: Path) -> None:
    _tone(tmp_path / "tone.wav", 1000, seconds=0.5)
    seconds = telephone_audio(tmp_path / "tone.wav", home.sounds / "t.wav")
    params, samples = read_samples(home.sounds / "t.wav")
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert seconds == len(samples) / 8000 == pytest.approx(0.5, abs=0.01)
    assert dbfs(samples) == pytest.approx(TARGET_RMS_DBFS, abs=0.05)
    assert [p.name for p in home.sounds.iterdir()] == ["t.wav"]  # no temporary file left behind


def test_rhvoice_renders_when_installed(home: Settings) -> None:
    engine = get_engine("rhvoice")
    if not engine.available():
        pytest.skip("RHVoice is not installed (scripts/install_tts.sh)")
    report = render_jobs(home, [RenderJob("ru/alpha/x.wav", "Ваш баланс", "ru", "prompt")], engine="rhvoice")
    assert report.by_engine == {"rhvoice": 1}
    params, samples = read_samples(home.sounds / "ru/alpha/x.wav")
    assert params.framerate == 8000 and 0.3 < len(samples) / 8000 < 3


def test_espeak_reads_text_from_stdin_safely(home: Settings) -> None:
    report = render_jobs(
        home, [RenderJob("ru/alpha/dash.wav", "-v en --help", "ru", "prompt")], engine="espeak"
    )
    assert report.rendered == 1  # not taken as options


def test_cli_render_check_say(
    home: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_HOME", str(home.home))
    assert ivr_main(["prompts", "check"]) == 1  # nothing rendered yet
    assert ivr_main(["prompts", "render", "--engine", "espeak", "--no-progress"]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert ivr_main(["prompts", "check"]) == 0
    assert capsys.readouterr().out.strip() == "0 problem(s)"
    assert ivr_main(["prompts", "say", "--lang", "ru", "money", "123.45"]) == 0
    assert capsys.readouterr().out.strip() == "сто двадцать три рубля сорок пять копеек"
    assert ivr_main(["prompts", "say", "--lang", "en", "points", "1"]) == 0
    assert capsys.readouterr().out.strip() == "one point"
    assert ivr_main(["prompts", "say", "money", "abc"]) == 2
    out = home.home / "amount.wav"
    assert ivr_main(["prompts", "say", "--lang", "ru", "money", "-21.02", "--wav", str(out)]) == 0
    with wave.open(str(out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (8000, 1) and wav.getnframes() > 8000
    assert ivr_main(["prompts", "render", "no_such_line", "--engine", "espeak"]) == 2
    capsys.readouterr()
    assert ivr_main(["prompts", "list", "alpha", "--lang", "ru"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert "alpha.ru\tbalance\tok \tВаш баланс {balance:money}. Бонусных баллов: {points:points}." in listing
    assert all(row.startswith("alpha.ru\t") for row in listing)
    assert ivr_main(["prompts", "render", "--voice", "bad"]) == 2
    assert ivr_main(["prompts", "prune"]) == 0
    assert (
        capsys.readouterr().out.strip().endswith("0 deleted, 0 unused and kept until their grace period ends")
    )


def test_stream_file_paths_point_at_rendered_files(rendered: Settings) -> None:
    voice = PromptVoice(rendered)
    for name in voice.stream_names("alpha", "ru", PromptRef("balance", {"balance": 5, "points": 2})):
        assert Path(name + ".wav").is_file()
    assert subprocess.run(["sox", "--i", name + ".wav"], capture_output=True, check=False).returncode == 0


def test_cyrillic_names_are_said_by_the_russian_voice_in_english(home: Settings) -> None:
    report = render_names(["Безлимит", "Family"], home, langs=["en"], engine="espeak")
    assert report.rendered == 2
    files = json.loads((home.sounds / MANIFEST).read_text(encoding="utf-8"))["files"]
    assert files[f"en/words/{name_slug('Безлимит')}.wav"]["voice"] == "ru"
    assert files[f"en/words/{name_slug('Family')}.wav"]["voice"] == "en-gb"
    assert render_names(["Безлимит", "Family"], home, langs=["en"], engine="espeak").rendered == 0


def test_two_renders_saving_the_manifest_keep_each_others_entries(home: Settings) -> None:
    from ivr.prompts.render import Manifest

    first, second = Manifest(home.sounds / MANIFEST), Manifest(home.sounds / MANIFEST)
    first.put("ru/a.wav", {"text": "a", "hash": "1"})
    second.put("ru/b.wav", {"text": "b", "hash": "2"})
    first.save()
    second.save()
    assert set(Manifest(home.sounds / MANIFEST).files) == {"ru/a.wav", "ru/b.wav"}
