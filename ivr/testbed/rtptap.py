"""What reaches a UDP port on loopback, packet by packet, with the kernel's receive time: the caller's ear
for the media benchmark (scripts/bench_media.py).

The benchmark's calls all use one sipp media port; Asterisk sends each call's RTP there from the call's
own RTP port. An AF_PACKET socket on `lo` with a small BPF program (IPv4, UDP, that destination port, the
received copy only: loopback shows every packet twice) gets just those packets, each with SO_TIMESTAMPNS,
so the times do not depend on how fast this thread runs. For each packet the tap keeps (time, loud): loud
when any G.711 A-law sample of the payload is above a threshold, i.e. prompt audio rather than silence.

Needs root (CAP_NET_RAW); `unavailable()` says why not.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import threading
import time
from collections import defaultdict

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SKF_AD_PKTTYPE = -0x1000 + 4  # ancillary load: the packet's type
PACKET_OUTGOING = 4
PAYLOAD_PCMA = 8
LOUD_LEVEL = 1000  # |sample| above this (of 32767) is sound, not silence


def alaw_to_linear(code: int) -> int:
    """One G.711 A-law byte -> a 16-bit sample (the reference decoder)."""
    code ^= 0x55
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    value = (mantissa << 4) + 8
    if exponent:
        value = (value + 0x100) << (exponent - 1)
    return value if sign else -value


_LOUD = bytes(1 if abs(alaw_to_linear(b)) > LOUD_LEVEL else 0 for b in range(256))


def loud(payload: bytes) -> bool:
    """Is there sound in an A-law payload?"""
    return b"\x01" in payload.translate(_LOUD)


def bpf_udp_to(port: int) -> list[tuple[int, int, int, int]]:
    """A classic BPF program for a SOCK_DGRAM packet socket (data starts at the IP header): accept IPv4
    UDP to `port` as received, drop the rest."""
    ret_drop = 10
    return [
        (0x20, 0, 0, SKF_AD_PKTTYPE & 0xFFFFFFFF),  # 0: A = packet type
        (0x15, ret_drop - 2, 0, PACKET_OUTGOING),  # 1: the outgoing copy -> drop
        (0x30, 0, 0, 9),  # 2: A = ip[9] (protocol)
        (0x15, 0, ret_drop - 4, 17),  # 3: UDP, else drop
        (0x28, 0, 0, 6),  # 4: A = ip[6:2] (flags, fragment offset)
        (0x45, ret_drop - 6, 0, 0x1FFF),  # 5: a later fragment -> drop
        (0xB1, 0, 0, 0),  # 6: X = 4 * (ip[0] & 0xf)
        (0x48, 0, 0, 2),  # 7: A = udp destination port
        (0x15, 0, 1, port),  # 8: ours -> accept, else drop
        (0x06, 0, 0, 0xFFFF),  # 9: accept
        (0x06, 0, 0, 0),  # 10: drop
    ]


def parse(packet: bytes) -> tuple[int, int, bytes] | None:
    """(source port, RTP payload type, payload) of an IPv4/UDP/RTP packet, None if it is not RTP."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    udp = packet[ihl:]
    if len(udp) < 8 + 12:
        return None
    src = struct.unpack_from("!H", udp, 0)[0]
    rtp = udp[8:]
    if rtp[0] >> 6 != 2:
        return None
    header = 12 + 4 * (rtp[0] & 0x0F)
    return src, rtp[1] & 0x7F, rtp[header:]


def unavailable() -> str | None:
    """Why a tap cannot be opened here, or None."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    except (PermissionError, OSError) as exc:
        return f"no packet socket ({exc}); the tap needs root or CAP_NET_RAW"
    sock.close()
    return None


class RtpTap:
    """Records, per source port, the (receive time, loud) of every RTP packet sent to `port` on `lo`.
    Times are the kernel's (time.time() scale)."""

    def __init__(self, port: int, *, interface: str = "lo") -> None:
        self.port = port
        self.interface = interface
        self.packets: dict[int, list[tuple[float, bool]]] = defaultdict(list)
        self.other = 0  # packets that were not A-law RTP
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        program = bpf_udp_to(self.port)
        code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
        fprog = struct.pack("HL", len(program), ctypes.addressof(code))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)
        sock.bind((self.interface, ETH_P_IP))
        # Packets that arrived between socket() and the filter were not filtered: drain them.
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.recv(65535)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="rtp-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        space = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(2048, space)
            except TimeoutError:
                continue
            except OSError:
                return
            stamp = time.time()
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    seconds, nanos = struct.unpack("qq", raw[:16])
                    stamp = seconds + nanos / 1e9
            parsed = parse(data)
            if parsed is None or parsed[1] != PAYLOAD_PCMA:
                self.other += 1
                continue
            src, _pt, payload = parsed
            with self._lock:
                self.packets[src].append((stamp, loud(payload)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()

    def of(self, src_port: int) -> list[tuple[float, bool]]:
        with self._lock:
            return list(self.packets.get(src_port, ()))

    def clear(self) -> None:
        with self._lock:
            self.packets.clear()
            self.other = 0


def is_root() -> bool:
    return os.geteuid() == 0
