"""`ivr dial`: a scripted caller. Generates a sipp UAC scenario per call (INVITE with the caller's number
in P-Asserted-Identity, RFC 2833 DTMF from sipp's shipped pcaps, BYE), runs sipp, and reports what AMI saw:
channel variables, the operator stand-in's UserEvents, the hang-up cause.

Keys: digits, `*`, `#`; `,` waits one extra second. Keys are sent while prompts play (barge-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import socket
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import Settings
from ivr.telephony.ami import CallRecord, CallWatcher

log = logging.getLogger(__name__)

PCAP_DIR = Path("/usr/share/sip-tester")
KEY_PCAP = {
    **{d: f"dtmf_2833_{d}.pcap" for d in "0123456789"},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}


class DialError(RuntimeError):
    pass


@dataclass
class DialResult:
    number: str
    caller: str
    keys: str
    sipp_exit: int
    seconds: float
    record: CallRecord | None = None
    sipp_errors: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def variables(self) -> dict[str, str]:
        return dict(self.record.variables) if self.record else {}

    @property
    def user_events(self) -> list[dict[str, str]]:
        return list(self.record.user_events) if self.record else []

    @property
    def hangup_cause(self) -> int | None:
        return self.record.hangup_cause if self.record else None

    def describe(self) -> str:
        lines = [
            f"call {self.caller or 'withheld'} -> {self.number} keys={self.keys or '-'}: "
            f"sipp exit {self.sipp_exit}, {self.seconds:.1f} s",
        ]
        if self.record is None:
            lines.append("  AMI: the call was not seen")
        else:
            lines.append(f"  channel {self.record.uniqueid} exten {self.record.exten}")
            for name, value in self.record.variable_history:
                lines.append(f"  set {name}={value}")
            for event in self.record.user_events:
                lines.append(
                    f"  UserEvent {event.get('UserEvent', '')}: "
                    + ", ".join(
                        f"{k}={v}"
                        for k, v in event.items()
                        if k not in ("Event", "Privilege", "UserEvent", "content")
                    )
                )
            lines.append(f"  hangup cause {self.record.hangup_cause} ({self.record.hangup_text})")
        if self.sipp_errors:
            lines.append("  sipp: " + self.sipp_errors.strip().replace("\n", "\n  sipp: "))
        return "\n".join(lines)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_media_ports_given: set[int] = set()


def free_media_port() -> int:
    """A base port for sipp's media: sipp binds it and the next three (RTCP, video RTP/RTCP), so all four
    must be free; ports handed to calls still running in this process are not reused."""
    for _ in range(200):
        base = random.randrange(40000, 60000, 4)
        if base in _media_ports_given:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        _media_ports_given.add(base)
        return base
    raise DialError("no free media ports")


def renumbered_pcap(source: Path, target: Path, *, index: int) -> None:
    """Copy one of sipp's RFC 2833 key pcaps with RTP sequence numbers and timestamps moved forward by
    `index` steps. The shipped pcaps each carry fixed numbers (key 1's are lower than key 9's); Asterisk
    drops an event whose numbers go backwards, so a key sequence such as "91" would lose the 1."""
    data = bytearray(source.read_bytes())
    magic = bytes(data[:4])
    if len(data) < 24 or magic not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        raise DialError(f"{source} is not a pcap file")
    endian = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
    offset = 24
    while offset + 16 <= len(data):
        incl = struct.unpack_from(f"{endian}I", data, offset + 8)[0]
        packet = offset + 16
        ihl = (data[packet + 14] & 0x0F) * 4  # Ethernet header, then IPv4
        rtp = packet + 14 + ihl + 8
        seq, _stamp = struct.unpack_from(">HI", data, rtp + 2)
        struct.pack_into(">HI", data, rtp + 2, (index * 32 + seq % 32) & 0xFFFF, (index * 8000) & 0xFFFFFFFF)
        offset = packet + incl
    target.write_bytes(bytes(data))


def pause_step(ms: int, label: str) -> str:
    """A pause that still answers Asterisk's BYE: wait for one, move on when none comes in time."""
    return (
        f'  <recv request="BYE" timeout="{max(1, ms)}" ontimeout="{label}" next="theirbye"/>\n'
        f'  <label id="{label}"/>'
    )


def _key_steps(
    keys: str,
    first_wait: float,
    gap_ms: int,
    wait: float,
    pcaps: Path,
    speech: tuple[tuple[Path, int], ...] = (),
) -> str:
    steps = [pause_step(int(first_wait * 1000), "k0")]
    for n, (pcap, after_ms) in enumerate(speech):  # RTP pcaps of the caller's voice (ivr.testbed.rtp_pcap)
        steps.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        steps.append(pause_step(after_ms, f"s{n}"))
    for n, key in enumerate(keys, start=1):
        if key == ",":
            steps.append(pause_step(1000, f"k{n}"))
            continue
        if key not in KEY_PCAP:
            raise DialError(f"cannot send key {key!r}")
        pcap = pcaps / f"key{n:03d}.pcap"
        renumbered_pcap(PCAP_DIR / KEY_PCAP[key], pcap, index=n)
        steps.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        steps.append(pause_step(gap_ms, f"k{n}"))
    steps.append(pause_step(int(wait * 1000), "ourbye"))
    return "\n".join(steps)


def scenario(
    pcaps: Path,
    number: str,
    caller: str,
    token: str,
    keys: str,
    *,
    first_wait: float,
    gap_ms: int,
    wait: float,
    sip_port: int,
    speech: tuple[tuple[Path, int], ...] = (),
) -> str:
    """A UAC scenario: INVITE, ACK (to a static Request-URI), keys, then either Asterisk hangs up (we
    answer its BYE, whenever it comes) or we hang up after `wait` seconds."""
    pai = (
        f'P-Asserted-Identity: "{token}" <sip:{caller}@127.0.0.1>'
        if caller
        else (f'P-Asserted-Identity: "{token}" <sip:anonymous@anonymous.invalid>\n      Privacy: id')
    )
    return uac_scenario(
        f"ivr dial {number}",
        f"sip:{number}@127.0.0.1:{sip_port}",
        identity=pai,
        dtmf_payload=101,
        steps=_key_steps(keys, first_wait, gap_ms, wait, pcaps, speech),
    )


TESTER = '"tester" <sip:tester@[local_ip]:[local_port]>'


def ok_to_their_bye(user: str) -> str:
    """The scenario step that answers the line's BYE (after a `theirbye` label)."""
    return f"""  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>"""


def sdp_offer(dtmf_payload: int, user: str = "tester") -> str:
    """The SDP a scripted caller offers (A-law, and RFC 2833 keys on `dtmf_payload`), indented for the
    CDATA of a sipp scenario."""
    return f"""      v=0
      o={user} 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 {dtmf_payload}
      a=rtpmap:8 PCMA/8000
      a=rtpmap:{dtmf_payload} telephone-event/8000
      a=fmtp:{dtmf_payload} 0-15
      a=sendrecv"""


def uac_scenario(
    name: str, ruri: str, *, identity: str, dtmf_payload: int, steps: str, sender: str = TESTER
) -> str:
    """The one sipp UAC call both drivers place (this dialer and ivr.testbed.loadgen): INVITE from
    `sender` with the `identity` header lines (P-Asserted-Identity, or none), an SDP offering A-law and
    telephone-event on `dtmf_payload`, ACK, the `steps`, then our BYE, or a 200 OK to the line's BYE
    (the steps jump to the label "theirbye" when it comes)."""
    head = f"""      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {sender};tag=[pid]SIPpTag00[call_number]"""
    identity_line = f"\n      {identity}" if identity else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{name}">
  <send retrans="500">
    <![CDATA[
      INVITE {ruri} SIP/2.0
{head}
      To: <{ruri}>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:tester@[local_ip]:[local_port]>{identity_line}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{sdp_offer(dtmf_payload)}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK {ruri} SIP/2.0
{head}
      To: <{ruri}>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:tester@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{steps}
  <send retrans="500">
    <![CDATA[
      BYE {ruri} SIP/2.0
{head}
      To: <{ruri}>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:tester@[local_ip]:[local_port]>
      Reason: Q.850;cause=16;text="Normal call clearing"
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" next="end"/>
  <label id="theirbye"/>
{ok_to_their_bye("tester")}
  <label id="end"/>
</scenario>
"""


def sipp_binary() -> str | None:
    return shutil.which("sipp")


async def run_sipp(
    scenario_xml: str, settings: Settings, *, timeout: float, workdir: Path, extra_args: tuple[str, ...] = ()
) -> tuple[int, str]:
    """Run one sipp call; returns (exit code, error text). sipp exits 0 only if the call succeeded."""
    binary = sipp_binary()
    if binary is None:
        raise DialError("sipp is not installed (Debian package sip-tester; scripts/setup.sh installs it)")
    media_port = free_media_port()
    path = workdir / "call.xml"
    path.write_text(scenario_xml, encoding="ascii")
    errors = workdir / "errors.log"
    argv = [
        binary,
        f"{settings.sip_host}:{settings.sip_port}",
        "-sf", str(path), "-m", "1", "-l", "1",
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(media_port),
        "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-trace_err", "-error_file", str(errors), "-nostdin", *extra_args,
    ]  # fmt: skip
    try:
        code, text = await sipp_process(argv, workdir, deadline=timeout + 10, error_log=errors, tail=2000)
    finally:
        _media_ports_given.discard(media_port)
    return (0, "") if code == 0 else (code, text)


async def sipp_process(
    argv: list[str], workdir: Path, *, deadline: float, error_log: Path, tail: int
) -> tuple[int, str]:
    """Run sipp (`argv`) in `workdir` until it exits or `deadline` seconds pass (then it is killed and the
    code is -1). Returns the exit code and what sipp said: its stderr, then the last `tail` characters of
    its error log. Used by the dialer (one call) and the load generator (every call)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), deadline)
        code = int(proc.returncode or 0)
        text = err.decode(errors="replace")
    except TimeoutError:
        proc.kill()
        await proc.wait()
        code, text = -1, "sipp did not finish in time\n"
    if error_log.exists():
        text += error_log.read_text(errors="replace")[-tail:]
    return code, text


async def dial(
    settings: Settings,
    number: str,
    *,
    caller: str,
    keys: str = "",
    first_wait: float = 2.0,
    gap_ms: int = 400,
    wait: float = 2.0,
    timeout: float = 120.0,
    watcher: CallWatcher | None = None,
    speech: tuple[tuple[Path, int], ...] = (),
) -> DialResult:
    """Place one call and report what happened. With a shared `watcher` (tests), AMI is not reconnected.
    `speech`: (RTP pcap, milliseconds to wait after starting it) played after `first_wait`, before keys."""
    token = f"dial-{uuid.uuid4().hex[:12]}"
    own_watcher = watcher is None
    if watcher is None:
        watcher = CallWatcher(settings)
        await watcher.connect()
    seen = watcher.expect(token)
    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-dial-") as tmp:
            workdir = Path(tmp)
            xml = scenario(
                workdir,
                number,
                caller,
                token,
                keys,
                first_wait=first_wait,
                gap_ms=gap_ms,
                wait=wait,
                sip_port=settings.sip_port,
                speech=speech,
            )
            code, errors = await run_sipp(xml, settings, timeout=timeout, workdir=workdir)
        record: CallRecord | None = None
        with contextlib.suppress(TimeoutError):
            record = await asyncio.wait_for(asyncio.shield(seen), 2.0)
        if record is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(record.ended.wait(), 10.0)
        seen.cancel()
        return DialResult(
            number=number,
            caller=caller,
            keys=keys,
            sipp_exit=code,
            seconds=time.monotonic() - began,
            record=record,
            sipp_errors=errors,
        )
    finally:
        if own_watcher:
            await watcher.close()
