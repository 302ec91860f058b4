"""YAML files with source line numbers: the one reader for trees, prompt texts and scenario files.

Two things every file staff edit needs, and plain `yaml.safe_load` does not give:
- YAML 1.2 booleans (only true/false), so `yes:`, `no:`, `on:` in a menu stay the words callers say;
- the line of every value, so each error names `file:lineno`. A key written twice is an error at the
  second one, never a silent overwrite.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# The path of a value inside the document: mapping keys and sequence indexes from the root.
KeyPath = tuple[str | int, ...]


class YamlFileError(Exception):
    """A file that is not YAML, or has a key twice. `code` is "yaml" or "duplicate_key"."""

    def __init__(self, file: str, lineno: int, code: str, message: str) -> None:
        super().__init__(f"{file}:{lineno}: {message}")
        self.file, self.lineno, self.code, self.message = file, lineno, code, message


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _syntax_error(file: str, exc: yaml.YAMLError) -> YamlFileError:
    """The error at the line a person would fix. The parser notices a mistake where it stops making sense
    (often the next line: an unclosed `[` on line 240 is noticed at line 241); when it names the construct
    it was reading (`context_mark`) on an earlier line, that line is the one to fix."""
    problem = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    message = str(getattr(exc, "problem", None) or exc)
    if problem is None and context is None:
        return YamlFileError(file, 1, "yaml", message)
    if context is not None and (problem is None or context.line < problem.line):
        what = getattr(exc, "context", None)
        noticed = f"; noticed at line {problem.line + 1}" if problem is not None else ""
        return YamlFileError(
            file, context.line + 1, "yaml", f"{message} ({what}{noticed})" if what else message
        )
    assert problem is not None
    return YamlFileError(file, problem.line + 1, "yaml", message)


def compose_yaml(text: str, file: str) -> tuple[yaml.Node | None, Yaml12Loader]:
    """The node tree of one document (marks carry the lines) and the loader that built it; the caller
    disposes of the loader. Raises YamlFileError."""
    loader = Yaml12Loader(text)
    try:
        return loader.get_single_node(), loader
    except yaml.YAMLError as exc:
        loader.dispose()
        raise _syntax_error(file, exc) from exc


def read_yaml(path: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse a YAML file; return the data and a map from each value's key path to its 1-based line.
    Raises YamlFileError (and OSError when the file cannot be read)."""
    path = Path(path)
    file = str(path)
    root, loader = compose_yaml(path.read_text(encoding="utf-8"), file)
    try:
        linenos: dict[KeyPath, int] = {}
        data = _construct(loader, root, (), linenos, file) if root is not None else None
    except yaml.YAMLError as exc:
        raise _syntax_error(file, exc) from exc
    finally:
        loader.dispose()
    return data, linenos


def _construct(
    loader: Yaml12Loader, node: yaml.Node, path: KeyPath, linenos: dict[KeyPath, int], file: str
) -> Any:
    linenos.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise YamlFileError(file, key_node.start_mark.line + 1, "duplicate_key", f"{key!r} twice")
            linenos[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(loader, value_node, (*path, key), linenos, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), linenos, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def lineno_of(linenos: Mapping[KeyPath, int], path: KeyPath) -> int:
    """The line of the value at `path`, or of its nearest enclosing value."""
    while path:
        if path in linenos:
            return linenos[path]
        path = path[:-1]
    return linenos.get((), 1)
