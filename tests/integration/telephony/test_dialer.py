"""The scripted caller's pieces that need no Asterisk: the sipp scenario and the renumbered DTMF pcaps."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.testbed.dialer import KEY_PCAP, PCAP_DIR, DialError, renumbered_pcap, scenario

needs_pcaps = pytest.mark.skipif(not (PCAP_DIR / KEY_PCAP["1"]).exists(), reason="sip-tester not installed")


def rtp_numbers(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    offset, out = 24, []
    while offset + 16 <= len(data):
        incl = struct.unpack_from("<I", data, offset + 8)[0]
        packet = offset + 16
        rtp = packet + 14 + (data[packet + 14] & 0x0F) * 4 + 8
        out.append(struct.unpack_from(">HI", data, rtp + 2))
        offset = packet + incl
    return out


@needs_pcaps
def test_key_sequence_never_goes_backwards(tmp_path: Path) -> None:
    # Key 9's shipped pcap has higher RTP numbers than key 1's: sent as "91" Asterisk would drop the 1.
    renumbered_pcap(PCAP_DIR / KEY_PCAP["9"], tmp_path / "a.pcap", index=1)
    renumbered_pcap(PCAP_DIR / KEY_PCAP["1"], tmp_path / "b.pcap", index=2)
    first, second = rtp_numbers(tmp_path / "a.pcap"), rtp_numbers(tmp_path / "b.pcap")
    assert max(seq for seq, _ in first) < min(seq for seq, _ in second)
    assert max(ts for _, ts in first) < min(ts for _, ts in second)
    assert len({ts for _, ts in second}) == 1  # one event keeps one timestamp
    payload_before = (PCAP_DIR / KEY_PCAP["1"]).read_bytes()
    assert len(payload_before) == len((tmp_path / "b.pcap").read_bytes())


@needs_pcaps
def test_scenario_is_well_formed_sipp_xml(tmp_path: Path) -> None:
    xml = scenario(
        tmp_path,
        "+79221110505",
        "79161110003",
        "dial-x",
        "12,#",
        first_wait=1,
        gap_ms=300,
        wait=2,
        sip_port=5060,
    )
    root = ET.fromstring(xml)
    labels = [el.get("id") for el in root.iter("label")]
    assert len(labels) == len(set(labels))  # sipp refuses duplicate labels
    jumps = {el.get("ontimeout") for el in root.iter("recv")} | {el.get("next") for el in root.iter("recv")}
    assert jumps - {None} <= set(labels)
    assert 'P-Asserted-Identity: "dial-x" <sip:79161110003@127.0.0.1>' in xml
    assert "INVITE sip:+79221110505@127.0.0.1:5060 SIP/2.0" in xml
    assert len(list(tmp_path.glob("key*.pcap"))) == 3  # 1, 2, # (the comma is a pause)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DialError):
        scenario(
            tmp_path, "0505", "79161234567", "dial-x", "1A", first_wait=1, gap_ms=300, wait=1, sip_port=5060
        )
