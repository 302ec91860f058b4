"""The console's small pieces: structured text edits keep the rest of the file, a line's file set names
only its own files, login throttling by address, node lookup for errors."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ivr.web.app import node_lines, problems_view
from ivr.web.checks import Problem
from ivr.web.files import FilesError, line_paths_ok
from ivr.web.security import ADDRESS_FAILURES, ADDRESS_WINDOW, LoginThrottle
from ivr.web.texts_edit import TextEditError, set_text, texts_of

SOURCE = """# a comment that must stay
welcome: Здравствуйте!
# another
menu: "Один: баланс. Два: тариф."
bye: До свидания.
"""


def test_a_text_is_replaced_where_it_stands() -> None:
    out = set_text(SOURCE, "menu", "Один - баланс.")
    assert out == SOURCE.replace('"Один: баланс. Два: тариф."', "Один - баланс.")
    assert texts_of(out) == {"welcome": "Здравствуйте!", "menu": "Один - баланс.", "bye": "До свидания."}


def test_a_new_key_is_appended_and_an_empty_text_refused() -> None:
    out = set_text(SOURCE, "new_key", "Новый текст")
    assert out.startswith(SOURCE) and texts_of(out)["new_key"] == "Новый текст"
    with pytest.raises(TextEditError):
        set_text(SOURCE, "menu", "   ")
    with pytest.raises(TextEditError):
        set_text("a: [unclosed\n", "a", "x")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80))
def test_any_text_reads_back_as_written(text: str) -> None:
    expected = " ".join(text.split("\n")).strip()
    if not expected:
        return
    out = set_text(SOURCE, "menu", text)
    assert texts_of(out)["menu"] == expected
    assert yaml.safe_load(out)["menu"] == expected
    assert texts_of(out)["welcome"] == "Здравствуйте!" and out.startswith("# a comment that must stay\n")


@pytest.mark.parametrize(
    "path",
    [
        "loyalty.yaml",
        "texts/common.ru.yaml",
        "texts/loyalty.ru.yaml",
        "../operator.yaml",
        "texts/../../etc/passwd",
        "recordings/loyalty/ru/x.wav",
        "numbers/service_numbers.yaml",
    ],
)
def test_a_line_names_only_its_own_files(path: str) -> None:
    with pytest.raises(FilesError):
        line_paths_ok("operator", {"operator.yaml": "", path: ""})


def test_a_lines_own_files_are_accepted() -> None:
    line_paths_ok(
        "operator",
        {"operator.yaml": "", "texts/operator.ru.yaml": "", "recordings/operator/en/welcome.wav": ""},
    )
    with pytest.raises(FilesError):
        line_paths_ok("operator", {"texts/operator.ru.yaml": ""})  # no tree


def test_failed_logins_from_one_address_wait_out_the_window() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(ADDRESS_FAILURES):
        assert throttle.allowed("10.0.0.1")
        throttle.failed("10.0.0.1")
    assert not throttle.allowed("10.0.0.1")
    assert throttle.allowed("10.0.0.2")  # another address is not held
    now[0] += ADDRESS_WINDOW + 1
    assert throttle.allowed("10.0.0.1")


def test_an_error_is_shown_at_the_node_that_holds_its_line() -> None:
    tree = "version: 1\nline: x\nnodes:\n  start:\n    say: [a]\n    goto: b\n  b:\n    hangup: true\n"
    assert node_lines(tree) == [(4, "start"), (7, "b")]
    view = problems_view("x", {"x.yaml": tree}, [Problem("x.yaml", 6, "unknown_target", "m")])
    assert view[0]["node"] == "start"
    view = problems_view("x", {"x.yaml": tree}, [Problem("texts/x.ru.yaml", 6, "t", "m")])
    assert view[0]["node"] == ""
