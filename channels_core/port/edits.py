"""Text edits on exact spans, so that everything outside them stays byte for byte as it was."""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    """Replace `text[start:end]` with `new` (character offsets)."""

    start: int
    end: int
    new: str


@dataclass(frozen=True)
class Note:
    """Something the tool left for a person, with where it is (1-based line)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class Source:
    """A file's text with ast positions (line, UTF-8 byte column) turned into character offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self._line_starts.append(index + 1)

    def offset(self, lineno: int, col_offset: int) -> int:
        start = self._line_starts[lineno - 1]
        end = self._line_starts[lineno] if lineno < len(self._line_starts) else len(self.text)
        # ast columns count UTF-8 bytes, not characters.
        prefix = self.text[start:end].encode("utf-8")[:col_offset].decode("utf-8", errors="ignore")
        return start + len(prefix)

    def span(self, node: ast.AST) -> tuple[int, int]:
        """Character offsets of a node's source (it must carry end positions)."""
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset."""
        low, high = 0, len(self._line_starts) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self._line_starts[middle] <= offset:
                low = middle
            else:
                high = middle - 1
        return low + 1

    def line_span(self, lineno: int) -> tuple[int, int]:
        """Offsets of a whole line, its newline included."""
        start = self._line_starts[lineno - 1]
        end = self._line_starts[lineno] if lineno < len(self._line_starts) else len(self.text)
        return start, end


def apply(text: str, edits: list[Edit]) -> str:
    """`text` with every edit made; overlapping edits are a bug in the caller and raise ValueError."""
    ordered = sorted(set(edits), key=lambda e: (e.start, e.end))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            raise ValueError(f"overlapping edits {before} and {after}")
    pieces, last = [], 0
    for edit in ordered:
        pieces.append(text[last : edit.start])
        pieces.append(edit.new)
        last = edit.end
    pieces.append(text[last:])
    return "".join(pieces)


def replace_string_value(source: Source, node: ast.Constant, value: str) -> Edit | None:
    """An edit that changes a plain string literal's value and keeps its quotes; None if it is not plain."""
    start, end = source.span(node)
    literal = source.text[start:end]
    for quote in ('"""', "'''", '"', "'"):
        if literal.startswith(quote) and literal.endswith(quote) and len(literal) >= 2 * len(quote):
            if literal[len(quote) : -len(quote)] != node.value:
                return None  # escapes or implicit concatenation: not worth guessing
            return Edit(start + len(quote), end - len(quote), value)
    return None  # a prefixed literal (r"", f"") or concatenated parts
