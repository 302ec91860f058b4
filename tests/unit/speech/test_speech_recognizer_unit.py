"""Grammar JSON, endpointing and confidence rules of ivr.speech with a fake Kaldi recognizer (no model).

The fake hears "words" in the audio itself: a chunk of zero bytes is silence, a chunk filled with byte k
is the caller saying word k. Its partial text is the words heard so far; FinalResult gives them with the
confidence configured for each word.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from ivr.speech import CallRecognizer, SpeechConfig, confidence_of, grammar_json, grammar_phrases

pytestmark = pytest.mark.speech

CHUNK = 1600  # 0.1 s of 8 kHz 16-bit audio


class FakeModel:
    def __init__(self, vocabulary: set[str]) -> None:
        self.vocabulary = vocabulary

    def vosk_model_find_word(self, word: str) -> int:
        return 1 if word in self.vocabulary else -1


class FakeKaldi:
    def __init__(self, words: dict[int, tuple[str, float]], grammar: str) -> None:
        self.words = words
        self.grammars = [grammar]
        self.heard: list[str] = []
        self.confs: list[float] = []
        self.running = False
        self.final_on: int | None = None  # byte value that makes Vosk report its own endpoint
        self.calls: list[str] = []
        self.thread_ids: set[int] = set()

    def SetWords(self, words: bool) -> None:
        self.calls.append(f"SetWords({words})")

    def SetGrammar(self, grammar: str) -> None:
        if self.running:  # as Kaldi: a fatal error on a recognizer mid-utterance
            raise AssertionError("SetGrammar on a running recognizer")
        self.calls.append("SetGrammar")
        self.grammars.append(grammar)

    def Reset(self) -> None:
        self.calls.append("Reset")
        self.heard, self.confs, self.running = [], [], False

    def AcceptWaveform(self, data: bytes) -> int:
        self.thread_ids.add(threading.get_ident())
        self.running = True
        value = data[0]
        if value and (not self.heard or self.heard[-1] != self.words[value][0]):
            word, conf = self.words[value]
            self.heard.append(word)
            self.confs.append(conf)
        return 1 if self.final_on is not None and value == self.final_on else 0

    def _result(self) -> str:
        text = " ".join(self.heard)
        result = [{"word": w, "conf": c} for w, c in zip(self.heard, self.confs, strict=True)]
        self.heard, self.confs = [], []
        return json.dumps({"text": text, "result": result}, ensure_ascii=False)

    def Result(self) -> str:
        return self._result()

    def PartialResult(self) -> str:
        return json.dumps({"partial": " ".join(self.heard)}, ensure_ascii=False)

    def FinalResult(self) -> str:
        self.running = False
        return self._result()


WORDS = {1: ("баланс", 0.95), 2: ("оператор", 0.9), 3: ("тариф", 0.3), 4: ("[unk]", 1.0), 5: ("погода", 0.99)}


def make(vocabulary: set[str] | None = None, **config: Any) -> tuple[CallRecognizer, list[FakeKaldi]]:
    made: list[FakeKaldi] = []

    def factory(model: Any, rate: int, grammar: str) -> FakeKaldi:
        assert rate == 8000
        made.append(FakeKaldi(WORDS, grammar))
        return made[-1]

    rec = CallRecognizer(FakeModel(vocabulary or set()), SpeechConfig(**config), factory=factory)
    return rec, made


def say(rec: CallRecognizer, *chunks: int) -> Any:
    """Feed 0.1 s chunks (0: silence, k: word k); the first decided result, or None."""
    for value in chunks:
        result = rec.feed(bytes([value]) * CHUNK)
        if result is not None:
            return result
    return None


# ---- grammar JSON -------------------------------------------------------------------------------------


def test_grammar_json_keeps_cyrillic_unescaped() -> None:
    text = grammar_json(["Баланс", "оператор"], with_unk=False)
    assert "баланс" in text and "\\u" not in text
    assert json.loads(text) == ["баланс", "оператор"]


def test_grammar_phrases_normalise_and_drop_duplicates() -> None:
    assert grammar_phrases(["  Баланс! ", "баланс", "", "Новый   тариф", "[unk]"], with_unk=False) == [
        "баланс",
        "новый тариф",
    ]


def test_unk_is_appended_only_when_asked_and_only_to_a_real_grammar() -> None:
    assert json.loads(grammar_json(["да"], with_unk=True)) == ["да", "[unk]"]
    assert json.loads(grammar_json(["да"], with_unk=False)) == ["да"]
    assert json.loads(grammar_json([], with_unk=True)) == []


def test_unk_goes_into_the_grammar_only_when_the_model_knows_it() -> None:
    with_unk, made = make({"[unk]"})
    with_unk.start(["баланс"])
    assert json.loads(made[0].grammars[0]) == ["баланс", "[unk]"]
    without, made = make(set())
    without.start(["баланс"])
    assert json.loads(made[0].grammars[0]) == ["баланс"]


def test_one_kaldi_recognizer_per_call_reset_before_each_new_grammar() -> None:
    rec, made = make()
    rec.start(["баланс"])
    say(rec, 1, 1)  # mid-utterance when the next turn starts
    rec.start(["оператор", "тариф"])
    assert len(made) == 1
    assert json.loads(made[0].grammars[-1]) == ["оператор", "тариф"]
    assert made[0].calls[:2] == ["SetWords(True)", "Reset"]
    assert made[0].calls[2:] == ["Reset", "SetGrammar", "Reset"]


def test_an_empty_grammar_is_refused() -> None:
    rec, _ = make()
    with pytest.raises(ValueError):
        rec.start(["", "  "])


def test_feeding_before_start_is_an_error() -> None:
    rec, _ = make()
    with pytest.raises(RuntimeError):
        rec.feed(b"\0" * CHUNK)


# ---- endpointing --------------------------------------------------------------------------------------


def test_trailing_silence_ends_the_utterance() -> None:
    rec, _ = make(end_silence=0.5)
    rec.start(["баланс", "оператор"])
    # the partial "баланс" appears at 0.3 s and then stays the same: 0.4 s later, not yet
    assert say(rec, 0, 0, 1, 0, 0, 0, 0) is None
    result = say(rec, 0)
    assert (result.status, result.text, result.reason) == ("match", "баланс", "end_silence")
    assert result.confidence == pytest.approx(0.95)
    assert result.audio_seconds == pytest.approx(0.8)


def test_vosk_endpoint_with_text_ends_at_once() -> None:
    rec, made = make()
    rec.start(["оператор"])
    made[0].final_on = 2
    result = say(rec, 0, 2)
    assert (result.status, result.text, result.reason) == ("match", "оператор", "vosk_final")


def test_max_utterance_cuts_endless_speech() -> None:
    rec, _ = make(max_utterance=1.0, end_silence=5.0)
    rec.start(["баланс", "оператор"])
    # the partial keeps changing (word 1, word 2, word 1, ...): never silent
    result = say(rec, *([1, 2] * 20))
    assert result is not None
    assert result.reason == "max_utterance"
    assert result.audio_seconds == pytest.approx(1.1)


def test_no_speech_gives_noinput_after_the_timeout() -> None:
    rec, _ = make()
    rec.start(["баланс"], no_speech_timeout=2.0)
    assert say(rec, *([0] * 19)) is None
    result = say(rec, 0)
    assert (result.status, result.reason) == ("noinput", "no_speech")


def test_finish_before_anything_was_said_is_noinput() -> None:
    rec, _ = make()
    rec.start(["баланс"])
    say(rec, 0, 0)
    assert rec.finish().status == "noinput"


def test_finish_mid_word_decides_with_what_was_heard() -> None:
    rec, _ = make()
    rec.start(["баланс"])
    say(rec, 0, 1)
    result = rec.finish()
    assert (result.status, result.text, result.reason) == ("match", "баланс", "finish")


def test_the_decided_result_sticks_until_the_next_turn() -> None:
    rec, _ = make(end_silence=0.2)
    rec.start(["баланс", "оператор"])
    first = say(rec, 1, 0, 0)
    assert say(rec, 2, 0, 0) is first
    assert rec.finish() is first
    rec.start(["оператор"])
    assert say(rec, 2, 0, 0).text == "оператор"


# ---- confidence ---------------------------------------------------------------------------------------


def test_confidence_is_the_lowest_word_confidence() -> None:
    result = {"text": "a b", "result": [{"word": "a", "conf": 0.9}, {"word": "b", "conf": 0.4}]}
    assert confidence_of(result) == pytest.approx(0.4)
    assert confidence_of({"text": "a"}) == 1.0
    assert confidence_of({"text": ""}) == 0.0


def test_below_min_confidence_is_no_match() -> None:
    rec, _ = make(min_confidence=0.5, end_silence=0.2)
    rec.start(["тариф"])
    result = say(rec, 3, 0, 0)
    assert (result.status, result.text) == ("nomatch", "тариф")
    assert result.confidence == pytest.approx(0.3)
    assert not result.matched


def test_min_confidence_is_configurable() -> None:
    rec, _ = make(min_confidence=0.2, end_silence=0.2)
    rec.start(["тариф"])
    assert say(rec, 3, 0, 0).matched


def test_unk_is_no_match() -> None:
    rec, _ = make({"[unk]"}, end_silence=0.2)
    rec.start(["баланс"])
    assert say(rec, 4, 0, 0).status == "nomatch"


def test_a_decoy_phrase_is_no_match() -> None:
    rec, made = make(end_silence=0.2)
    rec.start(["баланс"], decoys=["погода", "баланс"])  # a menu phrase is never a decoy
    assert json.loads(made[0].grammars[0]) == ["баланс", "погода"]
    assert say(rec, 5, 0, 0).status == "nomatch"
    rec.start(["баланс"], decoys=["погода", "баланс"])
    assert say(rec, 1, 0, 0).status == "match"


def test_async_feeding_runs_in_a_worker_thread() -> None:
    rec, made = make(end_silence=0.2)
    rec.start(["баланс"])

    async def run() -> Any:
        for value in (1, 0, 0):
            result = await rec.feed_async(bytes([value]) * CHUNK)
            if result is not None:
                return result
        return await rec.finish_async()

    assert asyncio.run(run()).text == "баланс"
    assert threading.get_ident() not in made[0].thread_ids
