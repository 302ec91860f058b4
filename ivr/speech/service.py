"""Speech for a server that carries many calls: one model per language, loaded at start, and one pool of
decoding threads for every call.

    speech = SpeechService.start({"ko": model_dir}, SpeechConfig(...), workers=0)   # loads, blocking
    rec = speech.recognizer("ko")          # a CallRecognizer per call, or None: keys only in that language
    result = await speech.feed(rec, pcm)   # decoded in the pool, never on the event loop

Models load when the server starts, never during a call (a model takes 1-4 s and ~500 MB). Decoding runs
in a pool sized to the cores: Kaldi's decoding holds no Python lock (vosk calls it through cffi, which
releases the GIL), so the threads decode in parallel while the event loop stays free for the calls. Each
call feeds its own recogniser one chunk at a time (the driver awaits each feed), so a call's audio is
decoded in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ivr.speech.model import SpeechUnavailable, load_model
from ivr.speech.recognizer import CallRecognizer, SpeechConfig, SpeechResult

log = logging.getLogger(__name__)


@dataclass
class SpeechService:
    models: Mapping[str, Any]  # language -> vosk.Model
    config: SpeechConfig = field(default_factory=SpeechConfig)
    workers: int = 0
    executor: ThreadPoolExecutor | None = None
    recognizers_made: int = 0

    def __post_init__(self) -> None:
        if self.executor is None:
            count = self.workers or os.cpu_count() or 2
            self.workers = count
            self.executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix="speech")

    @classmethod
    def start(
        cls,
        directories: Mapping[str, Path | None],
        config: SpeechConfig | None = None,
        *,
        workers: int = 0,
    ) -> SpeechService:
        """Load the model of every language that has one (the same directory once); a language whose
        model is missing or broken is logged once and runs keys-only."""
        models: dict[str, Any] = {}
        for language, directory in sorted(directories.items()):
            if directory is None:
                log.warning("speech: no model for %s: calls in %s are keys-only", language, language)
                continue
            began = time.monotonic()
            try:
                models[language] = load_model(path=directory)
            except SpeechUnavailable as exc:
                log.error("speech: %s: keys-only in %s", exc, language)
                continue
            log.info("speech: %s model %s ready (%.1f s)", language, directory, time.monotonic() - began)
        return cls(models, config or SpeechConfig(), workers=workers)

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self.models)

    def recognizer(self, language: str) -> CallRecognizer | None:
        """A new recogniser for a call in `language`; None when that language has no model."""
        model = self.models.get(language)
        if model is None:
            return None
        self.recognizers_made += 1
        # No decoys by default: with the Korean model, everyday words in the grammar took real phrases
        # («포인트» heard as «어 있어요»), while a match being exactly one phrase already turns speech
        # outside the menu into no match (docs/speech.md, "Out-of-grammar speech").
        return CallRecognizer(model, self.config)

    async def run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def feed(self, recognizer: CallRecognizer, pcm: bytes) -> SpeechResult | None:
        result: SpeechResult | None = await self.run(recognizer.feed, pcm)
        return result

    async def finish(self, recognizer: CallRecognizer) -> SpeechResult:
        result: SpeechResult = await self.run(recognizer.finish)
        return result

    async def begin(self, recognizer: CallRecognizer, phrases: Iterable[str], **options: Any) -> bool:
        """Start a turn with these phrases and `CallRecognizer.start`'s options (SetGrammar builds the
        grammar's graph: CPU, so in the pool). False when the grammar is empty (nothing to recognise:
        keys only)."""
        try:
            await self.run(partial(recognizer.start, phrases, **options))
        except ValueError:
            return False
        return True

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
