"""The packages keep their one-way dependencies (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _imported_after(modules: list[str], top_level: bool = True) -> set[str]:
    names = "{name.split('.')[0] for name in sys.modules}" if top_level else "set(sys.modules)"
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + f"print(' '.join(sorted({names})))"
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
            {"django"},
        ),
    ],
)
def test_package_does_not_import(modules, forbidden):
    assert _imported_after(modules) & forbidden == set()


def test_interface_server_imports_only_the_layers_of_channels_core():
    modules = [f"interface_server.{name}" for name in ("cli", "server", "http_protocol", "ws_protocol")]
    imported = _imported_after(modules, top_level=False)
    ours = {name for name in imported if name.split(".")[0] == "channels_core"}
    assert {name for name in ours if name != "channels_core" and not name.startswith("channels_core.layers")} == set()
