"""Check channels_core.E006: a project module named like one of our top-level packages shadows it.

Each test writes a small project to a temporary directory (nothing from the
checkout on its path: the installed package is used) and runs
`manage.py check` there as a subprocess, as a user porting a 1.x project would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

SETTINGS = """\
SECRET_KEY = "x"
INSTALLED_APPS = ["channels_core", "django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
CHANNEL_LAYERS = {{
    "default": {{"BACKEND": "channels_core.layers.InMemoryChannelLayer", "ROUTING": {routing!r}}},
}}
"""

# The README's routing example as Channels 1.x users wrote it, at the project root.
ROUTING = """\
from {source} import route


def ws_receive(message):
    pass


channel_routing = [route("websocket.receive", ws_receive)]
"""


def make_project(root: Path, routing: str) -> Path:
    (root / "myproject").mkdir()
    (root / "myproject" / "__init__.py").write_text("")
    (root / "myproject" / "settings.py").write_text(SETTINGS.format(routing=routing))
    (root / "manage.py").write_text(MANAGE)
    return root


def manage_check(root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_root_routing_py_is_named(tmp_path):
    root = make_project(tmp_path, "routing.channel_routing")
    shadow = root / "routing.py"
    shadow.write_text(ROUTING.format(source="routing"))
    result = manage_check(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "channels_core.E006" in output
    assert str(shadow) in output
    assert "Traceback" not in output, output
    assert "channel_routing.py" in output  # what to rename it to


def test_renamed_as_the_check_says_it_passes(tmp_path):
    root = make_project(tmp_path, "channel_routing.channel_routing")
    (root / "channel_routing.py").write_text(ROUTING.format(source="channels_core"))
    result = manage_check(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("name", ["worker", "interface_server"])
def test_a_root_app_named_like_our_package_is_named(tmp_path, name):
    root = make_project(tmp_path, "myproject.routing.channel_routing")
    (root / "myproject" / "routing.py").write_text(ROUTING.format(source="channels_core"))
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    result = manage_check(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "channels_core.E006" in output
    assert str(root / name) in output
