"""The packages keep their one-way dependencies (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "modules, forbidden",
    [
        (["channels_core", "channels_core.layers"], {"django", "twisted", "autobahn"}),
        (
            [
                "interface_server.cli",
                "interface_server.server",
                "interface_server.http_protocol",
                "interface_server.ws_protocol",
            ],
            {"django", "channels_core"},
        ),
    ],
)
def test_package_does_not_import(modules, forbidden):
    assert _imported_after(modules) & forbidden == set()
