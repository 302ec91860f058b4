"""Structured edits of a texts file (`key: text` per line, with comments): one text is replaced where it
stands, everything else in the file (comments, order, the other texts) stays byte for byte."""

from __future__ import annotations

import yaml

from ivr.trees.yamlfile import YamlFileError, compose_yaml


class TextEditError(ValueError):
    pass


def texts_of(source: str, file: str = "texts") -> dict[str, str]:
    node = _mapping(source, file)
    return {str(k.value): str(v.value) for k, v in node.value} if node is not None else {}


def _mapping(source: str, file: str) -> yaml.MappingNode | None:
    try:
        node, loader = compose_yaml(source, file)
    except YamlFileError as exc:
        raise TextEditError(f"{exc.file}:{exc.lineno}: {exc.message}") from exc
    loader.dispose()
    if node is None:
        return None
    if not isinstance(node, yaml.MappingNode):
        raise TextEditError(f"{file}: a texts file is a mapping key: text")
    return node


def scalar(text: str) -> str:
    """`text` as one YAML scalar (quoted when YAML would otherwise read it differently)."""
    dumped = yaml.safe_dump(text, allow_unicode=True, width=1 << 20, default_style=None).rstrip("\n")
    return dumped.removesuffix("\n...").rstrip("\n")


def set_text(source: str, key: str, text: str, file: str = "texts") -> str:
    """The file with `key` set to `text`: replaced in place, or appended when new."""
    text = " ".join(text.split("\n")).strip()
    if not text:
        raise TextEditError(f"{key}: a text cannot be empty")
    node = _mapping(source, file)
    if node is not None:
        for key_node, value_node in node.value:
            if str(key_node.value) == key:
                start, end = value_node.start_mark.index, value_node.end_mark.index
                return source[:start] + scalar(text) + source[end:]
    tail = "" if not source or source.endswith("\n") else "\n"
    return f"{source}{tail}{key}: {scalar(text)}\n"
