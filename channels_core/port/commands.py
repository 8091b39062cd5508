"""`daphne` command lines (Procfiles, shell scripts, Dockerfiles, compose and supervisor files) -> `interface-server`.

Only a `daphne` in command position changes (the first word of a command,
after `VAR=value` assignments and `exec`/`nohup`/`env`), so `pip install daphne`
or a log line that mentions it stays. Its flags keep their meaning; the few
spelled differently are respelled, and `--force-sync` is dropped with a note.
"""

from __future__ import annotations

import re

from . import table
from .edits import Edit, Note

# What precedes the command on a line, per kind of file: a Procfile's "web:", a Dockerfile's "CMD",
# compose's "command:" (or a list item), supervisor's "command=".
_PREFIX = re.compile(r"^\s*(?:(?:-\s+)?(?:[\w.-]+\s*[:=])\s*|(?:CMD|ENTRYPOINT|RUN)\s+)?", re.IGNORECASE)
_SEPARATOR = re.compile(r"&&|\|\||[;|&(`]|\$\(")
_WORD = re.compile(r"[^\s;&|()`]+")
_WRAPPERS = {"exec", "nohup", "env", "time", "command"}
_JSON_FORM = re.compile(r'(\[\s*)"daphne"(\s*,)')


def rewrite_commands(path: str, text: str, kind: str) -> tuple[list[Edit], list[Note]]:
    """Edits for every daphne command in `text`; `kind` is "procfile", "shell" or "config"."""
    edits: list[Edit] = []
    notes: list[Note] = []
    offset = 0
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        if not line.lstrip().startswith("#"):
            body = _PREFIX.match(line).end() if kind != "shell" else 0  # type: ignore[union-attr]
            for match in _JSON_FORM.finditer(line):  # CMD ["daphne", ...]: the flags are quoted words
                start = offset + match.start() + len(match.group(1))
                edits.append(Edit(start, start + len('"daphne"'), f'"{table.SERVER[1]}"'))
                for flag in re.finditer(r'"(--[\w-]+)(=[^"]*)?"', line):
                    if flag.group(1) in table.SERVER_FLAGS:
                        edits.append(
                            Edit(offset + flag.start(1), offset + flag.end(1), table.SERVER_FLAGS[flag.group(1)])
                        )
            _line(path, lineno, line, body, offset, edits, notes)
        offset += len(line)
    return edits, notes


def _segments(line: str, start: int) -> list[tuple[int, int]]:
    bounds, last = [], start
    for match in _SEPARATOR.finditer(line, start):
        bounds.append((last, match.start()))
        last = match.end()
    bounds.append((last, len(line)))
    return bounds


def _line(path: str, lineno: int, line: str, body: int, offset: int, edits: list[Edit], notes: list[Note]) -> None:
    for start, end in _segments(line, body):
        words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(line, start, end)]
        index = 0
        while index < len(words) and (
            words[index][2] in _WRAPPERS or re.fullmatch(r"[A-Za-z_]\w*=\S*", words[index][2])
        ):
            index += 1
        if index >= len(words):
            continue
        first = words[index]
        old, new = table.SERVER
        if first[2] == old or first[2].endswith("/" + old):
            edits.append(Edit(offset + first[1] - len(old), offset + first[1], new))
        elif (
            re.fullmatch(r"(?:\S*/)?python[\d.]*", first[2])
            and index + 2 < len(words)
            and words[index + 1][2] == "-m"
            and words[index + 2][2] == table.SERVER_MODULE[0]
        ):
            module = words[index + 2]
            edits.append(Edit(offset + module[0], offset + module[1], table.SERVER_MODULE[1]))
        else:
            continue
        for word_start, word_end, word in words[index + 1 :]:
            flag, _, value = word.partition("=")
            if flag in table.SERVER_FLAGS:
                edits.append(Edit(offset + word_start, offset + word_start + len(flag), table.SERVER_FLAGS[flag]))
            elif flag in table.SERVER_FLAGS_GONE:
                # Remove the flag and the blank before it.
                blank = len(line[:word_start]) - len(line[:word_start].rstrip())
                edits.append(Edit(offset + word_start - blank, offset + word_end, ""))
                notes.append(Note(path, lineno, f"dropped {flag}: {table.SERVER_FLAGS_GONE[flag]}"))
