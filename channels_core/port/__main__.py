"""The command line: parse arguments, work out the changes, then write, show or count them."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from .project import Result, port_tree


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m channels_core.port",
        description="Rewrite a Channels 1.x project for channels-core, in place. What it cannot do is "
        "printed (to stderr) as FILE:LINE: what to do.",
    )
    parser.add_argument("path", help="the project directory (or one file)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 if something would change")
    mode.add_argument("--diff", action="store_true", help="change nothing; print a unified diff (patch -p1)")
    return parser


def unified_diff(result: Result, root: Path) -> str:
    """The changes as one diff whose paths are relative to `root` (a/..., b/...)."""
    chunks = []
    for change in result.changes:
        name = change.path.name if root.is_file() else change.path.relative_to(root).as_posix()
        chunks.extend(
            difflib.unified_diff(
                change.old.splitlines(keepends=True),
                change.new.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return "".join(chunks)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(args.path)
    if not root.exists():
        print(f"{args.path}: no such file or directory", file=sys.stderr)
        return 2
    result = port_tree(root, args.path)

    if args.diff:
        sys.stdout.write(unified_diff(result, root))
    elif args.check:
        for change in result.changes:
            print(f"would rewrite {_shown(change.path, root, args.path)}")
    else:
        for change in result.changes:
            change.path.write_text(change.new, encoding="utf-8")
            print(f"rewrote {_shown(change.path, root, args.path)}")

    if result.notes:
        print(f"\n{len(result.notes)} thing(s) to do by hand:", file=sys.stderr)
        for note in result.notes:
            print(note, file=sys.stderr)
    if args.check:
        return 1 if result.changes else 0
    return 0


def _shown(path: Path, root: Path, display_root: str) -> str:
    return display_root if root.is_file() else str(Path(display_root) / path.relative_to(root))


if __name__ == "__main__":
    sys.exit(main())
