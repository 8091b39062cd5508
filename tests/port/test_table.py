"""The porting tool's table says what the docs' import table (docs/reference/import-table.md) says, and every new home
it names imports."""

from __future__ import annotations

import importlib
import re

import pytest

from channels_core.port import table
from tests.test_import_table import ROWS, new_names, resolve


def _refs(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _maps_to_the_row(mapped: str, new_cell: str) -> bool:
    targets = new_names(new_cell)
    return any(mapped == t or t.startswith(mapped + ".") for t in targets)


@pytest.mark.parametrize(("old", "new"), ROWS, ids=[old[:60] for old, _ in ROWS])
def test_each_readme_row_is_what_the_table_does(old, new):
    refs = _refs(old)
    if old.startswith("`INSTALLED_APPS`"):
        assert f'`"{table.APPS["channels"]}"`' in new
    elif old.startswith("`BACKEND`"):
        for ref in refs[1:]:
            assert table.BACKENDS[ref] in new_names(new), ref
    elif refs and refs[0].startswith("daphne"):
        assert new.startswith(f"`{table.SERVER[1]} ")
    elif "WebSocketBridge" in old:
        assert table.BRIDGE[0] in old and table.BRIDGE[1] in new
    else:
        module = None
        checked = 0
        for ref in refs:
            if ref.startswith("channels."):
                parts = ref.split(".")
                module = next(
                    ".".join(parts[:cut]) for cut in range(len(parts), 0, -1) if ".".join(parts[:cut]) in table.MODULES
                )
                mapped = table.new_module(ref)
            elif module is not None and "." not in ref:
                # A name listed after its module: it must import from where the table sends it.
                home = table.new_home(module, ref)
                mapped = f"{home}.{ref}"
                assert resolve(mapped) is not None, mapped
                mapped = home
            else:
                continue
            checked += 1
            if new.startswith("gone"):
                # Gone, or (channels.tests) an alias that the row sends to its replacement.
                assert table.gone(ref) or mapped in new_names(new), ref
            else:
                assert _maps_to_the_row(mapped, new), (ref, mapped)
        assert checked, old


@pytest.mark.parametrize("module", sorted(set(table.MODULES.values()) | set(table.NAMES.values())))
def test_every_new_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("backend", sorted(set(table.BACKENDS.values())))
def test_every_new_backend_resolves(backend):
    assert isinstance(resolve(backend), type)


def test_rundelay_moved_module():
    assert table.new_home("channels.management.commands", "rundelay") == "channels_core.delay.management.commands"
    assert table.new_home("channels.management.commands", "runworker") == "channels_core.management.commands"
    assert table.new_module("channels.generic.websockets.JsonWebsocketConsumer") == (
        "channels_core.generic.websockets.JsonWebsocketConsumer"
    )
    assert table.new_module("channelsx") is None and table.new_module("channels_core.auth") is None
