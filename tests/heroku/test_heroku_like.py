"""What Heroku does with this repository, as closely as one machine allows, then the chat in Chromium.

The steps, in the platform's order:

1. the slug's source: the checkout's last commit (`git push heroku main` sends commits: uncommitted edits,
   untracked files such as a local db.sqlite3 or a .venv never reach the build);
2. the build: the Python that `.python-version` names, a fresh environment in the app's `.heroku/python`
   (where the buildpack puts Python), the buildpack's install step (`pip install -r requirements.txt` with
   the flags of heroku-buildpack-python's lib/pip.sh, except `--no-cache-dir`: pip's cache keeps this test
   fast), then its collectstatic step unless a config var disables it;
3. config vars: app.json's `env` (its values, a generated secret for `"generator": "secret"`) and the
   add-ons' URLs: REDIS_URL (heroku-redis: Heroku Key-Value Store, TLS only with a self-signed certificate,
   here a private TLS-only redis-server whose CA the dynos do not trust) and DATABASE_URL
   (heroku-postgresql: a PostgreSQL database created for this test and dropped after);
4. the release phase: the Procfile's `release` line, which must exit 0 before any dyno starts;
5. the dynos: the Procfile's `web` and `worker` lines through `sh -c` with PORT and the config vars and
   none of this test process's environment; the browser reaches the app by an `*.herokuapp.com` name
   (Chromium's resolver maps it to 127.0.0.1), so the Host and Origin checks see what they would see there;
6. the router: it ends TLS and forwards plain HTTP with X-Forwarded-Proto/-Port/-For; a form POST from the
   https page (the admin's login) must pass Django's CSRF Origin check, as `heroku run` made the superuser;
7. dyno shutdown: SIGTERM to every process, SIGKILL after 30 s (both must exit long before).

Not reproduced: the router's TLS itself (the browser speaks http/ws to the dyno), the buildpack's own
pip/setuptools upgrade (the venv's bundled pip installs), the build cache.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels_core.test.processes import ChildProcess, free_port
from tests.example.test_example import log_has, open_room, say
from tests.security.tls import TLSRedisServer, make_ca
from tests.support import browser as browser_support

ROOT = Path(__file__).resolve().parents[2]
# The PostgreSQL server the database is created on: libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, else
# 127.0.0.1:5432 as postgres (trust auth, as on this project's CI machine).
PG_HOST, PG_PORT = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
PG_USER = os.environ.get("PGUSER", "postgres")
POSTGRES = ["-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER]
DYNO_STOP_GRACE = 30.0  # Heroku sends SIGKILL this long after SIGTERM
START_TIMEOUT = 40.0

pytestmark = pytest.mark.slow


def procfile(app: Path) -> dict[str, str]:
    """The Procfile's process types and commands, read as Heroku reads them (`type: command`)."""
    entries = {}
    for line in (app / "Procfile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def copy_slug_source(app: Path) -> list[str]:
    """Extract the checkout's last commit into `app` (what `git push heroku main` sends); returns its files.

    Committed contents, not the working tree: uncommitted edits and new files are not deployed either.
    """
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(app, filter="data")
        return [member.name for member in tar.getmembers() if member.isfile()]


def config_vars(app: Path) -> dict[str, str]:
    """The config vars app.json gives a new app: each `value`, a random secret for `"generator": "secret"`."""
    spec = json.loads((app / "app.json").read_text())
    out = {}
    for name, var in spec["env"].items():
        if var.get("generator") == "secret":
            out[name] = secrets.token_hex(32)  # Heroku generates a 64-character hex secret
        elif "value" in var:
            out[name] = var["value"]
        else:
            assert var.get("required") is False, f"{name} is required and has no value: the Button would ask for it"
    return out


def psql(*args: str) -> str:
    return subprocess.run(
        ["psql", *POSTGRES, "-v", "ON_ERROR_STOP=1", "-tAc", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of this test's own (the heroku-postgresql add-on's), dropped afterwards; yields its name."""
    name = f"heroku_like_{uuid.uuid4().hex[:10]}"
    subprocess.run(["createdb", *POSTGRES, name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["dropdb", *POSTGRES, "--if-exists", "--force", name], check=True, capture_output=True)


@pytest.fixture
def key_value_store(tmp_path) -> Iterator[TLSRedisServer]:
    """The heroku-redis add-on: a redis-server of this test's own speaking only TLS, its CA unknown to the dynos."""
    server = TLSRedisServer(make_ca(tmp_path / "kvs-ca"))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def build(app: Path, log_dir: Path, config: dict[str, str]) -> tuple[Path, dict[str, float]]:
    """The buildpack's steps in `app`; returns the Python environment and each step's seconds."""
    times = {}
    version = (app / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+(\.\d+)?", version), f".python-version: {version!r} is not a form the buildpack reads"
    interpreter = shutil.which(f"python{'.'.join(version.split('.')[:2])}")
    assert interpreter, f"no python{version} on this machine to build with"
    python_home = app / ".heroku" / "python"
    started = time.monotonic()
    # cwd=app: a pyenv shim picks its version from the app's .python-version, as the buildpack does.
    subprocess.run([interpreter, "-m", "venv", str(python_home)], cwd=app, check=True, capture_output=True)
    built = subprocess.run(
        [str(python_home / "bin" / "python"), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert built == version or built.startswith(version + "."), (built, version)
    times["venv"] = time.monotonic() - started

    # The build sees the app's config vars; PATH has the app's Python first, as on Heroku.
    env = {
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PATH": f"{python_home / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        **config,
    }
    started = time.monotonic()
    install = subprocess.run(
        # heroku-buildpack-python lib/pip.sh's command, but with pip's cache (it passes --no-cache-dir).
        ["pip", "install", "-r", "requirements.txt"]
        + ["--disable-pip-version-check", "--exists-action=w", "--no-input", "--progress-bar", "off"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (log_dir / "pip-install.log").write_text(install.stdout + install.stderr)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    times["pip install"] = time.monotonic() - started

    # bin/steps/collectstatic: the first manage.py within depth 3, when Django is installed, unless disabled.
    if not config.get("DISABLE_COLLECTSTATIC"):
        # `find . -maxdepth 3 -name manage.py -printf '%d\t%P\n' | sort -nk1 | head -1`: by depth, then by path.
        found = [p.relative_to(app) for p in app.glob("**/manage.py") if len(p.relative_to(app).parts) <= 3]
        manage = min(found, key=lambda p: (len(p.parts), str(p)))
        collect = subprocess.run(
            ["python", str(manage), "collectstatic", "--noinput", "--traceback"],
            cwd=app,
            env={**env, "PYTHONPATH": "."},
            capture_output=True,
            text=True,
        )
        assert collect.returncode == 0, collect.stdout + collect.stderr  # the build fails here on Heroku
    return python_home, times


class Dyno(ChildProcess):
    """One Procfile line run as a dyno runs it: `sh -c`, from the app's root, in its own process group."""

    def __init__(self, name: str, command: str, app: Path, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(
            ["sh", "-c", command], label=name, cwd=app, env=env, log=log_dir / f"{name}.log", own_group=True
        )


class HerokuURL:
    """What `open_room` needs: the app's URL, here an *.herokuapp.com name the browser maps to 127.0.0.1."""

    def __init__(self, host: str, port: int) -> None:
        self.url = f"http://{host}:{port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:
        return None  # the test reads the 302 itself


def admin_login_through_the_router(port: int, host: str, username: str, password: str) -> tuple[int, str]:
    """GET then POST /admin/login/ as Heroku's router forwards an https browser's requests: status, Location."""
    router = {"Host": host, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443", "X-Forwarded-For": "203.0.113.7"}
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    url = f"http://127.0.0.1:{port}/admin/login/"
    with opener.open(urllib.request.Request(url, headers=router), timeout=10) as response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode()).group(1)
    form = {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
    browser_headers = {"Origin": f"https://{host}", "Referer": f"https://{host}/admin/login/"}
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers={**router, **browser_headers})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", "")


def test_build_release_and_dynos_as_heroku_runs_them(tmp_path, postgres_database, key_value_store, monkeypatch):
    """app.json's config vars, the buildpack's install, `release` on PostgreSQL, `web` + `worker`, Chromium."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    app, logs = tmp_path / "app", tmp_path / "logs"
    app.mkdir()
    logs.mkdir()
    tracked = copy_slug_source(app)
    for needed in ("app.json", ".python-version", "requirements.txt", "Procfile"):
        assert needed in tracked, f"{needed} is not committed: a push would not send it"

    spec = json.loads((app / "app.json").read_text())
    assert spec["buildpacks"] == [{"url": "heroku/python"}]
    assert {a if isinstance(a, str) else a["plan"] for a in spec["addons"]} >= {"heroku-redis", "heroku-postgresql"}
    assert {kind: f["quantity"] for kind, f in spec["formation"].items()} == {"web": 1, "worker": 1}
    processes = procfile(app)
    assert set(spec["formation"]) | {"release"} == set(processes), processes

    config = config_vars(app)
    assert config.get("DJANGO_DEBUG") == "0", "DEBUG must be off on Heroku"
    # The add-ons' config vars. Heroku Postgres's URL carries a password (trust auth ignores this one).
    db_password = urllib.parse.quote(os.environ.get("PGPASSWORD", "unused"), safe="")
    config["DATABASE_URL"] = f"postgres://{PG_USER}:{db_password}@{PG_HOST}:{PG_PORT}/{postgres_database}"
    config["REDIS_URL"] = f"rediss://127.0.0.1:{key_value_store.port}"  # Heroku's form: rediss://, no query

    python_home, build_times = build(app, logs, config)
    timings.update(build_times)
    dyno_env = {
        "HOME": str(app),
        "LANG": "C.UTF-8",
        "PATH": f"{python_home / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "true",
        **config,
    }

    step = time.monotonic()
    release = subprocess.run(
        ["sh", "-c", processes["release"]],
        cwd=app,
        env={**dyno_env, "DYNO": "release.1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    (logs / "release.log").write_text(release.stdout + release.stderr)
    assert release.returncode == 0, release.stdout + release.stderr
    timings["release"] = time.monotonic() - step
    # The release migrated PostgreSQL (not a SQLite file in the slug).
    assert int(psql("SELECT count(*) FROM django_migrations", "-d", postgres_database)) > 0
    assert int(psql("SELECT count(*) FROM chat_message", "-d", postgres_database)) == 0
    assert not list(app.glob("**/*.sqlite3")), "the release wrote a SQLite file"

    port = free_port()
    host = f"heroku-like-{uuid.uuid4().hex[:8]}.herokuapp.com"
    dynos: dict[str, Dyno] = {}
    try:
        step = time.monotonic()
        dynos["web"] = Dyno("web.1", processes["web"], app, {**dyno_env, "PORT": str(port), "DYNO": "web.1"}, logs)
        # A worker dyno gets a PORT too; it must not need it.
        dynos["worker"] = Dyno(
            "worker.1", processes["worker"], app, {**dyno_env, "PORT": str(free_port()), "DYNO": "worker.1"}, logs
        )
        for dyno in dynos.values():
            dyno.wait_for("Listening on", START_TIMEOUT)
        dynos["web"].wait_for_port(port)
        timings["dynos up"] = time.monotonic() - step

        step = time.monotonic()
        # Chromium resolves the app's herokuapp.com name to this machine: Host and Origin are that name.
        flags = [*browser_support.FLAGS, f"--host-resolver-rules=MAP {host} 127.0.0.1", "--no-proxy-server"]
        monkeypatch.setattr(browser_support, "FLAGS", flags)
        target = HerokuURL(host, port)
        with browser_support.Browser() as browser:
            first, second = open_room(browser, target, "heroku"), open_room(browser, target, "heroku")
            say(first, "ada", "sent through web.1 and worker.1")
            log_has(second, "ada: sent through web.1 and worker.1")
            say(second, "bob", "received on PostgreSQL")
            log_has(first, "bob: received on PostgreSQL")
            first.goto(f"{target.url}/chat/heroku/")  # a reload: the history comes from the database
            first.wait_for("document.getElementById('status').textContent === 'open'")
            log_has(first, "ada: sent through web.1 and worker.1")
            log_has(first, "bob: received on PostgreSQL")
            assert first.console_errors() == [] and second.console_errors() == []
        timings["browser"] = time.monotonic() - step
        stored = psql("SELECT author || ': ' || text FROM chat_message ORDER BY id", "-d", postgres_database)
        assert stored.splitlines() == ["ada: sent through web.1 and worker.1", "bob: received on PostgreSQL"]
        client = key_value_store.client()
        try:
            assert client.keys(f"{config['CHANNELS_PREFIX']}*"), "the dynos' layer wrote nothing to the add-on's Redis"
        finally:
            client.close()

        # `heroku run python example/manage.py createsuperuser`, then the login form from the https page.
        step = time.monotonic()
        password = secrets.token_urlsafe(12)
        one_off = subprocess.run(
            ["sh", "-c", "python example/manage.py createsuperuser --noinput --username admin --email a@example.com"],
            cwd=app,
            env={**dyno_env, "DYNO": "run.1", "DJANGO_SUPERUSER_PASSWORD": password},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert one_off.returncode == 0, one_off.stdout + one_off.stderr
        assert admin_login_through_the_router(port, host, "admin", password) == (302, "/admin/")
        timings["admin login"] = time.monotonic() - step

        # `heroku ps:stop` / a restart: SIGTERM to every process of the dyno, SIGKILL 30 s later.
        step = time.monotonic()
        for dyno in dynos.values():
            dyno.send_signal(signal.SIGTERM)
        for dyno in dynos.values():
            dyno.wait_or_kill(DYNO_STOP_GRACE)
            assert not dyno.killed, f"{dyno.label} ignored SIGTERM for {DYNO_STOP_GRACE:g}s:\n{dyno.output()}"
        timings["dyno stop"] = time.monotonic() - step
        for dyno in dynos.values():
            assert "Traceback" not in dyno.output(), dyno.output()
    finally:
        for dyno in dynos.values():
            dyno.close()
        shutil.rmtree(app, ignore_errors=True)  # the slug and its .heroku/python
    timings["total"] = time.monotonic() - started
    print("heroku-like timings (s): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items()))
