"""The package as a new user installs it: a wheel and an sdist built from a copy of the checkout,
the wheel installed into a fresh venv outside the source tree, and the JavaScript bridge served
from a small project that imports nothing from the checkout.

The source tree hides missing package data (the editable install and the example read the files
in place), so only an installed wheel shows whether `channels_core/static/` ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import pytest

from channels_core.test.processes import ChildProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("channels_core", "routing", "worker", "interface_server")
BRIDGE = "channels_core/js/websocketbridge.js"
# What a clone has and a build must not depend on: caches, build output, local databases, venvs.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    "artifacts",
    ".venv",
    "*.sqlite3",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "*.whl",
    "*.tar.gz",
)

pytestmark = pytest.mark.slow


def run(args: list, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def data_files() -> set[str]:
    """Every file under the packages that is not Python source: what must ship as package data."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
                found.add(path.relative_to(ROOT).as_posix())
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH, no settings module, no virtualenv of the caller: only what a fresh shell has."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(extra)
    return env


PROJECT = {
    "manage.py": """
        import os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridgesite_settings")
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
    """,
    "bridgesite_settings.py": """
        SECRET_KEY = "only-for-this-test-0123456789-0123456789-0123456789"
        DEBUG = True
        ALLOWED_HOSTS = ["127.0.0.1"]
        INSTALLED_APPS = ["channels_core", "django.contrib.staticfiles"]
        ROOT_URLCONF = "bridgesite_urls"
        STATIC_URL = "/static/"
        DATABASES = {}
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_core.layers.InMemoryChannelLayer",
                "ROUTING": "bridgesite_routing.channel_routing",
            }
        }
    """,
    "bridgesite_urls.py": "urlpatterns = []\n",
    "bridgesite_routing.py": "channel_routing = []\n",
    "find_bridge.py": """
        import django, channels_core
        from django.contrib.staticfiles import finders
        django.setup()
        print(channels_core.__file__)
        print(finders.find("channels_core/js/websocketbridge.js"))
    """,
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """A wheel built straight from the source, and an sdist with a wheel built from it."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "direct", source])
    run([sys.executable, "-m", "build", "--outdir", tmp / "via-sdist", source])  # sdist, then a wheel from it
    return tmp


def wheel_names(wheel: Path) -> set[str]:
    return set(zipfile.ZipFile(wheel).namelist())


def test_every_non_python_file_of_the_packages_ships_in_wheels_and_sdist(dist):
    expected = data_files()
    assert f"channels_core/static/{BRIDGE}" in expected
    (direct,) = (dist / "direct").glob("*.whl")
    (from_sdist,) = (dist / "via-sdist").glob("*.whl")
    (sdist,) = (dist / "via-sdist").glob("*.tar.gz")
    assert expected - wheel_names(direct) == set()
    assert expected - wheel_names(from_sdist) == set()
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert expected - in_sdist == set()


def test_installed_wheel_serves_the_bridge_from_a_project_outside_the_checkout(dist, tmp_path):
    (wheel,) = (dist / "direct").glob("*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    pip_env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    run([python, "-m", "pip", "install", "--quiet", wheel], env=pip_env, cwd=tmp_path)

    site = tmp_path / "site"
    site.mkdir()
    for name, text in PROJECT.items():
        (site / name).write_text(textwrap.dedent(text).lstrip())
    env = clean_env(DJANGO_SETTINGS_MODULE="bridgesite_settings")

    package_file, found = run([python, "find_bridge.py"], cwd=site, env=env).stdout.split()
    assert Path(package_file).is_relative_to(venv), f"channels_core imported from {package_file}, not the venv"
    assert found != "None", "staticfiles finders do not find the bridge in the installed package"
    assert Path(found).is_relative_to(venv)

    port = free_port()
    server = ChildProcess(
        [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        label="runserver",
        cwd=site,
        env=env,
        log=tmp_path / "runserver.log",
        own_group=True,
    )
    with server:
        server.wait_for("Quit the server", timeout=60)
        url = f"http://127.0.0.1:{port}/static/{BRIDGE}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert "javascript" in response.headers["Content-Type"]
            assert response.read() == (ROOT / "channels_core" / "static" / BRIDGE).read_bytes()
