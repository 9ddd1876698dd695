"""YAML reading that keeps line numbers, so every validation error can name file and line.

PyYAML's composer gives each node a start mark; we turn the node tree into plain Python
values plus a side table from field path (``("links", 3, "ends", 1)``) to line number.
Duplicate mapping keys, which PyYAML silently collapses, are reported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: where it is and what is wrong."""

    source: str
    line: int | None
    path: Path
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {format_path(self.path)}: {self.message}"


@dataclass
class Document:
    """Parsed YAML plus the line of every value."""

    source: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: Path) -> int | None:
        """The line of a path, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.source, self.line(path), path, message))


class _Loader(yaml.SafeLoader):
    """SafeLoader; we only use its composer and scalar resolution."""


def parse(text: str, source: str) -> Document:
    """Parse YAML text; syntax errors become a Problem (never an exception)."""
    doc = Document(source=source, data=None)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                doc.problem((), "the file is empty")
                return doc
            doc.data = _convert(node, (), loader, doc)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        line = None
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        reason = getattr(exc, "problem", None) or str(exc)
        doc.problems.append(Problem(source, line, (), f"YAML syntax error: {reason}"))
    return doc


def _convert(node: yaml.Node, path: Path, loader: _Loader, doc: Document) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                doc.lines[(*path, str(key))] = key_node.start_mark.line + 1
                doc.problem((*path, str(key)), f"keys must be strings, not {key!r}")
                continue
            if key in out:
                doc.lines[(*path, key)] = key_node.start_mark.line + 1
                doc.problem((*path, key), "duplicate key")
                continue
            out[key] = _convert(value_node, (*path, key), loader, doc)
            # Point errors about a key at the key's own line.
            doc.lines.setdefault((*path, key), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), loader, doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
