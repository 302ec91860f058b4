"""PromptVoice: lookup order, text and file lists, caching, reload, names, vocabulary coverage."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.config import Settings
from ivr.engine.commands import PromptRef
from ivr.prompts import wording_en, wording_ru
from ivr.prompts.voice import (
    KINDS,
    PIECE_FILE,
    NameToken,
    PromptNotFound,
    PromptVoice,
    asterisk_name,
    name_slug,
    parse_template,
    piece_file,
    say,
    say_text,
    slug,
    text_hash,
    vocabulary,
)
from ivr.trees.texts import load_texts


def write_texts(home: Path, files: dict[str, str]) -> Settings:
    texts = home / "prompts" / "texts"
    texts.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (texts / name).write_text(body, encoding="utf-8")
    return Settings(home=home)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return write_texts(
        tmp_path,
        {
            "common.ru.yaml": "goodbye: До свидания!\nerror_apology: Извините, ошибка.\n",
            "common.en.yaml": "goodbye: Goodbye!\n",
            "demo.ru.yaml": (
                "balance: 'Ваш баланс {balance:money}. Баллов: {points:points}.'\n"
                "hello: Здравствуйте!\n"
                "plan: 'Ваш тариф {plan:name}, плата {fee:money} до {until:date}.'\n"
                "goodbye: Всего доброго!\n"
                "only_ru: Только по-русски.\n"
                "value_first: '{n:number} — это число.'\n"
            ),
            "demo.en.yaml": "balance: 'Your balance is {balance:money}.'\nhello: Hello!\n",
        },
    )


@pytest.fixture
def voice(settings: Settings) -> PromptVoice:
    return PromptVoice(settings)


def unhashed(path: Path) -> str:
    """A file name without the text hash of a static piece: "balance.0.<h>.wav" -> "balance.0.wav"."""
    match = PIECE_FILE.match(path.name)
    return f"{match.group('stem')}.wav" if match else path.name


def test_static_prompt_is_one_file(voice: PromptVoice, settings: Settings) -> None:
    ref = PromptRef("hello")
    assert voice.text("demo", "ru", ref) == "Здравствуйте!"
    assert voice.files("demo", "ru", ref) == [
        settings.sounds.resolve() / "ru" / "demo" / f"hello.{text_hash('Здравствуйте!')}.wav"
    ]


def test_line_text_wins_over_common(voice: PromptVoice, settings: Settings) -> None:
    assert voice.text("demo", "ru", PromptRef("goodbye")) == "Всего доброго!"
    assert voice.files("demo", "ru", PromptRef("goodbye"))[0].parent.name == "demo"


def test_common_texts_fill_in(voice: PromptVoice, settings: Settings) -> None:
    assert voice.text("demo", "en", PromptRef("goodbye")) == "Goodbye!"
    assert voice.files("demo", "en", PromptRef("goodbye")) == [
        settings.sounds.resolve() / "en" / "common" / piece_file("goodbye", "Goodbye!")
    ]
    assert voice.text("other_line", "ru", PromptRef("error_apology")) == "Извините, ошибка."


def test_falls_back_to_default_language(voice: PromptVoice, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert voice.text("demo", "en", PromptRef("only_ru")) == "Только по-русски."
    assert voice.files("demo", "en", PromptRef("only_ru"))[0].parts[-3:] == (
        "ru",
        "demo",
        piece_file("only_ru", "Только по-русски."),
    )
    assert "no en text" in caplog.text


def test_missing_key_raises_clear_keyerror(voice: PromptVoice) -> None:
    with pytest.raises(PromptNotFound) as info:
        voice.text("demo", "en", PromptRef("no_such_prompt"))
    assert isinstance(info.value, KeyError)
    assert "no_such_prompt" in str(info.value) and "demo" in str(info.value)
    with pytest.raises(KeyError):
        voice.files("demo", "ru", PromptRef("no_such_prompt"))


def test_dynamic_prompt_text_and_files(voice: PromptVoice, settings: Settings) -> None:
    ref = PromptRef("balance", {"balance": Decimal("-21.02"), "points": 5})
    assert (
        voice.text("demo", "ru", ref)
        == "Ваш баланс минус двадцать один рубль две копейки. Баллов: пять баллов."
    )
    files = voice.files("demo", "ru", ref)
    assert files[0].name == piece_file("balance.0", "Ваш баланс")
    assert files[7].name == piece_file("balance.1", ". Баллов:")
    assert [unhashed(p) for p in files] == [
        "balance.0.wav",
        "minus.wav",
        "dvadtsat.wav",
        "odin.wav",
        "rubl.wav",
        "dve.wav",
        "kopejki.wav",
        "balance.1.wav",
        "pyat.wav",
        "ballov.wav",
    ]
    words_dir = settings.sounds.resolve() / "ru" / "words"
    assert all(p.parent == words_dir for p in voice.files("demo", "ru", ref)[1:7])
    en = voice.text("demo", "en", PromptRef("balance", {"balance": Decimal("1.01")}))
    assert en == "Your balance is one rouble one kopeck."


def test_placeholder_first_numbers_static_from_zero(voice: PromptVoice) -> None:
    files = voice.files("demo", "ru", PromptRef("value_first", {"n": 3}))
    assert [unhashed(p) for p in files] == ["tri.wav", "value_first.0.wav"]


def test_names_missing_audio_are_skipped_with_warning(
    voice: PromptVoice, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ref = PromptRef("plan", {"plan": "Безлимит+", "fee": Decimal(300), "until": "2026-12-25"})
    assert (
        voice.text("demo", "ru", ref)
        == "Ваш тариф Безлимит+, плата триста рублей до двадцать пятого декабря."
    )
    with caplog.at_level(logging.WARNING):
        files = voice.files("demo", "ru", ref)
    assert [unhashed(p) for p in files] == [
        "plan.0.wav",
        "plan.1.wav",
        "trista.wav",
        "rublej.wav",
        "plan.2.wav",
        "dvadtsat.wav",
        "pyatogo.wav",
        "dekabrya.wav",
    ]
    assert "no audio for name" in caplog.text
    # Once the name is rendered, it is played.
    name_file = settings.sounds.resolve() / "ru" / "words" / f"{name_slug('Безлимит+')}.wav"
    name_file.parent.mkdir(parents=True, exist_ok=True)
    name_file.write_bytes(b"RIFF")
    assert voice.files("demo", "ru", ref)[1] == name_file


def test_missing_value_is_skipped_not_fatal(voice: PromptVoice, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        text = voice.text("demo", "ru", PromptRef("balance", {"points": 1}))
    assert text == "Ваш баланс. Баллов: один балл."
    assert "no value for {balance}" in caplog.text


def test_unsayable_value_is_skipped(voice: PromptVoice, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        files = voice.files("demo", "ru", PromptRef("balance", {"balance": "abc", "points": 1}))
    assert [unhashed(p) for p in files] == ["balance.0.wav", "balance.1.wav", "odin.wav", "ball.wav"]
    assert "cannot say" in caplog.text


def test_reload_picks_up_edits(voice: PromptVoice, settings: Settings) -> None:
    assert voice.text("demo", "ru", PromptRef("hello")) == "Здравствуйте!"
    path = settings.prompts / "texts" / "demo.ru.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("Здравствуйте!", "Добрый день!"), encoding="utf-8"
    )
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))  # a different mtime, whatever the file system's resolution
    assert voice.reload_if_changed() is True
    assert voice.text("demo", "ru", PromptRef("hello")) == "Добрый день!"
    assert voice.reload_if_changed() is False


def _edit(settings: Settings, name: str, old: str, new: str) -> None:
    path = settings.prompts / "texts" / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_view_keeps_the_texts_and_files_of_its_set(voice: PromptVoice, settings: Settings) -> None:
    """A call speaks the set it started with: after an edit (and the reload that takes it) the old set's
    view still says the old text and names the old text's files; the new set's view the new ones."""
    texts = settings.prompts / "texts"
    hello, balance = PromptRef("hello"), PromptRef("balance", {"balance": 1, "points": 2})
    old = voice.for_texts(load_texts(texts, "demo"))
    old_files = old.files("demo", "ru", hello) + old.files("demo", "ru", balance)

    _edit(settings, "demo.ru.yaml", "Здравствуйте!", "Добрый день!")
    _edit(settings, "demo.ru.yaml", "Ваш баланс {balance:money}", "На счёте {balance:money}")
    catalog = load_texts(texts, "demo")
    new = voice.for_texts(catalog)
    voice.use_texts(catalog)  # what the server does at reload

    assert voice.for_texts(catalog) is new  # one view per set: a call pays a dict lookup
    assert old.text("demo", "ru", hello) == "Здравствуйте!"
    assert new.text("demo", "ru", hello) == voice.text("demo", "ru", hello) == "Добрый день!"
    assert old.text("demo", "ru", balance).startswith("Ваш баланс один рубль.")
    assert new.text("demo", "ru", balance).startswith("На счёте один рубль.")
    assert old.files("demo", "ru", hello) + old.files("demo", "ru", balance) == old_files
    assert old_files[0].name == piece_file("hello", "Здравствуйте!")
    assert new.files("demo", "ru", hello)[0].name == piece_file("hello", "Добрый день!")
    assert old.files("demo", "ru", balance)[0].name == piece_file("balance.0", "Ваш баланс")
    assert new.files("demo", "ru", balance)[0].name == piece_file("balance.0", "На счёте")
    # The unchanged piece and the value words are the same files in both versions.
    assert old.files("demo", "ru", balance)[1:] == new.files("demo", "ru", balance)[1:]
    assert old.stream_names("demo", "ru", hello) != new.stream_names("demo", "ru", hello)
    assert old.has("demo", "ru", "hello") and not old.has("demo", "ru", "no_such_prompt")


def test_a_view_falls_back_to_the_voice_for_a_key_its_set_lacks(
    voice: PromptVoice, settings: Settings
) -> None:
    view = voice.for_texts(load_texts(settings.prompts / "texts", "demo", ["ru"]))
    with (settings.prompts / "texts" / "common.ru.yaml").open("a", encoding="utf-8") as fh:
        fh.write("queue_place: Вы в очереди.\n")
    voice.reload()
    assert view.text("demo", "ru", PromptRef("queue_place")) == "Вы в очереди."
    assert view.raw_text("common", "ru", "queue_place") is None  # the set's own texts stay as they were
    with pytest.raises(PromptNotFound):
        view.files("demo", "ru", PromptRef("no_such_prompt"))


def test_stream_names_are_absolute_without_extension(voice: PromptVoice) -> None:
    names = voice.stream_names("demo", "ru", PromptRef("balance", {"balance": 1, "points": 1}))
    assert names[0].endswith(f"/ru/demo/balance.0.{text_hash('Ваш баланс')}")
    assert all(os.path.isabs(n) and not n.endswith(".wav") for n in names)
    assert asterisk_name(Path("/x/y/a.1.wav")) == "/x/y/a.1"


def test_lines_and_languages(voice: PromptVoice) -> None:
    assert voice.lines() == ["demo"]
    assert voice.languages("demo") == ["en", "ru"]


def test_parse_template_skips_punctuation_only_pieces() -> None:
    template = parse_template("k", "Итого: {a:money}.", "ru", "demo")
    assert template.static_pieces() == [("k.0", "Итого:")]
    assert parse_template("k", "{a:money}", "ru", "demo").static_pieces() == []
    assert parse_template("k", "Привет", "ru", "demo").static_pieces() == [("k", "Привет")]


# ----- say() dispatch --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "kind", "value", "expected"),
    [
        ("ru", "money", Decimal("123.45"), "сто двадцать три рубля сорок пять копеек"),
        ("ru", "points", 21, "двадцать один балл"),
        ("ru", "points", "1500", "одна тысяча пятьсот баллов"),
        ("ru", "minutes", 22, "двадцать две минуты"),
        ("ru", "sms", 1, "одно сообщение"),
        ("ru", "megabytes", 2048, "два гигабайта"),
        ("ru", "gigabytes", 3, "три гигабайта"),
        ("ru", "days", 5, "пять дней"),
        ("ru", "number", 42, "сорок два"),
        ("ru", "date", dt.date(2026, 12, 25), "двадцать пятого декабря"),
        ("ru", "date", dt.datetime(2026, 3, 8, 10, 0), "восьмого марта"),
        ("ru", "date", "2026-05-01", "первого мая"),
        (
            "ru",
            "phone",
            "79221110505",
            "плюс семь, девятьсот двадцать два, сто одиннадцать, ноль пять, ноль пять",
        ),
        ("ru", "digits", "4021", "четыре ноль два один"),
        ("ru", "name", "Семейный", "Семейный"),
        ("en", "money", Decimal(1), "one rouble"),
        ("en", "points", 2, "two points"),
        ("en", "date", "2026-12-25", "December twenty-fifth"),
    ],
)
def test_say(lang: str, kind: str, value: object, expected: str) -> None:
    assert say_text(lang, kind, value) == expected


def test_say_rejects_unknown_kind_and_language() -> None:
    with pytest.raises(ValueError, match="unknown placeholder kind"):
        say("ru", "furlongs", 1)
    with pytest.raises(ValueError, match="no wording"):
        say("de", "money", 1)


def test_name_token_is_one_fragment() -> None:
    words = say("ru", "name", "  Тариф «Всё»  ")
    assert words == ("Тариф «Всё»",) and isinstance(words[0], NameToken)
    assert name_slug("Тариф «Всё»").startswith("name-tarif")
    assert name_slug("a") != name_slug("b")


# ----- vocabulary: every token any value can produce has a file name, and no two share one -------------


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_slugs_unique_and_safe(lang: str) -> None:
    words = vocabulary(lang)
    slugs = {slug(w) for w in words}
    assert len(slugs) == len(words)
    assert all(s and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in s) for s in slugs)


def _assert_in_vocabulary(lang: str, kind: str, value: object) -> None:
    vocab = vocabulary(lang)
    missing = [w for w in say(lang, kind, value) if w not in vocab]
    assert not missing, f"{lang} {kind} {value!r}: {missing}"


@given(st.integers(min_value=-999_999_999_999, max_value=999_999_999_999))
def test_every_number_word_is_in_vocabulary(n: int) -> None:
    for lang in ("ru", "en"):
        for kind in ("number", "points", "minutes", "sms", "days", "megabytes"):
            _assert_in_vocabulary(lang, kind, n)


@given(st.decimals(min_value=Decimal("-999999999.99"), max_value=Decimal("999999999.99"), places=2))
def test_every_money_word_is_in_vocabulary(amount: Decimal) -> None:
    _assert_in_vocabulary("ru", "money", amount)
    _assert_in_vocabulary("en", "money", amount)


@given(st.dates())
def test_every_date_word_is_in_vocabulary(day: dt.date) -> None:
    _assert_in_vocabulary("ru", "date", day)
    _assert_in_vocabulary("en", "date", day)


@given(st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_every_phone_and_digit_word_is_in_vocabulary(digits: str) -> None:
    for lang in ("ru", "en"):
        _assert_in_vocabulary(lang, "phone", digits)
        _assert_in_vocabulary(lang, "digits", digits)


def test_kinds_cover_the_contract() -> None:
    contract = {
        "money",
        "points",
        "minutes",
        "sms",
        "megabytes",
        "days",
        "number",
        "date",
        "phone",
        "digits",
        "name",
    }
    assert contract <= set(KINDS)


def test_wording_modules_share_an_interface() -> None:
    for name in ("number", "money", "count", "megabytes", "date", "digits", "phone", "vocabulary", "join"):
        assert callable(getattr(wording_ru, name)) and callable(getattr(wording_en, name))
