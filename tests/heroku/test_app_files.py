"""The Heroku files agree with the project: app.json with the Procfile and the example's settings,
.python-version with setup.cfg, requirements.txt with setup.cfg's extras. Fast; the full run is
test_heroku_like.py (slow)."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "example" / "example" / "settings.py"
# Config vars the buildpack itself reads (not the app): allowed in app.json without the settings reading them.
BUILDPACK_VARS = {"DISABLE_COLLECTSTATIC", "PIP_EXTRA_INDEX_URL"}


def procfile_types() -> set[str]:
    return {m.group(1) for m in re.finditer(r"(?m)^([A-Za-z0-9_-]+):", (ROOT / "Procfile").read_text())}


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_app_json_formation_addons_and_buildpack_match_the_procfile():
    spec = json.loads((ROOT / "app.json").read_text())
    assert spec["buildpacks"] == [{"url": "heroku/python"}]
    addons = {a if isinstance(a, str) else a["plan"] for a in spec["addons"]}
    assert {name.split(":")[0] for name in addons} == {"heroku-redis", "heroku-postgresql"}
    assert "release" in procfile_types()
    assert set(spec["formation"]) == procfile_types() - {"release"} == {"web", "worker"}
    assert all(entry["quantity"] == 1 for entry in spec["formation"].values())


def test_every_app_json_config_var_is_read_by_the_example_settings():
    env = json.loads((ROOT / "app.json").read_text())["env"]
    settings = SETTINGS.read_text()
    read = set(re.findall(r"os\.environ(?:\.get\(|\[)\"([A-Z0-9_]+)\"", settings))
    assert set(env) - BUILDPACK_VARS <= read, set(env) - BUILDPACK_VARS - read
    assert all(var.get("description") for var in env.values())
    assert env["DJANGO_SECRET_KEY"] == {**env["DJANGO_SECRET_KEY"], "generator": "secret"}
    assert env["DJANGO_DEBUG"]["value"] == "0"


def test_python_version_is_the_major_form_of_a_supported_python():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), f"{version!r}: the buildpack's recommended form is 3.N"
    config = setup_cfg()
    minimum = re.fullmatch(r">=\s*3\.(\d+)", config["options"]["python_requires"].strip())
    assert minimum and int(version.split(".")[1]) >= int(minimum.group(1))
    assert f"Programming Language :: Python :: {version}" in config["metadata"]["classifiers"]


def test_requirements_install_the_project_with_existing_extras_and_a_postgresql_driver():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    project = [line for line in lines if line == "." or line.startswith(".[")]
    assert len(project) == 1, lines  # a wheel in site-packages: nothing refers back to the build directory
    extras = re.findall(r"[\w-]+", project[0][2:-1]) if project[0] != "." else []
    assert set(extras) <= set(setup_cfg()["options.extras_require"]), extras
    assert any(re.match(r"psycopg(2-binary)?(\[binary\])?(?![\w-])", line) for line in lines), lines
