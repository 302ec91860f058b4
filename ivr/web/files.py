"""A line's files as the console versions them: path under prompts/ -> text (recordings as base64).

    operator.yaml                       the tree
    texts/operator.ru.yaml              its texts, one file per language
    recordings/operator/ru/<key>.wav    a recording made by a person, used instead of synthesis

The common texts (texts/common.*.yaml), the service-number table and the other lines are not part of a
line's version: a scratch copy of prompts/ (`scratch_prompts`) puts a draft beside them for checking,
trying and rendering, exactly as the files would be laid out once published."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ivr.trees.store import PUBLISHING_MARK  # the server leaves the files alone while it exists

LINE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TEXT_FILE = re.compile(r"texts/([a-z][a-z0-9_]*)\.([a-z]{2})\.yaml")
_RECORDING = re.compile(r"recordings/([a-z][a-z0-9_]*)/([a-z]{2})/([a-z][a-z0-9_]*)\.wav")


class FilesError(ValueError):
    pass


def line_paths_ok(line: str, files: Mapping[str, str]) -> None:
    """Refuse a file set that names anything but this line's own files (no path tricks, no common texts)."""
    if not LINE_NAME.fullmatch(line):
        raise FilesError(f"not a line name: {line!r}")
    if f"{line}.yaml" not in files:
        raise FilesError(f"the tree {line}.yaml is missing")
    for path in files:
        if path == f"{line}.yaml":
            continue
        text = _TEXT_FILE.fullmatch(path)
        if text and text.group(1) == line:
            continue
        rec = _RECORDING.fullmatch(path)
        if rec and rec.group(1) == line:
            continue
        raise FilesError(f"{path}: not a file of line {line}")


def read_line(prompts: Path, line: str) -> dict[str, str]:
    files = {f"{line}.yaml": (prompts / f"{line}.yaml").read_text(encoding="utf-8")}
    for path in sorted((prompts / "texts").glob(f"{line}.*.yaml")):
        files[f"texts/{path.name}"] = path.read_text(encoding="utf-8")
    recordings = prompts / "recordings" / line
    if recordings.is_dir():
        for path in sorted(recordings.glob("*/*.wav")):
            files[f"recordings/{line}/{path.parent.name}/{path.name}"] = base64.b64encode(
                path.read_bytes()
            ).decode()
    return files


def line_names(prompts: Path) -> list[str]:
    return sorted(p.stem for p in prompts.glob("*.yaml") if LINE_NAME.fullmatch(p.stem))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_bytes(path: str, content: str) -> bytes:
    return base64.b64decode(content) if path.endswith(".wav") else content.encode("utf-8")


def write_line(prompts: Path, line: str, files: Mapping[str, str]) -> None:
    """Make the line's files under `prompts` exactly `files`: each written atomically, files of the line
    that are no longer in the set removed. The server's watcher is held off meanwhile (PUBLISHING_MARK),
    so it never takes half a set."""
    line_paths_ok(line, files)
    mark = prompts / PUBLISHING_MARK
    mark.write_text(line, encoding="utf-8")
    try:
        old = read_line(prompts, line)
        # Texts and recordings first, the tree last.
        for path in sorted(files, key=lambda p: p == f"{line}.yaml"):
            if old.get(path) != files[path]:
                _write_atomic(prompts / path, file_bytes(path, files[path]))
        for path in set(old) - set(files):
            with contextlib.suppress(FileNotFoundError):
                (prompts / path).unlink()
    finally:
        mark.unlink(missing_ok=True)


def make_scratch(prompts: Path, line: str, files: Mapping[str, str]) -> Path:
    """A temporary copy of prompts/ with `files` as the line's files (the caller removes its parent)."""
    root = Path(tempfile.mkdtemp(prefix="ivr-console-")) / "prompts"
    shutil.copytree(prompts, root, ignore=shutil.ignore_patterns(".*", "recordings"))
    for old in (root / f"{line}.yaml", *(root / "texts").glob(f"{line}.*.yaml")):
        old.unlink(missing_ok=True)
    recordings = prompts / "recordings"
    for other in recordings.glob("*") if recordings.is_dir() else ():
        if other.name != line and other.is_dir():
            shutil.copytree(other, root / "recordings" / other.name)
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file_bytes(rel, content))
    return root


@contextlib.contextmanager
def scratch_prompts(prompts: Path, line: str, files: Mapping[str, str]) -> Iterator[Path]:
    """`make_scratch`, removed afterwards."""
    root = make_scratch(prompts, line, files)
    try:
        yield root
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
