"""Prompt text catalogues: `prompts/texts/<line>.<lang>.yaml` plus `prompts/texts/common.<lang>.yaml`.

Each file is a flat mapping `key: text`. A text may hold placeholders `{name:kind}` (see docs/contracts.md).
A line's own text wins over a common one with the same key. Source line numbers are kept for error messages.
"""

from __future__ import annotations

import re
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


def load_texts(texts_dir: Path, line: str, languages: list[str] | None = None) -> TextCatalog:
    """All texts for `line` (every language found, or just `languages`)."""
    catalog = TextCatalog(line)
    langs = set(languages or [])
    if not languages:
        for path in texts_dir.glob(f"{line}.*.yaml"):
            langs.add(path.name.split(".")[1])
    for lang in sorted(langs):
        merged: dict[str, TextEntry] = {}
        for source in ("common", line):
            path = texts_dir / f"{source}.{lang}.yaml"
            if path.is_file():
                entries = read_text_file(path)
                merged.update(entries)
                catalog.by_source[(source, lang)] = entries
                catalog.files.append(path)
        catalog.by_language[lang] = merged
    return catalog
