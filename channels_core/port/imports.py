"""Imports of Channels 1.x, rewritten through the syntax tree: only the module names change.

`from channels.X import a, b` keeps its layout and comments (only `channels.X`
is replaced); when its names now live in different modules the statement is
split, one `from ... import` per module, in the order the modules first
appear (a parenthesized one stays parenthesized, each name keeping its comment).
`import channels.X [as y]` changes its module name; without `as`, the
`channels.X.attr` references in the file follow. Relative imports are left alone.
"""

from __future__ import annotations

import ast
import re

from . import table
from .edits import Edit, Note, Source

_FROM_MODULE = re.compile(r"from\s+([\w.]+)")


def _is_channels(module: str | None) -> bool:
    return module is not None and (module == "channels" or module.startswith("channels."))


def _alias_text(name: str, asname: str | None) -> str:
    return f"{name} as {asname}" if asname else name


def rewrite_imports(path: str, source: Source, tree: ast.Module) -> tuple[list[Edit], list[Note]]:
    """The edits that move this module's Channels 1.x imports to their new homes, and what could not be."""
    edits: list[Edit] = []
    notes: list[Note] = []
    binds_channels = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_channels(node.module):
            _from_import(path, source, node, edits, notes)
        elif isinstance(node, ast.Import):
            binds_channels |= _import(path, source, node, edits, notes)
    if binds_channels:
        edits.extend(_references(source, tree))
    return edits, notes


def _from_import(path: str, source: Source, node: ast.ImportFrom, edits: list[Edit], notes: list[Note]) -> None:
    module = node.module or ""
    advice = table.gone(module)
    if advice:
        notes.append(Note(path, node.lineno, advice))
        return
    groups: dict[str, list[ast.alias]] = {}
    for alias in node.names:
        advice = table.gone(f"{module}.{alias.name}")
        if advice:
            notes.append(Note(path, node.lineno, advice))
            return
        home = table.new_home(module, alias.name) if alias.name != "*" else table.new_module(module)
        if home is None:
            notes.append(Note(path, node.lineno, f"{module} is not a Channels 1.1.8 module; left as it is"))
            return
        groups.setdefault(home, []).append(alias)
    start, end = source.span(node)
    if len(groups) == 1:
        match = _FROM_MODULE.match(source.text, start)
        if not match or match.group(1) != module:
            notes.append(Note(path, node.lineno, f"could not find the module name {module!r} to rewrite"))
            return
        edits.append(Edit(match.start(1), match.end(1), next(iter(groups))))
        return
    # Split: one statement per new module, in the order the modules first appear.
    line_start = source.offset(node.lineno, 0)
    indent = source.text[line_start:start]
    joiner = "\n" + indent if not indent.strip() else "; "
    if node.end_lineno == node.lineno or joiner == "; ":
        statements = [
            f"from {home} import {', '.join(_alias_text(a.name, a.asname) for a in aliases)}"
            for home, aliases in groups.items()
        ]
    else:
        statements = _parenthesized(source, node, groups, indent)
    edits.append(Edit(start, end, joiner.join(statements)))


def _comment_after(source: Source, lineno: int, col: int) -> str:
    """The `# comment` that ends line `lineno` after byte column `col`, with its leading blanks, or ""."""
    line_end = source.line_span(lineno)[1]
    rest = source.text[source.offset(lineno, col) : line_end].rstrip("\n")
    match = re.search(r"\s*#.*$", rest)
    return match.group() if match else ""


def _parenthesized(source: Source, node: ast.ImportFrom, groups: dict[str, list[ast.alias]], indent: str) -> list[str]:
    """A multi-line import split in the same layout: one name per line, each keeping its line's comment."""
    first_line = source.text[source.offset(node.lineno, 0) : source.line_span(node.lineno)[1]]
    opening = re.search(r"\(\s*(#.*)?$", first_line.rstrip("\n"))
    opening_comment = "  " + opening.group(1) if opening and opening.group(1) else ""
    statements = []
    for number, (home, aliases) in enumerate(groups.items()):
        lines = [f"from {home} import ({opening_comment if number == 0 else ''}"]
        for alias in aliases:
            comment = _comment_after(source, alias.end_lineno, alias.end_col_offset)  # type: ignore[arg-type]
            lines.append(f"{indent}    {_alias_text(alias.name, alias.asname)},{comment.lstrip(',')}")
        lines.append(f"{indent})")
        statements.append("\n".join(lines))
    return statements


def _import(path: str, source: Source, node: ast.Import, edits: list[Edit], notes: list[Note]) -> bool:
    """Rewrites `import channels...` names; True if one binds the name `channels` (no `as`)."""
    binds = False
    for alias in node.names:
        if not _is_channels(alias.name):
            continue
        advice = table.gone(alias.name)
        new = table.new_module(alias.name)
        if advice or new is None:
            notes.append(Note(path, node.lineno, advice or f"{alias.name} is not a Channels 1.1.8 module"))
            continue
        start = source.offset(alias.lineno, alias.col_offset)
        if not source.text.startswith(alias.name, start):
            notes.append(Note(path, node.lineno, f"could not find {alias.name!r} to rewrite"))
            continue
        edits.append(Edit(start, start + len(alias.name), new))
        binds |= alias.asname is None
    return binds


def _dotted(node: ast.expr) -> list[ast.expr] | None:
    """[Name, Attribute, Attribute...] for a chain `channels.a.b`, else None."""
    chain: list[ast.expr] = []
    while isinstance(node, ast.Attribute):
        chain.append(node)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "channels":
        chain.append(node)
        return chain[::-1]
    return None


def _references(source: Source, tree: ast.Module) -> list[Edit]:
    """`channels.X.y` references, after `import channels[.X]` became `import channels_core[.X]`."""
    edits = []
    inner = _shadowed(tree)  # Attribute nodes already covered by an outer chain, or where `channels` is local
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        chain = _dotted(node)
        if chain is None:
            continue
        inner.update(id(n) for n in chain)
        names = ["channels"] + [n.attr for n in chain[1:]]  # type: ignore[attr-defined]
        # The longest prefix that is a 1.x module: its text is replaced by the module's new name.
        for cut in range(len(names), 0, -1):
            prefix = ".".join(names[:cut])
            if prefix in table.MODULES:
                break
        if cut == 1 and (len(names) < 2 or names[1] not in table.TOP_LEVEL):
            continue  # `channels.append(...)`: a variable that happens to be called channels
        start, end = source.span(chain[cut - 1])
        edits.append(Edit(start, end, table.MODULES[prefix]))
    return edits


def _shadowed(tree: ast.Module) -> set[int]:
    """Nodes inside functions (and lambdas, comprehensions) where `channels` is a parameter or local variable."""
    scopes = (
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.Lambda,
        ast.ListComp,
        ast.SetComp,
        ast.DictComp,
        ast.GeneratorExp,
    )
    hidden: set[int] = set()
    for scope in ast.walk(tree):
        if not isinstance(scope, scopes):
            continue
        local = any(isinstance(n, ast.arg) and n.arg == "channels" for n in ast.walk(scope)) or any(
            isinstance(n, ast.Name) and n.id == "channels" and isinstance(n.ctx, ast.Store) for n in ast.walk(scope)
        )
        if local:
            hidden.update(id(n) for n in ast.walk(scope))
    return hidden


def dotted_string_notes(path: str, tree: ast.Module, handled: set[int]) -> list[Note]:
    """Strings that spell a path inside a Channels 1.x module (mock.patch targets, settings): pointed out only.

    A plain channel name such as "channels.events" is not a 1.x module path and is not mentioned.
    """
    notes = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in handled:
            continue
        value = node.value
        if not re.fullmatch(r"channels(\.\w+)+", value):
            continue
        parts = value.split(".")
        known = any(".".join(parts[:cut]) in table.MODULES for cut in range(2, len(parts) + 1))
        if known or table.gone(value):
            new = table.new_module(value) or "gone"
            notes.append(Note(path, node.lineno, f"the string {value!r} names Channels 1.x code; now: {new}"))
    return notes
