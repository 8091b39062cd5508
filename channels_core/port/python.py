"""One Python module: imports, settings strings, and the notes for what is left to a person."""

from __future__ import annotations

import ast

from .edits import Edit, Note, Source
from .imports import dotted_string_notes, rewrite_imports
from .settings import rewrite_settings
from .upgrade import upgrade_notes


def port_python(path: str, text: str) -> tuple[list[Edit], list[Note]]:
    """Edits and notes for one module; a module that is not Python 3 gets a single note and no edits."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as error:
        return [], [
            Note(path, error.lineno or 1, f"not Python 3 ({error.msg}): port it to Python 3, then run this again")
        ]
    source = Source(text)
    edits, notes = rewrite_imports(path, source, tree)
    settings_edits, settings_notes, handled = rewrite_settings(path, source, tree)
    edits += settings_edits
    notes += settings_notes
    notes += dotted_string_notes(path, tree, handled)
    notes += upgrade_notes(path, tree)
    return edits, sorted(notes, key=lambda n: n.line)
