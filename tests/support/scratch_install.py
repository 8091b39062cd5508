"""Run part of the suite against a package version other than the installed one.

`install_into` pip-installs requirements into a scratch directory and gives
the environment whose PYTHONPATH puts them ahead of the installed packages;
`run_pytest` runs pytest in a subprocess with that environment and fails the
calling test with the tail of its output if anything in it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install_into(target: Path, *requirements: str, no_deps: bool = False) -> dict[str, str]:
    """`pip install --target target requirements...`; the environment that imports them first."""
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(target)]
    if no_deps:
        argv.append("--no-deps")
    install = subprocess.run([*argv, *requirements], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))


def run_pytest(env: dict[str, str], *args: str) -> str:
    """`python -m pytest -q args...` from the repository root with `env`; its output, once it passed."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    return run.stdout
