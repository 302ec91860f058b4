"""Digits said aloud, end to end without a phone: the Korean test line
(tests/fixtures/speech_line/kotest.yaml) asks for a member number with `spoken_digits: true`; the engine's
grammar for that question goes to the real Korean Vosk model through ivr.speech.CallRecognizer;
espeak-ng Korean digit words rendered by the prompt pipeline (TTS -> 8 kHz -> trim -> normalise) are
streamed in 20 ms chunks, and the recognised run of words goes back to the engine, which reads it as
the digits.

Vosk makes a grammar a bigram model of its phrases (recognizer.cc, UpdateGrammarFst), so the grammar of
single digit words returns whole runs of them. What this espeak-ng says for most Korean digits is not
recognised reliably by the small model at 8 kHz (40 four-digit numbers, voices ko and ko+f2: 74 to 97 % of
the words wrong); 삼 (3) and 오 (5), said one after another with short pauses as a caller reads a number
out, are heard every time, so the number here is 3553.
"""

from __future__ import annotations

import json
import wave
from typing import Any

import pytest

from ivr.config import PROJECT_ROOT, Settings
from ivr.engine.commands import Collect, Command, Play, Transfer
from ivr.engine.engine import CallState, Engine
from ivr.engine.events import CallStarted, Digits, Speech
from ivr.engine.spoken import DIGIT_WORDS
from ivr.engine.tree import Tree
from ivr.prompts.render import RenderJob, render_jobs
from ivr.speech import CallRecognizer, SpeechConfig, SpeechResult, has_word
from ivr.trees import load_tree

pytestmark = pytest.mark.speech

LINE = PROJECT_ROOT / "tests" / "fixtures" / "speech_line" / "kotest.yaml"
VOICE = "ko"  # the espeak-ng voice whose 삼 and 오 this model hears steadily (ko+f2's 오 it does not)
NUMBER = ["삼", "오", "오", "삼"]
GAP = b"\0" * 2400  # 0.15 s between the digits
LEADS = [0, 1600, 4000, 8000]  # bytes of silence before the first digit (0 to 0.5 s)
CHUNK = 320  # 20 ms at 8 kHz 16-bit: one RTP packet's worth


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each Korean digit word, and the menu phrase «회원번호» (member number), as telephone audio."""
    settings = Settings(home=tmp_path_factory.mktemp("spoken-digits"))
    texts = [*DIGIT_WORDS["ko"], "회원번호"]
    jobs = [RenderJob(f"ko/test/word{i}.wav", text, "ko", "prompt") for i, text in enumerate(texts)]
    report = render_jobs(settings, jobs, progress=False, engine="espeak", voices={"ko": VOICE})
    assert not report.failed, report.failed
    out: dict[str, bytes] = {}
    for job in jobs:
        with wave.open(str(settings.sounds / job.rel), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            out[job.text] = wav.readframes(wav.getnframes())
    return out


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree(LINE)


def said(words: dict[str, bytes], sequence: list[str]) -> bytes:
    return b"".join(words[word] + GAP for word in sequence)


def stream(rec: CallRecognizer, pcm: bytes, lead: int = 1600) -> SpeechResult:
    """A caller's turn: a little silence, the speech, then silence until the recognizer decides."""
    call_audio = b"\0" * lead + pcm + b"\0" * 16000 * 4
    for offset in range(0, len(call_audio), CHUNK):
        result = rec.feed(call_audio[offset : offset + CHUNK])
        if result is not None:
            return result
    return rec.finish()


def waiting_collect(commands: list[Command]) -> Collect:
    assert isinstance(commands[-1], Collect), commands
    return commands[-1]


def at_member_number(tree: Tree) -> tuple[Engine, CallState, list[Command]]:
    engine = Engine(tree)
    state, _ = engine.start(CallStarted("kotest", "0505", "79161234567", "ko", call_id="c1"))
    state, commands = engine.step(state, Digits("4"))
    return engine, state, commands


def test_every_korean_digit_word_is_in_the_model(model: Any) -> None:
    assert all(has_word(model, word) for word in DIGIT_WORDS["ko"])


def test_a_grammar_of_single_digit_words_returns_a_run_of_them(model: Any, words: dict[str, bytes]) -> None:
    """The raw recogniser, no wrapper: the grammar lists each digit word alone, and what comes back for a
    number said aloud is the run of words, not one of them."""
    import vosk

    grammar = json.dumps(list(DIGIT_WORDS["ko"]), ensure_ascii=False)
    recogniser = vosk.KaldiRecognizer(model, 8000, grammar)
    recogniser.AcceptWaveform(b"\0" * 1600 + said(words, NUMBER) + b"\0" * 3200)
    assert json.loads(recogniser.FinalResult())["text"].split() == NUMBER


def test_the_question_offers_the_digit_words_and_is_preceded_by_a_notice_heard_whole(tree: Tree) -> None:
    _, state, commands = at_member_number(tree)
    notice, collect = commands
    assert isinstance(notice, Play) and notice.barge_in is False
    assert [p.key for p in notice.prompts] == ["member_number_notice"]
    assert isinstance(collect, Collect) and collect.spoken_digits and not collect.secret
    assert set(DIGIT_WORDS["ko"]) <= set(collect.grammar) and state.node == "member_number"


@pytest.mark.parametrize("lead", LEADS)
def test_a_number_said_digit_by_digit_reaches_the_engine_as_its_digits(
    model: Any, words: dict[str, bytes], tree: Tree, lead: int
) -> None:
    engine, state, commands = at_member_number(tree)
    collect = waiting_collect(commands)
    rec = CallRecognizer(model, SpeechConfig(min_confidence=0.5))
    rec.start(collect.grammar, no_speech_timeout=3.0, sequence=collect.spoken_digits)
    result = stream(rec, said(words, NUMBER), lead)
    assert (result.status, result.text.split()) == ("match", NUMBER), result
    state, commands = engine.step(state, Speech(result.text, result.confidence))
    transfer = commands[-1]
    assert isinstance(transfer, Transfer), commands
    assert transfer.reason == "speech_member_number" and transfer.context["member_number"] == "3553"
    assert state.vars["member_number"] == "3553"
    # exactly as the keys would have done
    engine2, state2, _ = at_member_number(tree)
    assert engine2.step(state2, Digits("3553"))[1] == commands


def test_too_few_digits_said_is_the_same_no_match_as_too_few_keys(
    model: Any, words: dict[str, bytes], tree: Tree
) -> None:
    engine, state, commands = at_member_number(tree)
    collect = waiting_collect(commands)
    rec = CallRecognizer(model, SpeechConfig(min_confidence=0.5))
    rec.start(collect.grammar, no_speech_timeout=3.0, sequence=collect.spoken_digits)
    result = stream(rec, said(words, ["삼", "오"]))
    assert (result.status, result.text) == ("match", "삼 오"), result
    by_voice = engine.step(state, Speech(result.text, result.confidence))
    assert by_voice == engine.step(state, Digits("35"))
    assert [p.key for p in waiting_collect(by_voice[1]).prompts][:1] == ["member_number_invalid"]


def test_the_menu_phrase_takes_the_caller_to_the_question(
    model: Any, words: dict[str, bytes], tree: Tree
) -> None:
    engine = Engine(tree)
    state, commands = engine.start(CallStarted("kotest", "0505", "79161234567", "ko", call_id="c1"))
    menu = waiting_collect(commands)
    rec = CallRecognizer(model, SpeechConfig(min_confidence=0.9))
    rec.start(menu.grammar, no_speech_timeout=3.0, sequence=menu.spoken_digits)
    result = stream(rec, words["회원번호"])
    assert (result.status, result.text) == ("match", "회원번호"), result
    by_voice = engine.step(state, Speech(result.text, result.confidence))
    assert by_voice == engine.step(state, Digits("4"))
    assert by_voice[0].node == "member_number"
