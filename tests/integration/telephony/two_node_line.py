"""A two-node test line (a menu that says `welcome`, then a hang-up that says `farewell`), in a folder of
its own, rendered with espeak-ng: the set of files a publish writes, for tests of what a call hears."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ivr.app import actions
from ivr.app.bootstrap import LineApp, audio_check
from ivr.config import Settings
from ivr.engine.commands import InvokeAction
from ivr.engine.events import ActionResult
from ivr.prompts.render import MANIFEST, plan_prompts, render_jobs
from ivr.prompts.voice import PromptVoice
from ivr.trees.store import TreeStore

TREE = """\
version: "1"
line: {line}
settings:
  languages: [ru]
  default_language: ru
  start: main
  main_menu: main
  operator_queue: operators
  timeouts: {{first_digit: 2, inter_digit: 2}}
nodes:
  main:
    menu: [welcome]
    choices:
      - {{key: "1", goto: bye}}
  bye:
    hangup: [farewell]
"""
# The common texts every line needs (the queue dialog's too; no callback texts: callbacks are off).
COMMON = """\
error_apology: Ошибка.
queue_first: Соединяю.
queue_position: Перед вами есть звонки.
queue_wait: Подождите.
goodbye: До свидания.
call_time_exceeded: Время вышло.
transfer_to_operator: Оператор.
universal_keys_help: Помощь.
no_input: Не слышу.
no_match: Не поняла.
please_wait: Подождите.
"""


def write_texts(settings: Settings, line: str, texts: Mapping[str, str]) -> None:
    body = "".join(f"{key}: {text}\n" for key, text in texts.items())
    (settings.prompts / "texts" / f"{line}.ru.yaml").write_text(body, encoding="utf-8")


def render_line(settings: Settings, line: str) -> None:
    """What publishing does after writing the files: render the line's changed prompts."""
    voice = PromptVoice(settings)
    report = render_jobs(settings, plan_prompts(voice, [line], ["ru"]), engine="espeak", progress=False)
    assert not report.failed, report.failed


def two_node_line(tmp_path: Path, line: str, texts: Mapping[str, str]) -> Settings:
    """Settings of a home under `tmp_path` whose only line is `line` with `texts`, rendered."""
    if not shutil.which("espeak-ng") or not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and sox/ffmpeg are needed (scripts/install_tts.sh)")
    settings = Settings(home=tmp_path, callbacks=False)
    (settings.prompts / "texts").mkdir(parents=True)
    (settings.prompts / "numbers").mkdir()
    (settings.prompts / f"{line}.yaml").write_text(TREE.format(line=line), encoding="utf-8")
    (settings.prompts / "texts" / "common.ru.yaml").write_text(COMMON, encoding="utf-8")
    (settings.prompts / "numbers" / "service_numbers.yaml").write_text(
        f"lines:\n  {line}: {{step_up: never}}\n"
        f'numbers:\n  - {{number: "0505", line: {line}, trust: true}}\n',
        encoding="utf-8",
    )
    write_texts(settings, line, texts)
    render_line(settings, line)
    return settings


async def no_action(command: InvokeAction, variables: Mapping[str, Any]) -> ActionResult:
    raise AssertionError("the test line runs no action")


def serving_app(settings: Settings, line: str) -> LineApp:
    """`build_app(settings, serving=True)` without the database (the test line runs no action) and with
    reloads when the test says, not from a watcher thread."""
    voice = PromptVoice(settings)
    trees = TreeStore(
        settings.prompts,
        actions.catalog(),
        poll_seconds=None,
        accept=audio_check(settings, voice),
        also_watch=(settings.sounds / MANIFEST,),
    )
    line_app = LineApp(settings=settings, trees=trees, voice=voice)
    line_app.invoker_for = lambda call: no_action
    line_app.reload_changed()
    assert trees.lines() == [line], trees.errors
    return line_app
