"""Turn a WAV file (8 kHz 16-bit mono) into an RTP pcap that sipp's `play_pcap_audio` sends as the
caller's voice: G.711 A-law (payload type 8, what `ivr dial` offers), 160 samples per packet, 20 ms apart.
sipp rewrites addresses and ports; the pcap's own are placeholders on loopback.

A-law is encoded here (ITU-T G.711) rather than with `audioop`, which is deprecated and leaves Python in 3.13.
"""

from __future__ import annotations

import array
import struct
import sys
import wave
from pathlib import Path

SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
PAYLOAD_PCMA = 8
_SEG_END = (0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF)


def linear_to_alaw(sample: int) -> int:
    """One 16-bit signed sample -> one A-law byte (G.711, as in the reference implementation)."""
    pcm = sample >> 3  # 13-bit magnitude
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = 0
    while seg < 8 and pcm > (_SEG_END[seg] >> 3):
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


_ALAW = bytes(linear_to_alaw(s) for s in range(-32768, 32768))


def encode_alaw(pcm: bytes) -> bytes:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(_ALAW[s + 32768] for s in samples)


def _checksum(header: bytes) -> int:
    total = int(sum(struct.unpack(f"!{len(header) // 2}H", header)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def wav_to_pcap(
    wav_path: Path, pcap_path: Path, *, lead_silence: float = 0.0, tail_silence: float = 0.0, repeat: int = 1
) -> float:
    """Write the pcap (the audio `repeat` times in a row, each with its silences); returns its length in
    seconds. One pcap, one RTP stream: playing a pcap twice sends the same sequence numbers and timestamps
    again, and Asterisk drops the second copy as old packets."""
    with wave.open(str(wav_path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (8000, 1, 2):
            raise ValueError(f"{wav_path}: need 8 kHz 16-bit mono")
        pcm = wav.readframes(wav.getnframes())
    pcm = (b"\0\0" * int(lead_silence * 8000) + pcm + b"\0\0" * int(tail_silence * 8000)) * max(1, repeat)
    alaw = encode_alaw(pcm)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet link type
    ssrc = 0x1D5A7E51
    for n, offset in enumerate(range(0, len(alaw), SAMPLES_PER_PACKET)):
        payload = alaw[offset : offset + SAMPLES_PER_PACKET].ljust(SAMPLES_PER_PACKET, b"\xd5")
        rtp = struct.pack(
            "!BBHII", 0x80, PAYLOAD_PCMA, n & 0xFFFF, (n * SAMPLES_PER_PACKET) & 0xFFFFFFFF, ssrc
        )
        udp_len = 8 + len(rtp) + len(payload)
        udp = struct.pack("!HHHH", 6000, 6000, udp_len, 0)
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, n & 0xFFFF, 0, 64, 17, 0,
                                   bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])))  # fmt: skip
        struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
        frame = b"\0" * 12 + b"\x08\x00" + bytes(ip) + udp + rtp + payload
        micros = n * 20000
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame))
        out += frame
    pcap_path.write_bytes(bytes(out))
    return len(pcm) / 2 / 8000
