"""The media benchmark's ear: A-law loudness, RTP parsing, and a real tap on loopback (root only)."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from ivr.testbed.rtp_pcap import linear_to_alaw
from ivr.testbed.rtptap import RtpTap, alaw_to_linear, bpf_udp_to, loud, parse, unavailable


@pytest.mark.parametrize("sample", [0, 7, -7, 100, -100, 1000, -1000, 12345, -12345, 32767, -32768])
def test_alaw_decodes_what_the_encoder_made(sample: int) -> None:
    decoded = alaw_to_linear(linear_to_alaw(sample))
    assert abs(decoded - sample) <= max(16, abs(sample) // 16)


def test_silence_is_quiet_and_a_tone_is_loud() -> None:
    assert not loud(bytes([linear_to_alaw(0)]) * 160)
    assert not loud(bytes([linear_to_alaw(300), linear_to_alaw(-300)]) * 80)
    assert loud(bytes([linear_to_alaw(0)]) * 159 + bytes([linear_to_alaw(8000)]))


def rtp(seq: int, payload: bytes, pt: int = 8) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, 0x1234) + payload


def test_parse_finds_source_port_payload_type_and_payload() -> None:
    body = rtp(1, b"\xd5" * 160)
    udp = struct.pack("!HHHH", 40000, 6000, 8 + len(body), 0) + body
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\1")
    assert parse(ip + udp) == (40000, 8, b"\xd5" * 160)
    assert parse(b"\x60" + bytes(60)) is None  # IPv6


def test_the_filter_jumps_land_on_accept_and_drop() -> None:
    program = bpf_udp_to(6000)
    assert program[-2] == (0x06, 0, 0, 0xFFFF) and program[-1] == (0x06, 0, 0, 0)
    for index, (code, jt, jf, _k) in enumerate(program):
        if code & 0x07 == 0x05:  # jumps stay inside the program
            assert index + 1 + jt < len(program) and index + 1 + jf < len(program)


def test_a_tap_on_loopback_sees_each_packet_once_with_its_source() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    source = sender.getsockname()[1]
    tap = RtpTap(port)
    tap.start()
    try:
        began = time.time()
        for seq in range(5):
            sender.sendto(
                rtp(seq, bytes([linear_to_alaw(8000 if seq < 3 else 0)]) * 160), ("127.0.0.1", port)
            )
        sender.sendto(b"not rtp at all, long enough to parse......", ("127.0.0.1", port))
        sender.sendto(rtp(9, b"\xd5" * 160), ("127.0.0.1", port + 1 if port < 65535 else port - 1))
        deadline = time.monotonic() + 2.0
        while len(tap.of(source)) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = tap.of(source)
    finally:
        tap.stop()
        sender.close()
        receiver.close()
    assert [flag for _t, flag in seen] == [True, True, True, False, False]
    assert all(began - 0.5 <= t <= time.time() for t, _flag in seen)
    assert list(tap.packets) == [source]
