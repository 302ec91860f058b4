"""Checking a draft exactly as `ivr validate` and the server check the published files: the tree's
structure and meaning against its texts and the action catalogue, and the queues it names against the
queues the dialplan serves. Errors name the file (as a path under prompts/) and the line in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ivr.app.actions import catalog
from ivr.app.queues import queue_problems, served_queues
from ivr.trees import TreeInvalid, load_tree
from ivr.web.files import FilesError, line_paths_ok, scratch_prompts


@dataclass(frozen=True)
class Problem:
    file: str  # path under prompts/, e.g. texts/operator.ru.yaml
    lineno: int
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.file}:{self.lineno}: {self.code}: {self.message}"


def check_line(prompts: Path, line: str, files: Mapping[str, str]) -> list[Problem]:
    try:
        line_paths_ok(line, files)
    except FilesError as exc:
        return [Problem(f"{line}.yaml", 1, "files", str(exc))]
    with scratch_prompts(prompts, line, files) as root:
        try:
            tree = load_tree(root / f"{line}.yaml", catalog())
        except TreeInvalid as exc:
            # Messages may name a file of the scratch copy: name it as it is under prompts/.
            prefixes = (f"{root.resolve()}/", f"{root}/")
            return [
                Problem(_relative(root, e.file), e.lineno, e.code, _unscratch(e.message, prefixes))
                for e in exc.errors
            ]
        except OSError as exc:
            return [Problem(f"{line}.yaml", 1, "io", str(exc))]
        return [
            Problem(f"{line}.yaml", lineno, "queue", message)
            for lineno, message in queue_problems(tree, served_queues())
        ]


def _unscratch(message: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        message = message.replace(prefix, "")
    return message


def _relative(root: Path, file: str) -> str:
    try:
        return Path(file).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(file).name
