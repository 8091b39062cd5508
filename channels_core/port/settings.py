"""Settings: `INSTALLED_APPS` entries and channel layer `BACKEND` strings.

Only string literals in those two places change, so a channel named
"channels" or a help text mentioning channels stays as it is.
"""

from __future__ import annotations

import ast
import re

from . import table
from .edits import Edit, Note, Source, replace_string_value

_STATICFILES = "django.contrib.staticfiles"


def _installed_apps_values(tree: ast.Module) -> list[ast.expr]:
    """Expressions that feed INSTALLED_APPS: assignments, `+=`, `.append()`, `.insert()`, `.extend()`."""
    values: list[ast.expr] = []

    def is_apps(target: ast.expr) -> bool:
        return (isinstance(target, ast.Name) and target.id == "INSTALLED_APPS") or (
            isinstance(target, ast.Attribute) and target.attr == "INSTALLED_APPS"
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(is_apps(t) for t in node.targets):
            values.append(node.value)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and is_apps(node.target) and node.value is not None:
            values.append(node.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "insert", "extend")
            and is_apps(node.func.value)
        ):
            values.extend(node.args)
    return values


def rewrite_settings(path: str, source: Source, tree: ast.Module) -> tuple[list[Edit], list[Note], set[int]]:
    """Edits for INSTALLED_APPS and BACKEND, notes for what has no counterpart, and the string nodes handled."""
    edits: list[Edit] = []
    notes: list[Note] = []
    handled: set[int] = set()

    for value in _installed_apps_values(tree):
        moved: set[int] = set()
        if isinstance(value, ast.List | ast.Tuple):
            moves = _before_staticfiles(path, source, value, notes)
            if moves:
                edits.extend(moves)
                moved = {id(e) for e in value.elts if _is_str(e, "channels")}
        for node in ast.walk(value):
            if isinstance(node, ast.Constant) and node.value in table.APPS:
                handled.add(id(node))
                if id(node) in moved:
                    continue  # the line move writes the new value
                edit = replace_string_value(source, node, table.APPS[node.value])
                if edit is None:
                    notes.append(Note(path, node.lineno, f"INSTALLED_APPS: replace {node.value!r} by hand"))
                else:
                    edits.append(edit)

    for backend in _backends(tree):
        handled.add(id(backend))
        new = table.BACKENDS.get(backend.value)
        if new is not None:
            edit = replace_string_value(source, backend, new)
            if edit is not None:
                edits.append(edit)
                continue
            notes.append(Note(path, backend.lineno, f"BACKEND: write {new!r} instead of {backend.value!r}"))
        elif backend.value.startswith(table.BACKEND_PACKAGES):
            notes.append(
                Note(
                    path,
                    backend.lineno,
                    f"BACKEND {backend.value!r} has no counterpart here; the layers are "
                    + ", ".join(sorted(set(table.BACKENDS.values()))),
                )
            )
    return edits, notes, handled


def _backends(tree: ast.Module) -> list[ast.Constant]:
    """String values under a "BACKEND" key: in a dict literal, or `X["BACKEND"] = "..."`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _is_str(key, "BACKEND") and _is_str(value):
                    found.append(value)
        elif isinstance(node, ast.Assign) and _is_str(node.value):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and _is_str(target.slice, "BACKEND"):
                    found.append(node.value)
    return found  # type: ignore[return-value]


def _is_str(node: ast.AST | None, value: str | None = None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and (value is None or node.value == value)


def _before_staticfiles(path: str, source: Source, apps: ast.List | ast.Tuple, notes: list[Note]) -> list[Edit]:
    """Move "channels" above "django.contrib.staticfiles" (1.x patched runserver; here the order does it).

    Only when both entries sit alone on their own lines, the common layout; otherwise say so. The moved
    line carries the entry's new value, so the caller must not edit that entry again.
    """
    entries = {e.value: e for e in apps.elts if _is_str(e)}  # type: ignore[attr-defined]
    ours, staticfiles = entries.get("channels"), entries.get(_STATICFILES)
    if ours is None or staticfiles is None or ours.lineno < staticfiles.lineno:
        return []
    ours_line = source.line_span(ours.lineno)
    static_line = source.line_span(staticfiles.lineno)
    text = source.text
    alone = all(
        re.fullmatch(r"\s*" + re.escape(source.segment(node)) + r"\s*,?\s*(#.*)?\n?", text[start:end])
        for (start, end), node in ((ours_line, ours), (static_line, staticfiles))
    )
    if not alone or ours.lineno == staticfiles.lineno:
        notes.append(
            Note(path, ours.lineno, "INSTALLED_APPS: list 'channels_core' before 'django.contrib.staticfiles'")
        )
        return []
    start, end = ours_line
    moved = text[start:end].replace(source.segment(ours), source.segment(ours).replace("channels", "channels_core"))
    if not moved.rstrip("\n").endswith(","):
        moved = moved.rstrip("\n") + ",\n"
    return [Edit(start, end, ""), Edit(static_line[0], static_line[0], moved)]
