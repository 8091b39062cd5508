"""A project tree: which files to look at, what each kind of file gets, and the project-wide notes."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .commands import rewrite_commands
from .edits import Edit, Note, apply
from .python import port_python
from .templates import rewrite_bridge_path

_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}
_TEMPLATE_SUFFIXES = {".html", ".htm", ".jinja", ".jinja2", ".j2", ".djhtml", ".js", ".mjs"}
_CONFIG_SUFFIXES = {".yml", ".yaml", ".conf", ".ini", ".service"}
_REQUIREMENT = re.compile(
    r"^\s*(channels|daphne|asgi[_-]redis|asgi[_-]ipc|asgi[_-]rabbitmq|asgiref)\s*(?:[<>=~!;\[#]|$)", re.IGNORECASE
)
# Our top-level packages that a project module of the same name would hide (check channels_core.E006).
_SHADOWED = ("routing", "worker", "interface_server")


@dataclass
class FileChange:
    """One file's text before and after."""

    path: Path
    old: str
    new: str


@dataclass
class Result:
    """Everything the tool would change, and what it leaves to a person."""

    changes: list[FileChange] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def kind_of(path: Path) -> str | None:
    """ "python", "procfile", "shell", "config", "template", "requirements" or None (not looked at)."""
    name, suffix = path.name, path.suffix.lower()
    if suffix == ".py":
        return "python"
    if name.startswith("Procfile"):
        return "procfile"
    if name.startswith("requirements") and suffix in (".txt", ".in") or name == "Pipfile":
        return "requirements"
    if suffix in (".sh", ".bash"):
        return "shell"
    if name.startswith(("Dockerfile", "Containerfile")) or suffix in _CONFIG_SUFFIXES:
        return "config"
    if suffix in _TEMPLATE_SUFFIXES:
        return "template"
    if not suffix and _has_shell_shebang(path):
        return "shell"
    return None


def _has_shell_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"sh" in first


def files(root: Path) -> Iterator[Path]:
    """The files under `root` worth looking at, in a stable order; virtualenvs and hidden dirs are skipped."""
    if root.is_file():
        yield root
        return
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS and not (Path(directory, d) / "pyvenv.cfg").exists()
        )
        for filename in sorted(filenames):
            path = Path(directory, filename)
            if not path.is_symlink():
                yield path


def port_file(path: Path, display: str, text: str) -> tuple[list[Edit], list[Note]]:
    """Edits and notes for one file, by its kind."""
    kind = kind_of(path)
    if kind == "python":
        return port_python(display, text)
    if kind in ("procfile", "shell", "config"):
        return rewrite_commands(display, text, kind)
    if kind == "template":
        return rewrite_bridge_path(text), []
    if kind == "requirements":
        return [], _requirement_notes(display, text)
    return [], []


def _requirement_notes(display: str, text: str) -> list[Note]:
    notes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _REQUIREMENT.match(line)
        if match:
            notes.append(
                Note(display, lineno, f"{match.group(1)}: replace by channels-core (server, layers and worker in one)")
            )
    return notes


def port_tree(root: Path, display_root: str) -> Result:
    """Work out every change under `root`; nothing is written."""
    result = Result()
    for path in files(root):
        kind = kind_of(path)
        if kind is None:
            continue
        display = _display(root, path, display_root)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as error:
            result.notes.append(Note(display, 1, f"not read ({error.__class__.__name__}); check it by hand"))
            continue
        edits, notes = port_file(path, display, text)
        result.notes.extend(notes)
        if edits:
            new = apply(text, edits)
            if new != text:
                result.changes.append(FileChange(path, text, new))
        if path.name == "manage.py":
            result.notes.extend(_shadow_notes(path.parent, root, display_root))
    result.notes.sort(key=lambda note: (note.path, note.line))
    return result


def _shadow_notes(directory: Path, root: Path, display_root: str) -> list[Note]:
    notes = []
    for name in _SHADOWED:
        for candidate in (directory / f"{name}.py", directory / name):
            if candidate.exists():
                notes.append(
                    Note(
                        _display(root, candidate, display_root),
                        1,
                        f"this {name!r} next to manage.py hides channels-core's {name!r} package "
                        "(check channels_core.E006): rename it or move it into your project package",
                    )
                )
    return notes


def _display(root: Path, path: Path, display_root: str) -> str:
    if root.is_file():
        return display_root
    return os.path.normpath(os.path.join(display_root, path.relative_to(root)))
