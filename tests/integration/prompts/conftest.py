"""A small project home with texts for two lines; rendering uses espeak-ng (fast, always installed)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.config import Settings

TEXTS = {
    "common.ru.yaml": "goodbye: До свидания!\nerror_apology: Извините, произошла ошибка.\n",
    "common.en.yaml": "goodbye: Goodbye!\nerror_apology: Sorry, an error has occurred.\n",
    "alpha.ru.yaml": (
        "welcome: Здравствуйте! Вы позвонили в службу поддержки.\n"
        "balance: 'Ваш баланс {balance:money}. Бонусных баллов: {points:points}.'\n"
        "plan: 'Ваш тариф {plan:name}.'\n"
    ),
    "alpha.en.yaml": (
        "welcome: Hello! You have called customer support.\nbalance: 'Your balance is {balance:money}.'\n"
    ),
    "beta.ru.yaml": "welcome: Программа лояльности, здравствуйте.\n",
}


def make_home(root: Path) -> Settings:
    texts = root / "prompts" / "texts"
    texts.mkdir(parents=True)
    for name, body in TEXTS.items():
        (texts / name).write_text(body, encoding="utf-8")
    return Settings(home=root)


@pytest.fixture(scope="session")
def home_factory() -> Callable[[Path], Settings]:
    return make_home


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    if not shutil.which("espeak-ng") or not (shutil.which("sox") or shutil.which("ffmpeg")):
        pytest.skip("espeak-ng and sox/ffmpeg are needed (scripts/install_tts.sh)")
    return make_home(tmp_path)
