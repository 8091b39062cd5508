"""A wrong Redis address or database, as `manage.py check`, `runworker` and `interface-server` report it.

Each runs as a real process on the example project (whose settings read
`REDIS_URL`, as docs/topics/deploying.md's recipe does) or on a settings module
of the test's own, and must say the problem once, name the setting the value
came from, and give a hint that is right.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels_core.test.processes import ChildProcess, free_port
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"
E004 = (
    "?: (channels_core.E004) CHANNEL_LAYERS['default']['CONFIG'] is rejected by "
    "channels_core.layers.RedisChannelLayer: "
)
EXIT_TIMEOUT = 10.0


def example_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DJANGO_", "REDIS_URL"))}
    env.update(
        REDIS_URL=redis_url,
        CHANNELS_PREFIX="settings-messages:",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def example_manage(tmp_path: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        cwd=ROOT,
        env=example_env(tmp_path, redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


# -- manage.py check: a REDIS_URL that is no address -------------------------------------------


@pytest.mark.parametrize(
    "redis_url, problem",
    [
        ("redis//127.0.0.1:16379", "is not a URL: write 'redis://127.0.0.1:16379' or a (host, port) pair"),
        ("redis:/127.0.0.1:16379", "is not a URL: write 'redis://127.0.0.1:16379' or a (host, port) pair"),
        ("rediss//127.0.0.1:16379", "is not a URL: write 'rediss://127.0.0.1:16379' or a (host, port) pair"),
        ("redis:127.0.0.1:16379", "is not a URL: write 'redis://127.0.0.1:16379' or a (host, port) pair"),
        ("127.0.0.1:16379", "is not a URL: write 'redis://127.0.0.1:16379' or a (host, port) pair"),
        ("redis:16379", "is not a URL: write 'redis://redis:16379' or a (host, port) pair"),
        ("redis://", "names no host (is a variable in it empty?): write one, e.g. 'redis://localhost:6379/0'"),
        ("redis:///0", "names no host (is a variable in it empty?): write one, e.g. 'redis://localhost:6379/0'"),
        ("redis://:6379", "names no host (is a variable in it empty?): write one, e.g. 'redis://localhost:6379/0'"),
    ],
)
def test_check_reports_a_bad_redis_url_once_with_the_right_hint(tmp_path, redis_url, problem):
    result = example_manage(tmp_path, redis_url, "check")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert lines_with(out, "channels_core.E004") == [f"{E004}hosts[0] {redis_url!r} {problem}"], out
    assert "TEST_CONFIG" not in out
    assert "System check identified 1 issue" in out


def test_check_names_redis_url_when_config_has_no_hosts_and_not_a_copied_test_config(tmp_path):
    # CONFIG without hosts reads $REDIS_URL; TEST_CONFIG copies CONFIG with its own prefix.
    (tmp_path / "redis_url_settings.py").write_text(
        "from tests.project.settings import *  # noqa\n"
        "CHANNEL_LAYERS = {'default': {\n"
        "    'BACKEND': 'channels_core.layers.RedisChannelLayer',\n"
        "    'CONFIG': {'prefix': 'app:'},\n"
        "    'ROUTING': 'tests.project.routing.channel_routing',\n"
        "}}\n"
        "CHANNEL_LAYERS['default']['TEST_CONFIG'] = {**CHANNEL_LAYERS['default']['CONFIG'], 'prefix': 'test:'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DJANGO_"))}
    env.update(
        REDIS_URL="redis//127.0.0.1:16379",
        DJANGO_SETTINGS_MODULE="redis_url_settings",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    )
    result = subprocess.run(
        [sys.executable, "-m", "django", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert lines_with(out, "channels_core.E004") == [
        f"{E004}$REDIS_URL 'redis//127.0.0.1:16379' is not a URL: write 'redis://127.0.0.1:16379'"
    ], out
    assert "TEST_CONFIG" not in out


# -- a db index the server does not have ----------------------------------------------------------


@pytest.fixture
def four_databases():
    """A private redis-server with `databases 4` (0-3)."""
    with RedisServer(extra_args=["--databases", "4"]) as server:
        yield server


def db_message(port: int, db: int, count: int) -> str:
    return (
        f"CHANNEL_LAYERS['default']['CONFIG'] cannot be used: Redis at 127.0.0.1:{port} has {count} databases "
        f"(0-{count - 1}): db {db} of hosts[0] (redis://127.0.0.1:{port}/{db}) does not exist; "
        f"use 0-{count - 1}, or raise `databases` in the server's redis.conf"
    )


def test_check_deploy_connects_and_reports_the_db_index_once(tmp_path, four_databases):
    url = f"redis://127.0.0.1:{four_databases.port}/7"
    result = example_manage(tmp_path, url, "check", "--deploy", "--tag", "channels")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert lines_with(out, "databases") == [f"?: (channels_core.E007) {db_message(four_databases.port, 7, 4)}"], out
    # Plain `check` (also run by runworker and runserver) never connects: a server that is down costs nothing.
    plain = example_manage(tmp_path, url, "check")
    assert plain.returncode == 0 and "E007" not in plain.stdout + plain.stderr


def run_until_exit(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str, float]:
    """Run a process that must exit by itself; returns (exit code, output, seconds it took)."""
    start = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = process.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"{args[1:3]} still running after {EXIT_TIMEOUT}s:\n{out}") from None
    return process.returncode, out, time.monotonic() - start


@pytest.mark.parametrize("options", [[], ["--threads", "2"], ["--processes", "2"]])
def test_runworker_exits_at_once_on_a_db_index_out_of_range(tmp_path, four_databases, options):
    env = example_env(tmp_path, f"redis://127.0.0.1:{four_databases.port}/7")
    code, out, _ = run_until_exit([sys.executable, str(EXAMPLE / "manage.py"), "runworker", *options], env)
    assert code == 1, out
    assert lines_with(out, "databases") == [f"CommandError: {db_message(four_databases.port, 7, 4)}"], out


def test_runworker_stops_when_a_restarted_server_lost_its_db(tmp_path, private_redis):
    env = example_env(tmp_path, f"redis://127.0.0.1:{private_redis.port}/3")
    with ChildProcess(
        [sys.executable, str(EXAMPLE / "manage.py"), "runworker"], label="runworker", cwd=ROOT, env=env
    ) as worker:
        worker.wait_for("Listening on channels", timeout=20)
        private_redis.extra_args = ["--databases", "2"]
        private_redis.restart()
        code = worker.wait(EXIT_TIMEOUT)
        out = worker.output()
    assert code == 1, out
    assert lines_with(out, "databases") == [f"CommandError: {db_message(private_redis.port, 3, 2)}"], out


def test_interface_server_exits_at_start_on_a_db_index_out_of_range(tmp_path, four_databases):
    env = example_env(tmp_path, f"redis://127.0.0.1:{four_databases.port}/7")
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE), str(ROOT)])
    args = [sys.executable, "-m", "interface_server", "example.asgi:channel_layer", "--port", str(free_port())]
    code, out, _ = run_until_exit(args, env)
    assert code != 0, out
    (line,) = lines_with(out, "databases")
    assert line.endswith(db_message(four_databases.port, 7, 4)), out


@pytest.mark.parametrize(
    "password, problem",
    [
        (None, "needs a password and hosts[0] ({url}) gives none: write redis://:PASSWORD@host:port/db"),
        ("wrong", "refuses the credentials of hosts[0] ({url}): invalid username-password pair"),
    ],
)
def test_runworker_exits_at_once_when_redis_refuses_the_credentials(tmp_path, private_redis, password, problem):
    # Retrying cannot fix a password; before, this was logged as "unreachable; retrying" forever.
    client = private_redis.client()
    client.config_set("requirepass", "s3cret")
    client.close()
    credentials = f":{password}@" if password else ""
    env = example_env(tmp_path, f"redis://{credentials}127.0.0.1:{private_redis.port}/0")
    code, out, _ = run_until_exit([sys.executable, str(EXAMPLE / "manage.py"), "runworker"], env)
    assert code == 1, out
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # the label: never the password
    (line,) = lines_with(out, "CommandError")
    assert line.startswith(
        "CommandError: CHANNEL_LAYERS['default']['CONFIG'] cannot be used: "
        f"Redis at 127.0.0.1:{private_redis.port} {problem.format(url=url)}"
    ), out
    assert "wrong" not in out and "unreachable" not in out
