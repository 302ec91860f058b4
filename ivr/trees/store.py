"""`TreeStore`: the trees in service. It keeps the last good tree of every line and reloads changed files."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from ivr.engine.actions import ActionCatalog
from ivr.engine.tree import Tree
from ivr.trees.errors import TreeError, TreeInvalid
from ivr.trees.loader import load_tree

log = logging.getLogger(__name__)


class TreeStore:
    """The last good tree of every line under `prompts_dir`. Thread-safe.

    `get(line)` is cheap; when `poll_seconds` has passed since the last look it compares file mtimes and
    reloads changed lines. `reload()` does the same at once (the FastAGI server calls it on SIGHUP). An
    invalid new version is logged and ignored: the old one keeps serving. A call keeps the `Tree` object
    it started with, so a reload never changes a call in progress.
    """

    def __init__(
        self,
        prompts_dir: str | Path,
        catalog: ActionCatalog | None = None,
        *,
        poll_seconds: float = 2.0,
        clock: Any = None,
    ) -> None:
        self.dir = Path(prompts_dir)
        self.catalog = catalog
        self.poll_seconds = poll_seconds
        self._clock = clock or time.monotonic
        self._lock = threading.RLock()
        self._trees: dict[str, Tree] = {}
        self._signatures: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self.errors: dict[str, list[TreeError]] = {}
        self._last_poll = float("-inf")

    def lines(self) -> list[str]:
        with self._lock:
            return sorted(self._trees)

    def _signature(self, line: str) -> tuple[tuple[str, int, int], ...]:
        texts = self.dir / "texts"
        files = [
            self.dir / f"{line}.yaml",
            *sorted(texts.glob(f"{line}.*.yaml")),
            *sorted(texts.glob("common.*.yaml")),
        ]
        out = []
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload(self) -> dict[str, list[TreeError]]:
        """Re-read every changed line; return the errors of lines whose new version was refused."""
        refused: dict[str, list[TreeError]] = {}
        with self._lock:
            self._last_poll = self._clock()
            for path in sorted(self.dir.glob("*.yaml")):
                line = path.stem
                sig = self._signature(line)
                if self._signatures.get(line) == sig:
                    continue
                self._signatures[line] = sig
                try:
                    tree = load_tree(path, self.catalog)
                except TreeInvalid as exc:
                    refused[line] = exc.errors
                    self.errors[line] = exc.errors
                    kept = self._trees.get(line)
                    log.warning(
                        "tree %s refused (%d errors, first: %s); %s",
                        path,
                        len(exc.errors),
                        exc.errors[0],
                        f"keeping version {kept.version}" if kept else "line has no good version",
                    )
                    continue
                except OSError as exc:
                    log.warning("tree %s unreadable: %s", path, exc)
                    continue
                old = self._trees.get(line)
                self._trees[line] = tree
                self.errors.pop(line, None)
                log.info(
                    "tree %s version %s loaded%s", line, tree.version, f" (was {old.version})" if old else ""
                )
        return refused

    def get(self, line: str) -> Tree:
        """The current good tree of `line`; KeyError if the line never had a valid tree."""
        with self._lock:
            if self._clock() - self._last_poll >= self.poll_seconds:
                self.reload()
            return self._trees[line]
