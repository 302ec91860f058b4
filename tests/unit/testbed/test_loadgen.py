"""The one-sipp load generator: what it asks sipp to do, and the plans it refuses before placing a call."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.testbed.loadgen import LoadError, LoadPlan, PlannedCall, _sipp_counts, injection_file, scenario


def plan(**kw: object) -> LoadPlan:
    values: dict[str, object] = {
        "number": "0505",
        "calls": [PlannedCall("79161234567", "1"), PlannedCall("", "12#")],
        "concurrency": 2,
    }
    values.update(kw)
    return LoadPlan(**values)  # type: ignore[arg-type]


def test_the_injection_file_has_one_row_per_call_in_order(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    calls = [PlannedCall("79161234567", "1"), PlannedCall("", "12#")]
    injection_file(path, ["dial-a", "dial-b"], calls)
    assert path.read_text().splitlines() == ["SEQUENTIAL", "dial-a;79161234567;1", "dial-b;anonymous;12#"]


def test_the_scenario_takes_token_caller_and_keys_from_the_row() -> None:
    xml = scenario("0505", 5062, plan())
    ET.fromstring(xml)  # well-formed
    assert 'P-Asserted-Identity: "[field0]" <sip:[field1]@127.0.0.1>' in xml
    assert '<exec play_dtmf="[field2]"/>' in xml
    # play_dtmf sends payload type 96: the SDP must offer telephone-event on 96, or Asterisk ignores keys
    assert "m=audio [media_port] RTP/AVP 8 96" in xml and "a=rtpmap:96 telephone-event/8000" in xml
    assert "INVITE sip:0505@127.0.0.1:5062 SIP/2.0" in xml


def test_a_plan_without_keys_sends_none() -> None:
    xml = scenario("0505", 5062, plan(calls=[PlannedCall("79161234567")]))
    assert "play_dtmf" not in xml
    assert "play_pcap_audio" not in xml


def test_the_callers_voice_plays_from_the_answer_on(tmp_path: Path) -> None:
    xml = scenario("media-lab-audiosocket", 5062, plan(audio_pcap=tmp_path / "voice.pcap"))
    ET.fromstring(xml)
    after_ack = xml.split("CSeq: 1 ACK", 1)[1]
    assert after_ack.index(f'play_pcap_audio="{tmp_path / "voice.pcap"}"') < after_ack.index("play_dtmf")
    assert "INVITE sip:media-lab-audiosocket@127.0.0.1:5062 SIP/2.0" in xml


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"calls": []}, "no calls planned"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"rate": 0.0}, "rate must be positive"),
    ],
)
def test_impossible_plans_are_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(LoadError, match=reason):
        plan(**change).check(fd_limit=1024)


def test_a_plan_beyond_the_open_file_limit_is_refused_not_silently_cut() -> None:
    big = plan(calls=[PlannedCall("79161234567", "1")] * 1000, concurrency=1000)
    with pytest.raises(LoadError, match=r"1000 concurrent calls need about \d+ open files.*limit is 1024"):
        big.check(fd_limit=1024)
    big.check(fd_limit=4096)  # the same plan fits a raised limit


@pytest.mark.parametrize(("caller", "keys"), [("7916x", "1"), ("79161234567", "1a")])
def test_bad_callers_and_keys_are_refused_when_planned(caller: str, keys: str) -> None:
    with pytest.raises(LoadError):
        PlannedCall(caller, keys)


def test_sipp_counts_come_from_the_last_statistics_row(tmp_path: Path) -> None:
    stat = tmp_path / "stat.csv"
    stat.write_text("StartTime;SuccessfulCall(C);FailedCall(C);\n2026-12-02;0;0;\n2026-12-02;498;2;\n")
    assert _sipp_counts(stat) == (498, 2)
    assert _sipp_counts(tmp_path / "missing.csv") == (0, 0)
