"""The tutorial's steps, read from docs/tutorial.md: what test_tutorial.py replays, and what rebuilds tutorial/.

Each step is an HTML comment (invisible on the site) right before a fenced block:

    <!-- tutorial: run -->                                  commands run in a shell, in order
    <!-- tutorial: write FILE -->                           the block is the whole file
    <!-- tutorial: append FILE -->                          the block is appended to the file
    <!-- tutorial: replace-line FILE TEXT -->               the block replaces the line TEXT
    <!-- tutorial: replace-assignment FILE NAME -->         the block replaces `NAME = [...]` / `NAME = {...}`
    <!-- tutorial: serve LABEL -->                          a long-running command (the test starts it itself)
    <!-- tutorial: install -->                              the install from the clone (only the slow test runs it)

`python3 -m tests.docs.tutorial_steps DIR` replays the steps in DIR (the `run` steps call the real
`django-admin` and `manage.py`), which is how tutorial/ was made: replay in a temporary directory,
then copy its mysite/ to tutorial/ (and `ruff format tutorial`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL_MD = ROOT / "docs" / "tutorial.md"
FINISHED = ROOT / "tutorial"

_STEP = re.compile(
    r"<!-- tutorial: (?P<action>[\w-]+)(?: (?P<args>[^\n]*?))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S
)


@dataclass
class Step:
    action: str
    args: str
    body: str

    @property
    def path(self) -> str:
        return self.args.split(" ", 1)[0]

    @property
    def target(self) -> str:
        return self.args.split(" ", 1)[1]


def steps(text: str | None = None) -> list[Step]:
    """The marked blocks of the tutorial, in order."""
    text = TUTORIAL_MD.read_text() if text is None else text
    found = [Step(m["action"], m["args"] or "", m["body"]) for m in _STEP.finditer(text)]
    if text.count("<!-- tutorial:") != len(found):
        raise ValueError("a '<!-- tutorial: ... -->' marker is not right before a fenced block")
    return found


def replace_assignment(source: str, name: str, new: str) -> str:
    """`source` with the top-level `NAME = [` ... `]` (or `{` ... `}`) block replaced by `new`."""
    match = re.search(rf"^{re.escape(name)} = [\[{{].*?^[\]}}]\n", source, re.M | re.S)
    if match is None:
        raise ValueError(f"no top-level '{name} = [...]' to replace")
    return source[: match.start()] + new + source[match.end() :]


def apply(step: Step, project: Path) -> None:
    """Carry out one file step in `project` (the directory holding manage.py)."""
    path = project / step.path
    if step.action == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step.body)
    elif step.action == "append":
        path.write_text(path.read_text().rstrip("\n") + "\n\n" + step.body)
    elif step.action == "replace-line":
        lines = path.read_text().splitlines(keepends=True)
        index = lines.index(step.target + "\n")
        lines[index : index + 1] = [step.body]
        path.write_text("".join(lines))
    elif step.action == "replace-assignment":
        path.write_text(replace_assignment(path.read_text(), step.target, step.body))
    else:
        raise ValueError(f"not a file step: {step.action}")


def tool_env(python: str = sys.executable) -> dict[str, str]:
    """The environment of a shell whose `python` is this interpreter (as in an active virtualenv)."""
    bin_dir = Path(python).parent
    env = dict(os.environ)
    # As in a fresh shell: not this process's settings module or the TZ its Django set, and no layer
    # settings the tutorial's settings.py would read before the page says to set them.
    for name in ("DJANGO_SETTINGS_MODULE", "TZ", "REDIS_URL", "CHANNELS_PREFIX"):
        env.pop(name, None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def replay(directory: Path, env: dict[str, str] | None = None) -> Path:
    """Run every `run` and file step in `directory`; returns the project directory (where the `cd`s led)."""
    env = tool_env() if env is None else env
    cwd = directory
    for step in steps():
        if step.action == "run":
            marker = directory / ".tutorial_cwd"
            script = f"set -e\n{step.body}\npwd > {shlex.quote(str(marker))}\n"
            done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"tutorial step failed:\n{step.body}\n{done.stdout}\n{done.stderr}")
            new_cwd = Path(marker.read_text().strip())
            marker.unlink()
            cwd = new_cwd
        elif step.action not in ("serve", "install"):
            apply(step, cwd)
    return cwd


if __name__ == "__main__":
    print(replay(Path(sys.argv[1]).resolve()))
