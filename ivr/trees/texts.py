"""Prompt text catalogues: `prompts/texts/<line>.<lang>.yaml` plus `prompts/texts/common.<lang>.yaml`.

Each file is a flat mapping `key: text`. A text may hold placeholders `{name:kind}` (see docs/contracts.md).
A line's own text wins over a common one with the same key. Source line numbers are kept for error messages.

Recordings made by people: `prompts/recordings/<source>/<lang>/<key>.wav` (source: the line, or "common")
is played instead of the synthesised audio of the text `key` of `texts/<source>.<lang>.yaml`. Only a text
without placeholders can have one (`recording_problems`). A catalogue carries the sha1 of each recording's
bytes, so a set of texts names the very recordings it was checked with (docs/prompts.md, "Recordings").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.trees.yamlfile import YamlFileError, compose_yaml

PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")
PLACEHOLDER_KINDS = frozenset(
    {
        "money",
        "points",
        "minutes",
        "sms",
        "megabytes",
        "gigabytes",
        "days",
        "number",
        "date",
        "phone",
        "digits",
        "name",
    }
)

COMMON = "common"
RECORDINGS_DIR = "recordings"  # beside texts/: prompts/recordings/<source>/<lang>/<key>.wav

# (source, language, key) -> sha1 (hex) of the recording's bytes; source is the line or "common".
Recordings = dict[tuple[str, str, str], str]


@dataclass(frozen=True)
class TextEntry:
    key: str
    text: str
    file: str
    lineno: int

    def placeholders(self) -> list[tuple[str, str]]:
        """(name, kind) pairs; kind is "" when not given."""
        return [(m.group(1), m.group(2) or "") for m in PLACEHOLDER.finditer(self.text)]


class TextFileError(Exception):
    def __init__(self, file: str, lineno: int, message: str) -> None:
        super().__init__(f"{file}:{lineno}: {message}")
        self.file, self.lineno, self.message = file, lineno, message


@dataclass
class TextCatalog:
    """Texts of one line: language -> key -> entry (common texts merged in)."""

    line: str
    by_language: dict[str, dict[str, TextEntry]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    # (source, language) -> key -> entry, each file as read: source is the line or "common".
    by_source: dict[tuple[str, str], dict[str, TextEntry]] = field(default_factory=dict)
    # (source, language, key) -> sha1 of the recording that replaces the synthesis of that text: the
    # line's recordings in every language found, the common ones in the catalogue's languages.
    recordings: Recordings = field(default_factory=dict)
    recordings_dir: Path | None = None  # where they are (prompts/recordings), None when not read

    def recording_path(self, source: str, language: str, key: str) -> Path | None:
        if self.recordings_dir is None:
            return None
        return recording_path(self.recordings_dir, source, language, key)

    def get(self, language: str, key: str) -> TextEntry | None:
        return self.by_language.get(language, {}).get(key)

    def languages(self) -> list[str]:
        return sorted(self.by_language)


def read_text_file(path: Path) -> dict[str, TextEntry]:
    """One catalogue file; raises TextFileError (with the line) on bad YAML or a non-string text. Scalars
    are taken as written (`0505` stays `0505`), so the node tree is read rather than constructed values."""
    try:
        node, loader = compose_yaml(path.read_text(encoding="utf-8"), str(path))
    except YamlFileError as exc:
        raise TextFileError(exc.file, exc.lineno, f"YAML: {exc.message}") from exc
    loader.dispose()
    out: dict[str, TextEntry] = {}
    if node is None:
        return out
    if not isinstance(node, yaml.MappingNode):
        raise TextFileError(str(path), node.start_mark.line + 1, "a text file is a mapping key: text")
    for key_node, value_node in node.value:
        lineno = key_node.start_mark.line + 1
        if not isinstance(value_node, yaml.ScalarNode) or not isinstance(key_node, yaml.ScalarNode):
            raise TextFileError(str(path), lineno, "each text is one string")
        key = str(key_node.value)
        if key in out:
            raise TextFileError(
                str(path), lineno, f"text {key!r} defined twice (first at line {out[key].lineno})"
            )
        out[key] = TextEntry(key, str(value_node.value), str(path), lineno)
    return out


def text_files(texts_dir: Path, line: str) -> list[Path]:
    return sorted([*texts_dir.glob(f"{line}.*.yaml"), *texts_dir.glob("common.*.yaml")])


def recording_path(recordings_dir: Path, source: str, language: str, key: str) -> Path:
    return recordings_dir / source / language / f"{key}.wav"


def recording_digest(path: Path) -> str:
    """What names a recording's version: the sha1 (hex) of its bytes."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha1").hexdigest()


def recording_files(recordings_dir: Path, source: str, language: str = "*") -> list[Path]:
    """The recordings of `source` in `language` ("*": every language): `<dir>/<source>/<lang>/<key>.wav`.
    Hidden files (a writer's temporary files) are not recordings."""
    found = recordings_dir.glob(f"{source}/{language}/*.wav")
    return sorted(p for p in found if not p.name.startswith(".") and p.is_file())


def read_recordings(recordings_dir: Path, source: str, language: str = "*") -> Recordings:
    """(source, language, key) -> sha1 of the bytes, for each of `recording_files`."""
    return {
        (source, path.parent.name, path.name[: -len(".wav")]): recording_digest(path)
        for path in recording_files(recordings_dir, source, language)
    }


def recording_problems(
    texts: Mapping[tuple[str, str], Mapping[str, str]],
    recordings: Iterable[tuple[str, str, str]],
    recordings_dir: Path,
) -> list[tuple[Path, str]]:
    """(recording file, why it cannot be played) for each recording of a text that has placeholders (the
    recording would replace the values too: a recording stands for one whole text without any) or of a
    key that has no text in that language. `texts`: (source, language) -> key -> text."""
    problems: list[tuple[Path, str]] = []
    for source, lang, key in sorted(recordings):
        path = recording_path(recordings_dir, source, lang, key)
        text = texts.get((source, lang), {}).get(key)
        if text is None:
            problems.append(
                (
                    path,
                    f"recording for {key!r}, which has no {lang} text in texts/{source}.{lang}.yaml: "
                    "a recording replaces the synthesis of a text; add the text or remove the recording",
                )
            )
            continue
        names = [m.group(0) for m in PLACEHOLDER.finditer(text)]
        if names:
            problems.append(
                (
                    path,
                    f"recording for {key!r}, whose {lang} text in texts/{source}.{lang}.yaml has "
                    f"placeholders ({', '.join(names)}): only a text without placeholders can be recorded; "
                    "remove the recording or the placeholders",
                )
            )
    return problems


def load_texts(texts_dir: Path, line: str, languages: list[str] | None = None) -> TextCatalog:
    """All texts for `line` (every language found, or just `languages`), with the recordings beside them
    (`texts_dir/../recordings`): the line's in every language found (one in a language the line has no
    texts in is a recording without text), the common ones in the catalogue's languages."""
    recordings_dir = texts_dir.parent / RECORDINGS_DIR
    catalog = TextCatalog(line, recordings_dir=recordings_dir)
    langs = set(languages or [])
    if not languages:
        for path in texts_dir.glob(f"{line}.*.yaml"):
            langs.add(path.name.split(".")[1])
    for lang in sorted(langs):
        merged: dict[str, TextEntry] = {}
        for source in (COMMON, line):
            path = texts_dir / f"{source}.{lang}.yaml"
            if path.is_file():
                entries = read_text_file(path)
                merged.update(entries)
                catalog.by_source[(source, lang)] = entries
                catalog.files.append(path)
        catalog.by_language[lang] = merged
        if line != COMMON:
            catalog.recordings.update(read_recordings(recordings_dir, COMMON, lang))
    catalog.recordings.update(read_recordings(recordings_dir, line))
    return catalog
