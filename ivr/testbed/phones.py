"""Scripted phones that answer: an operator's softphone registered as an agent (pjsip.conf agent1/agent2),
and a caller's phone behind the carrier trunk that a callback rings. Both are sipp processes.

An agent is two sipp runs on the same local port, one after the other: the first REGISTERs (with digest
authentication) and exits, the second answers calls at the registered contact. sipp cannot take a call
with a new Call-ID inside a client scenario, hence the two runs. Every SIP message is logged
(`-trace_msg`), so a test can read the headers the agent's INVITE carried.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import Settings
from ivr.testbed.dialer import DialError, free_media_port, free_udp_port, sipp_binary, sipp_process

REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port]>
Expires: {expires}
Max-Forwards: 70
User-Agent: ivr-test-agent
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port]>
[authentication]
Expires: {expires}
Max-Forwards: 70
User-Agent: ivr-test-agent
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

# Answers a call; then either waits for the other side's BYE, or (hang_up_ms) sends its own after a while.
ANSWER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer">
  <recv request="INVITE" crlf="true">{capture}</recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15

]]></send>
  <recv request="ACK" rtd="true" crlf="true"/>
{ending}
</scenario>
"""

# While talking, Asterisk may send a re-INVITE (a connected-line update): answered with the same SDP.
REINVITE = """  <label id="reinvite"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15

]]></send>
  <recv request="ACK" next="talk"/>"""

WAIT_FOR_BYE = (
    """  <label id="talk"/>
  <recv request="INVITE" optional="true" next="reinvite"/>
  <recv request="BYE" next="bye"/>
"""
    + REINVITE
    + """
  <label id="bye"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>"""
)

# What hanging up needs from the INVITE (sipp refuses variables that are set and never used).
CAPTURE = """
    <action>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="contact"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>
    </action>
  """

HANG_UP = (
    """  <label id="talk"/>
  <recv request="INVITE" optional="true" timeout="{hang_up_ms}" ontimeout="mine" next="reinvite"/>
  <recv request="BYE" next="theirs"/>
"""
    + REINVITE
    + """
  <label id="mine"/>
  <send retrans="500"><![CDATA[
BYE [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$local_to];tag=[pid]SIPpTag01[call_number]
To:[$remote_from]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" next="done"/>
  <label id="theirs"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="done"/>"""
)


@dataclass
class AnsweringPhone:
    """A sipp process answering `calls` calls at `address`:`port`; `messages` is its SIP message log."""

    address: str
    port: int
    workdir: Path
    task: asyncio.Task[tuple[int, str]] | None = None
    messages_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.messages_file = self.workdir / "messages.log"

    def invites(self) -> list[str]:
        """The INVITE requests this phone received, whole (headers and body)."""
        if not self.messages_file.exists():
            return []
        text = self.messages_file.read_text(errors="replace")
        found = []
        for chunk in re.split(r"^-{5,}[^\n]*\n", text, flags=re.MULTILINE):
            # "UDP message received [n] bytes :", a blank line, then the message itself
            message = re.sub(r"\A\s*\w+ message (received|sent)[^\n]*\n", "", chunk).strip()
            if message.startswith("INVITE "):
                found.append(message)
        return found

    async def finished(self, timeout: float) -> tuple[int, str]:
        """sipp's exit code and what it said, once it ends (or -1 after `timeout` seconds)."""
        assert self.task is not None
        return await asyncio.wait_for(asyncio.shield(self.task), timeout)


async def register(
    settings: Settings, user: str, password: str, *, port: int, workdir: Path, expires: int = 600
) -> None:
    """REGISTER `user` from 127.0.0.1:`port` (the contact the answering run then listens on); expires=0
    takes the registration back (the agent logs out)."""
    binary = _sipp()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "register.xml"
    path.write_text(REGISTER_XML.format(user=user, expires=expires), encoding="ascii")
    errors = workdir / "register-errors.log"
    argv = [
        binary, f"{settings.sip_host}:{settings.sip_port}", "-sf", str(path), "-m", "1",
        "-i", "127.0.0.1", "-p", str(port), "-au", user, "-ap", password,
        "-timeout", "15s", "-timeout_error", "-trace_err", "-error_file", str(errors), "-nostdin",
    ]  # fmt: skip
    code, said = await sipp_process(argv, workdir, deadline=25.0, error_log=errors, tail=2000)
    if code != 0:
        raise DialError(f"{user} could not register (sipp exit {code}): {said[-800:]}")


def answer(
    settings: Settings,
    *,
    user: str,
    workdir: Path,
    address: str = "127.0.0.1",
    port: int | None = None,
    calls: int = 1,
    ring_ms: int = 500,
    hang_up_ms: int | None = None,
    timeout: float = 90.0,
) -> AnsweringPhone:
    """Start answering (in the background, on the running loop): `calls` calls, each ringing `ring_ms`,
    then either waiting for the caller's BYE or hanging up itself after `hang_up_ms`."""
    binary = _sipp()
    workdir.mkdir(parents=True, exist_ok=True)
    phone = AnsweringPhone(address=address, port=port or free_udp_port(address), workdir=workdir)
    ending = (
        HANG_UP.format(hang_up_ms=hang_up_ms, user=user)
        if hang_up_ms is not None
        else WAIT_FOR_BYE.format(user=user)
    )
    path = workdir / "answer.xml"
    capture = CAPTURE if hang_up_ms is not None else ""
    path.write_text(
        ANSWER_XML.format(user=user, ring_ms=ring_ms, ending=ending, capture=capture), encoding="ascii"
    )
    errors = workdir / "answer-errors.log"
    argv = [
        binary, f"{settings.sip_host}:{settings.sip_port}", "-sf", str(path), "-m", str(calls),
        "-i", address, "-p", str(phone.port), "-mi", address, "-mp", str(free_media_port()),
        "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err", "-error_file", str(errors),
        "-trace_msg", "-message_file", str(phone.messages_file), "-nostdin",
    ]  # fmt: skip
    phone.task = asyncio.get_running_loop().create_task(
        sipp_process(argv, workdir, deadline=timeout + 10, error_log=errors, tail=2000)
    )
    return phone


def _sipp() -> str:
    binary = sipp_binary()
    if binary is None:
        raise DialError("sipp is not installed (Debian package sip-tester; scripts/setup.sh installs it)")
    return binary
