"""The AudioSocket driver without Asterisk: the frame codec, the server's hand-over by UUID (a fake Asterisk
over real loopback TCP), and the paced sender driven by a fake clock."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.telephony.audiosocket import (
    FRAME_BYTES,
    HANGUP_FRAME,
    SILENCE_FRAME,
    Audio,
    AudioSocketConnection,
    AudioSocketError,
    AudioSocketServer,
    Dtmf,
    Frame,
    FrameDecoder,
    Kind,
    PacedSender,
    application_args,
    audio_frame,
    encode_frame,
    event_of,
    parse_uuid,
    split_frames,
    wav_pcm,
)

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


# ---- the codec ---------------------------------------------------------------------------------------


def test_a_frame_is_kind_big_endian_length_payload() -> None:
    assert encode_frame(Kind.DTMF, b"5") == b"\x03\x00\x015"
    assert audio_frame(b"\x01\x02" * 160)[:3] == b"\x10\x01\x40"  # 320 bytes
    assert HANGUP_FRAME == b"\x00\x00\x00"
    assert encode_frame(Kind.UUID, CALL.bytes) == b"\x01\x00\x10" + CALL.bytes


def test_oversized_payloads_and_kinds_that_are_not_a_byte_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_frame(Kind.AUDIO, b"\0" * 0x10000)
    with pytest.raises(ValueError):
        encode_frame(0x100)


frames_strategy = st.lists(
    st.tuples(st.sampled_from([0x00, 0x01, 0x03, 0x10, 0xFF]), st.binary(max_size=700)), max_size=12
)


@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=0, max_value=9000), max_size=10))
def test_the_decoder_gives_the_same_frames_however_tcp_cuts_the_stream(
    frames: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(kind, payload) for kind, payload in frames)
    decoder = FrameDecoder()
    out: list[Frame] = []
    start = 0
    for cut in sorted({c for c in cuts if c < len(stream)}):
        out += decoder.feed(stream[start:cut])
        start = cut
    out += decoder.feed(stream[start:])
    assert [(f.kind, f.payload) for f in out] == frames
    assert decoder.pending == 0


def test_an_incomplete_frame_waits_for_the_rest() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x10\x01") == []
    assert decoder.feed(b"\x40" + b"\0" * 100) == []
    assert decoder.pending == 103
    assert decoder.feed(b"\0" * 220) == [Frame(Kind.AUDIO, b"\0" * 320)]


def test_events_audio_keys_and_the_end() -> None:
    assert event_of(Frame(Kind.AUDIO, b"ab")) == Audio(b"ab")
    assert event_of(Frame(Kind.DTMF, b"#")) == Dtmf("#")
    assert event_of(Frame(Kind.HANGUP)) is None


@pytest.mark.parametrize(
    "frame",
    [
        Frame(Kind.ERROR, b"\x02"),  # Asterisk's "frame forwarding error"
        Frame(Kind.ERROR),
        Frame(0x12, b"\0" * 640),  # 16 kHz audio: the application never sends it
        Frame(Kind.UUID, CALL.bytes),  # a second UUID
        Frame(Kind.DTMF, b"12"),
    ],
)
def test_frames_a_call_never_sends_are_errors(frame: Frame) -> None:
    with pytest.raises(AudioSocketError):
        event_of(frame)


def test_the_first_frame_must_be_the_uuid() -> None:
    assert parse_uuid(Frame(Kind.UUID, CALL.bytes)) == CALL
    with pytest.raises(AudioSocketError):
        parse_uuid(Frame(Kind.AUDIO, b"\0" * 16))
    with pytest.raises(AudioSocketError):
        parse_uuid(Frame(Kind.UUID, b"short"))


def test_pcm_is_cut_into_20_ms_frames_and_the_last_is_padded() -> None:
    frames = split_frames(b"\x01" * (FRAME_BYTES * 2 + 10))
    assert [len(f) for f in frames] == [FRAME_BYTES] * 3
    assert frames[2] == b"\x01" * 10 + b"\0" * (FRAME_BYTES - 10)
    assert split_frames(b"") == []


def test_application_args_name_the_call_and_the_server() -> None:
    assert application_args(CALL, "127.0.0.1", 9019) == f"{CALL},127.0.0.1:9019"
    with pytest.raises(ValueError):
        application_args("not-a-uuid", "127.0.0.1", 9019)


def _wav(path: Path, rate: int, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def test_wav_pcm_takes_telephone_audio_only(tmp_path: Path) -> None:
    pcm = struct.pack("<4h", 1, -1, 300, -300)
    assert wav_pcm(_wav(tmp_path / "a.wav", 8000, pcm)) == pcm
    with pytest.raises(ValueError, match="8 kHz"):
        wav_pcm(_wav(tmp_path / "b.wav", 16000, pcm))


# ---- the server, with a fake Asterisk over loopback TCP -----------------------------------------------


class FakeAsterisk:
    """What app_audiosocket does on the wire: connect, send the UUID, then frames; read what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()

    @classmethod
    async def connect(cls, port: int, call: uuid.UUID | None = CALL) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fake = cls(reader, writer)
        if call is not None:
            fake.send(Kind.UUID, call.bytes)
        return fake

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.writer.write(encode_frame(kind, payload))

    async def frames(self, timeout: float = 2.0) -> list[Frame]:
        """Everything until the server closes the socket."""
        out: list[Frame] = []
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(4096):
                out += self.decoder.feed(data)
        return out

    def close(self) -> None:
        self.writer.close()


def test_a_connection_reaches_the_call_that_expects_its_uuid() -> None:
    async def main() -> tuple[list[object], list[Frame], int]:
        server = AudioSocketServer(keepalive=None)
        _host, port = await server.start()
        waiting = server.expect(str(CALL))
        asterisk = await FakeAsterisk.connect(port)
        # UUID, audio and a key in one write: the frames after the UUID are not lost
        asterisk.send(Kind.AUDIO, b"\x01\x00" * 160)
        asterisk.send(Kind.DTMF, b"7")
        asterisk.send(Kind.AUDIO, b"\x02\x00" * 160)
        conn = await asyncio.wait_for(waiting, 2.0)
        assert conn.uuid == CALL
        events = [await conn.read() for _ in range(3)]
        assert conn.send_audio(SILENCE_FRAME)
        await conn.end()
        received = await asterisk.frames()
        asterisk.close()
        await server.close()
        return events, received, conn.frames_in

    events, received, frames_in = asyncio.run(main())
    assert events == [Audio(b"\x01\x00" * 160), Dtmf("7"), Audio(b"\x02\x00" * 160)]
    assert frames_in == 2
    # audio, then the hang-up frame that ends the application gracefully: nothing else, ever
    assert received == [Frame(Kind.AUDIO, SILENCE_FRAME), Frame(Kind.HANGUP)]


def test_the_stream_ends_when_asterisk_closes_it_or_sends_a_hangup() -> None:
    async def main() -> tuple[list[object], list[object]]:
        server = AudioSocketServer(keepalive=None)
        _host, port = await server.start()
        ends = []
        for how in ("close", "hangup"):
            call = uuid.uuid4()
            waiting = server.expect(call)
            asterisk = await FakeAsterisk.connect(port, call)
            asterisk.send(Kind.DTMF, b"1")
            if how == "hangup":
                asterisk.send(Kind.HANGUP)
                asterisk.send(Kind.DTMF, b"9")  # after the end: never read
            else:
                await asterisk.writer.drain()
                asterisk.close()
            conn = await asyncio.wait_for(waiting, 2.0)
            ends.append([event async for event in conn])
            assert conn.closed
            await conn.end()
            if how == "hangup":
                asterisk.close()
        await server.close()
        return ends[0], ends[1]

    closed, hung_up = asyncio.run(main())
    assert closed == [Dtmf("1")]
    assert hung_up == [Dtmf("1")]


def test_an_error_frame_from_asterisk_is_raised_to_the_reader() -> None:
    async def main() -> None:
        server = AudioSocketServer(keepalive=None)
        _host, port = await server.start()
        waiting = server.expect(CALL)
        asterisk = await FakeAsterisk.connect(port)
        asterisk.send(Kind.ERROR, b"\x04")
        conn = await asyncio.wait_for(waiting, 2.0)
        with pytest.raises(AudioSocketError, match="0x04"):
            await conn.read()
        await conn.end()
        asterisk.close()
        await server.close()

    asyncio.run(main())


def test_a_call_nobody_expects_is_ended_and_garbage_is_refused() -> None:
    async def main() -> tuple[list[Frame], list[Frame], int, int]:
        server = AudioSocketServer(keepalive=None, uuid_timeout=0.5)
        _host, port = await server.start()
        stranger = await FakeAsterisk.connect(port, uuid.uuid4())
        ended = await stranger.frames()
        garbage = await FakeAsterisk.connect(port, None)
        garbage.send(Kind.AUDIO, b"\0" * 320)  # audio before any UUID
        refused = await garbage.frames()
        silent = await FakeAsterisk.connect(port, None)  # says nothing: dropped after uuid_timeout
        began = time.monotonic()
        assert await silent.frames() == []
        assert time.monotonic() - began < 2.0
        for fake in (stranger, garbage, silent):
            fake.close()
        await server.close()
        return ended, refused, server.refused, server.accepted

    ended, refused, refused_count, accepted = asyncio.run(main())
    assert ended == [Frame(Kind.HANGUP)]  # the application returns; the call goes on
    assert refused == []
    assert (refused_count, accepted) == (3, 0)


def test_a_handler_takes_connections_nobody_expects() -> None:
    async def main() -> list[object]:
        seen: list[object] = []

        async def handler(conn: AudioSocketConnection) -> None:
            seen.append(conn.uuid)
            seen.append(await conn.read())

        server = AudioSocketServer(handler=handler, keepalive=None)
        _host, port = await server.start()
        asterisk = await FakeAsterisk.connect(port)
        asterisk.send(Kind.DTMF, b"*")
        assert await asterisk.frames() == [Frame(Kind.HANGUP)]  # ended when the handler returns
        asterisk.close()
        await server.close()
        return seen

    assert asyncio.run(main()) == [CALL, Dtmf("*")]


def test_accept_waits_for_the_call_and_gives_up_in_time() -> None:
    async def main() -> None:
        server = AudioSocketServer(keepalive=None)
        _host, port = await server.start()
        with pytest.raises(TimeoutError):
            await server.accept(CALL, 0.1)
        accepting = asyncio.ensure_future(server.accept(CALL, 2.0))
        await asyncio.sleep(0.05)
        asterisk = await FakeAsterisk.connect(port)
        conn = await accepting
        assert conn.uuid == CALL
        await conn.end()
        asterisk.close()
        await server.close()

    asyncio.run(main())


def test_keepalive_sends_silence_when_nothing_else_was_sent() -> None:
    async def main() -> list[Frame]:
        server = AudioSocketServer(keepalive=0.1)
        _host, port = await server.start()
        waiting = server.expect(CALL)
        asterisk = await FakeAsterisk.connect(port)
        conn = await asyncio.wait_for(waiting, 2.0)
        await asyncio.sleep(0.35)
        await conn.end()
        frames = await asterisk.frames()
        asterisk.close()
        await server.close()
        return frames

    frames = asyncio.run(main())
    assert frames[-1] == Frame(Kind.HANGUP)
    assert 2 <= len(frames[:-1]) <= 4
    assert set(frames[:-1]) == {Frame(Kind.AUDIO, SILENCE_FRAME)}


# ---- pacing ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, bytes]] = []
        self.closed = False

    def send_audio(self, pcm: bytes) -> bool:
        if self.closed:
            return False
        self.sent.append((self.clock.now, pcm))
        return True


async def _never(_seconds: float) -> None:
    await asyncio.Event().wait()


def _prompt(frames: int) -> bytes:
    return b"".join(bytes([n % 250 + 1]) * FRAME_BYTES for n in range(frames))


def test_frames_leave_in_real_time_after_the_lead() -> None:
    async def main() -> None:
        clock = Clock()
        pacer = PacedSender(lead=2, clock=clock, sleep=_never)
        sink = Sink(clock)
        done = pacer.play(sink, _prompt(10))
        assert len(sink.sent) == 3  # the lead (2) and the frame due now go out at once
        for step in range(1, 10):
            clock.now = 1000.0 + step * 0.020
            pacer.tick(clock.now)
            assert len(sink.sent) == min(10, 3 + step)
        assert not done.done()  # all sent 40 ms ahead, but not yet heard
        clock.now = 1000.0 + 0.200
        pacer.tick(clock.now)
        result = await done
        assert result.complete and result.sent == result.frames == 10
        assert result.ended - result.started == pytest.approx(0.200)
        assert [pcm for _t, pcm in sink.sent] == split_frames(_prompt(10))
        await pacer.close()

    asyncio.run(main())


def test_stop_sends_nothing_more_and_says_what_was_still_unheard() -> None:
    async def main() -> None:
        clock = Clock()
        pacer = PacedSender(lead=2, clock=clock, sleep=_never)
        sink = Sink(clock)
        done = pacer.play(sink, _prompt(50))
        for step in range(1, 6):
            clock.now = 1000.0 + step * 0.020
            pacer.tick(clock.now)
        clock.now += 0.005
        result = pacer.stop(sink)
        assert result is not None and result.stopped
        sent = len(sink.sent)
        assert sent == 8  # 5 frames' time has passed, 2 more of lead, and the one due at the start
        for step in range(6, 20):
            clock.now = 1000.0 + step * 0.020
            pacer.tick(clock.now)
        assert len(sink.sent) == sent
        assert (await done).stopped
        # 8 frames sent (160 ms), 105 ms of them played: 55 ms were already on their way to the caller
        assert result.unplayed_ms == pytest.approx(55.0)
        assert pacer.stop(sink) is None and not pacer.is_playing(sink)
        await pacer.close()

    asyncio.run(main())


def test_a_late_clock_moves_the_prompt_instead_of_bursting_it() -> None:
    async def main() -> None:
        clock = Clock()
        pacer = PacedSender(lead=1, max_burst=3, clock=clock, sleep=_never)
        sink = Sink(clock)
        done = pacer.play(sink, _prompt(40))
        assert len(sink.sent) == 2
        clock.now += 0.300  # the loop was stuck for 300 ms: 15 frames' time
        pacer.tick(clock.now)
        assert len(sink.sent) == 5  # at most 3 at once
        assert pacer.stats.reanchored == 1
        for _ in range(100):
            clock.now += 0.020
            if not pacer.tick(clock.now):
                break
        result = await done
        assert result.complete and result.sent == 40
        # heard to the end, 240 ms later than planned (the 12 frames the clock moved), never faster
        assert result.ended - result.started == pytest.approx(0.800 + 0.240, abs=0.021)
        await pacer.close()

    asyncio.run(main())


def test_a_sink_that_closes_ends_its_prompt_and_playing_anew_replaces_the_old_prompt() -> None:
    async def main() -> None:
        clock = Clock()
        pacer = PacedSender(lead=0, clock=clock, sleep=_never)
        gone, other = Sink(clock), Sink(clock)
        first = pacer.play(gone, _prompt(20))
        second = pacer.play(other, _prompt(20))
        replaced = pacer.play(other, _prompt(3))
        gone.closed = True
        clock.now += 0.020
        assert pacer.tick(clock.now) == 1
        assert (await first).stopped and (await second).stopped
        for _ in range(5):
            clock.now += 0.020
            pacer.tick(clock.now)
        assert (await replaced).complete
        assert pacer.playing == 0
        await pacer.close()

    asyncio.run(main())


def test_many_calls_share_one_clock_in_real_time() -> None:
    """A real event loop: 20 calls, 0.3 s prompts; they end on time and the loop woke about 50 times a
    second, not 50 times per call."""

    async def main() -> tuple[list[float], int]:
        pacer = PacedSender(lead=2)
        sinks = [Sink(Clock()) for _ in range(20)]
        began = time.monotonic()
        results = await asyncio.gather(*(pacer.play(sink, _prompt(15)) for sink in sinks))
        took = time.monotonic() - began
        assert all(r.complete and r.sent == 15 for r in results)
        await pacer.close()
        return [took], pacer.stats.ticks

    (took,), ticks = asyncio.run(main())
    assert 0.28 <= took <= 0.6
    assert ticks <= 40
