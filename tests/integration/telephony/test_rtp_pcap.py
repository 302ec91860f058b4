"""wav_to_pcap: the RTP pcap sipp plays as the caller's voice (A-law, 20 ms packets, one stream)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from ivr.testbed.rtp_pcap import encode_alaw, linear_to_alaw, wav_to_pcap


def test_alaw_reference_points() -> None:
    assert linear_to_alaw(0) == 0xD5
    assert linear_to_alaw(-1) == 0x55
    assert linear_to_alaw(32767) == 0xAA
    assert linear_to_alaw(-32768) == 0x2A
    assert encode_alaw(struct.pack("<hh", 0, 32767)) == b"\xd5\xaa"


def packets(pcap: Path) -> list[bytes]:
    data = pcap.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    assert struct.unpack_from("<I", data, 20)[0] == 1  # Ethernet
    out, offset = [], 24
    while offset < len(data):
        incl = struct.unpack_from("<I", data, offset + 8)[0]
        out.append(data[offset + 16 : offset + 16 + incl])
        offset += 16 + incl
    return out


def test_a_wav_becomes_one_rtp_stream(tmp_path: Path) -> None:
    wav_path = tmp_path / "a.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 800)  # 0.1 s
    seconds = wav_to_pcap(wav_path, tmp_path / "a.pcap", lead_silence=0.1, tail_silence=0.1, repeat=2)
    assert seconds == pytest.approx(0.6)
    frames = packets(tmp_path / "a.pcap")
    assert len(frames) == 30
    seqs, stamps = [], []
    for frame in frames:
        assert frame[12:14] == b"\x08\x00"
        rtp = frame[14 + 20 + 8 :]
        assert rtp[0] == 0x80 and rtp[1] == 8  # RTP v2, PCMA
        seq, stamp = struct.unpack_from("!HI", rtp, 2)
        seqs.append(seq)
        stamps.append(stamp)
        assert rtp[12:] == b"\xd5" * 160
    assert seqs == list(range(30))  # the repeat continues the stream: nothing for Asterisk to drop
    assert stamps == [n * 160 for n in range(30)]


def test_only_telephone_wavs(tmp_path: Path) -> None:
    wav_path = tmp_path / "hi.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * 10)
    with pytest.raises(ValueError):
        wav_to_pcap(wav_path, tmp_path / "hi.pcap")
