"""The media path candidates against the real Asterisk (issue 12): a sipp call reaches a lab extension whose
FastAGI session hands the call's media to our server, and the test checks what the server got and what
Asterisk did with what the server sent.

- AudioSocket: the AGI session runs `EXEC AudioSocket(<uuid>,<our server>)` (ivr.telephony.audiosocket);
- chan_websocket: the AGI session runs `EXEC Dial(WebSocket/...,,g)` to the lab's websocket prototype.

Both ways the server must get: the call (the AudioSocket UUID the AGI session chose, or the websocket's
call token), the caller's audio as 20 ms frames of 8 kHz 16-bit audio about 50 a second (sipp plays a 3 s
tone as RTP), a key pressed as RFC 2833 (sipp's shipped DTMF pcaps); Asterisk must send the caller the
audio we play (its RTP counter), stop at once when we stop (barge-in), and give the call back to the AGI
session when the media part ends. The lab (ivr.testbed.medialab) exists only in this test's own Asterisk;
the shipped dialplan is untouched. Figures (CPU, barge-in delay) come from scripts/bench_media.py.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.testbed import asterisk
from ivr.testbed.dialer import DialResult, dial
from ivr.testbed.localline import LocalLine, missing_pieces
from ivr.testbed.rtp_pcap import wav_to_pcap

pytest.importorskip("websockets", reason="the chan_websocket prototype needs websockets (dev extras)")

from ivr.telephony.audiosocket import FRAME_BYTES, Audio, Dtmf, PlayResult
from ivr.testbed.medialab import EXTENSIONS, LabCall, MediaLab, MediaLeg, install

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PATHS = ["audiosocket", "websocket"]  # the media streams (the lab's third path, playback, has none)
KEYS_CALLER = "79160000001"
BARGE_CALLER = "79160000002"
HANGUP_CALLER = "79160000003"
NORMAL_CLEARING = 16


def tone(freq: float, seconds: float, amplitude: int = 8000) -> bytes:
    n = int(8000 * seconds)
    return struct.pack(
        f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / 8000)) for i in range(n))
    )


def peak(pcm: bytes) -> int:
    return max((abs(s) for s in struct.unpack(f"<{len(pcm) // 2}h", pcm)), default=0)


@dataclass
class Heard:
    """What one call's session got and did."""

    audio: list[tuple[float, int, int]] = field(default_factory=list)  # (time, bytes, peak)
    digits: list[str] = field(default_factory=list)
    played: PlayResult | None = None
    ended_by_caller: bool = False
    end_seen_at: float = 0.0

    def loud(self) -> list[tuple[float, int, int]]:
        return [a for a in self.audio if a[2] > 1000]


async def session(call: LabCall, leg: MediaLeg) -> Heard:
    """The lab call's media part, chosen by the caller number."""
    heard = Heard()

    async def listen(until_digit: bool) -> None:
        async for event in leg.events():
            if isinstance(event, Audio):
                heard.audio.append((time.monotonic(), len(event.pcm), peak(event.pcm)))
            elif isinstance(event, Dtmf):
                heard.digits.append(event.digit)
                if until_digit:
                    return
        heard.ended_by_caller = True
        heard.end_seen_at = time.monotonic()

    if call.caller == KEYS_CALLER:  # a 1 s prompt while the caller talks, then a key ends the media part
        playing = leg.play(tone(1000, 1.0))
        with _quiet():
            await asyncio.wait_for(listen(until_digit=True), 20.0)
        heard.played = await playing
    elif call.caller == BARGE_CALLER:  # a 3 s prompt stopped after 1 s
        playing = leg.play(tone(1000, 3.0))
        await asyncio.sleep(1.0)
        leg.stop()
        heard.played = await playing
        await asyncio.sleep(0.5)
    elif call.caller == HANGUP_CALLER:  # a long prompt the caller hangs up on
        playing = leg.play(tone(1000, 10.0))
        with _quiet():
            await asyncio.wait_for(listen(until_digit=False), 20.0)
        heard.played = await asyncio.wait_for(playing, 5.0)
    return heard


class _quiet:
    """Let a timeout through quietly: the assertions below say what was missing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return kind is TimeoutError


@pytest.fixture(scope="module")
def lab_asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    missing = missing_pieces()
    if missing:
        reason = "needs " + " and ".join(missing) + "; run scripts/setup.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    line = LocalLine.prepare(tmp_path_factory.mktemp("media-lab") / "var")
    asterisk.start(line.settings, env=line.env)  # Asterisk alone: the lab is the only server
    try:
        yield line.settings
    finally:
        asterisk.stop(line.settings)


@pytest.fixture(scope="module")
def caller_pcap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """3 s of a 440 Hz tone as the caller's RTP (A-law, 20 ms packets)."""
    folder = tmp_path_factory.mktemp("media-lab-pcap")
    wav_path = folder / "caller.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(tone(440, 3.0))
    pcap = folder / "caller.pcap"
    return pcap, wav_to_pcap(wav_path, pcap)


def place(settings: Settings, path: str, caller: str, **dial_args: object) -> tuple[DialResult, LabCall]:
    async def main() -> tuple[DialResult, LabCall]:
        lab = MediaLab(session)
        await lab.start()
        try:
            install(settings, agi_port=lab.agi_port, ws_port=lab.ws_port)
            number = EXTENSIONS[path]
            result = await dial(settings, number, caller=caller, timeout=60.0, **dial_args)  # type: ignore[arg-type]
            assert lab.calls, f"the lab's AGI server saw no call:\n{result.describe()}"
            call = lab.calls[0]
            await asyncio.wait_for(call.done.wait(), 15.0)
            return result, call
        finally:
            await lab.close()

    result, call = asyncio.run(main())
    print(result.describe())
    print(call)
    return result, call


@pytest.mark.parametrize("path", PATHS)
def test_the_server_gets_the_call_its_audio_and_its_keys_and_asterisk_plays_what_it_sends(
    lab_asterisk: Settings, caller_pcap: tuple[Path, float], path: str
) -> None:
    pcap, seconds = caller_pcap
    result, call = place(
        lab_asterisk,
        path,
        KEYS_CALLER,
        keys="5",
        first_wait=1.0,
        wait=5.0,
        speech=((pcap, int(seconds * 1000) + 200),),
    )
    heard = call.session_result
    assert isinstance(heard, Heard), call.errors
    assert not call.errors
    # the media connection is the call the AGI session asked for (the lab matches it by UUID / token)
    assert call.media_id and call.uniqueid
    # the caller's audio: 8 kHz 16-bit frames of 20 ms, about 50 a second, all 3 s of the tone
    loud = heard.loud()
    assert {size for _t, size, _p in heard.audio} == {FRAME_BYTES}
    assert len(loud) >= 140, len(loud)
    rate = (len(loud) - 1) / (loud[-1][0] - loud[0][0])
    assert 45.0 <= rate <= 55.0, rate
    # the key, once, as a digit
    assert heard.digits == ["5"]
    # our 1 s prompt was taken whole, and Asterisk sent the caller at least as many RTP packets
    assert heard.played is not None and heard.played.complete and heard.played.sent == 50
    assert call.txcount >= 50, call.txcount
    # the media part ended gracefully and the AGI session went on with the call
    assert call.exec_result == 0
    assert call.agi_went_on
    if path == "websocket":
        assert call.dialstatus == "ANSWER"
    assert result.sipp_exit == 0, result.sipp_errors
    assert result.hangup_cause == NORMAL_CLEARING
    assert result.variables.get("AGISTATUS") == "SUCCESS"


@pytest.mark.parametrize("path", PATHS)
def test_a_stopped_prompt_stops_reaching_the_caller(lab_asterisk: Settings, path: str) -> None:
    result, call = place(lab_asterisk, path, BARGE_CALLER, first_wait=0.5, wait=8.0)
    heard = call.session_result
    assert isinstance(heard, Heard), call.errors
    assert heard.played is not None and heard.played.stopped
    # 1 s of a 3 s prompt was due when it stopped: Asterisk sent the caller about that, not 3 s
    # (AudioSocket: frames we never sent; chan_websocket: its queue flushed by FLUSH_MEDIA)
    assert 45 <= call.txcount <= 60, call.txcount
    assert call.exec_result == 0 and call.agi_went_on
    assert result.sipp_exit == 0, result.sipp_errors


@pytest.mark.parametrize("path", PATHS)
def test_the_callers_hangup_ends_the_media_stream(lab_asterisk: Settings, path: str) -> None:
    result, call = place(lab_asterisk, path, HANGUP_CALLER, first_wait=1.5, wait=0.1)
    heard = call.session_result
    assert isinstance(heard, Heard), call.errors
    assert heard.ended_by_caller
    assert heard.played is not None and heard.played.stopped  # the 10 s prompt did not play on
    assert result.sipp_exit == 0, result.sipp_errors
