"""What `channels_core.port` does to each kind of file, one case at a time (in-process, no subprocess)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from channels_core.port.edits import apply
from channels_core.port.project import port_file


def port(text: str, name: str = "module.py") -> tuple[str, list[str]]:
    """The ported text and the notes (as 'line: message') for one file called `name`."""
    text = textwrap.dedent(text)
    edits, notes = port_file(Path(name), name, text)
    return apply(text, edits), [f"{n.line}: {n.message}" for n in notes]


# -- imports ---------------------------------------------------------------------------------------------


def test_only_the_module_name_changes_and_layout_and_comments_stay():
    new, notes = port(
        """\
        from channels import (  # the 1.x top level
            Group,
            route,  # routing helper
        )
        from channels.auth import channel_session_user_from_http,channel_session_user
        """
    )
    assert new == textwrap.dedent(
        """\
        from channels_core import (  # the 1.x top level
            Group,
            route,  # routing helper
        )
        from channels_core.auth import channel_session_user_from_http,channel_session_user
        """
    )
    assert notes == []


def test_a_split_statement_keeps_its_indentation():
    new, _ = port(
        """\
        def load():
            from channels.management.commands import runworker, rundelay
            return runworker, rundelay
        """
    )
    assert new == textwrap.dedent(
        """\
        def load():
            from channels_core.management.commands import runworker
            from channels_core.delay.management.commands import rundelay
            return runworker, rundelay
        """
    )


def test_a_split_keeps_each_name_with_its_module():
    new, _ = port("from channels.management.commands import runworker, rundelay as delay_command, runserver\n")
    # Grouped by new module, in the order each module first appears.
    assert new == (
        "from channels_core.management.commands import runworker, runserver\n"
        "from channels_core.delay.management.commands import rundelay as delay_command\n"
    )


def test_from_channels_import_group_route_imports_each_name_from_where_the_table_puts_it():
    new, _ = port("from channels import Group, route, Channel\n")
    assert new == "from channels_core import Group, route, Channel\n"
    namespace: dict = {}
    exec(new, namespace)
    routing = importlib.import_module("routing")
    channel = importlib.import_module("channels_core.channel")
    assert namespace["route"] is routing.route
    assert namespace["Group"] is channel.Group


def test_import_as_keeps_its_alias_and_relative_imports_stay():
    new, _ = port(
        """\
        import channels.auth as auth
        import channels.generic.websockets as ws, json
        from . import channels
        from .channels import Group
        from ..routing import channel_routing
        """
    )
    assert new == textwrap.dedent(
        """\
        import channels_core.auth as auth
        import channels_core.generic.websockets as ws, json
        from . import channels
        from .channels import Group
        from ..routing import channel_routing
        """
    )


def test_plain_import_rewrites_its_references_but_not_a_local_called_channels():
    new, notes = port(
        """\
        import channels
        import channels.worker

        everyone = channels.Group("everyone")
        worker_class = channels.worker.Worker


        def subscribe(channels):
            channels.append("chat.receive")
            return channels.Group


        channels_seen = [c for c in ["a"]]
        """
    )
    assert new == textwrap.dedent(
        """\
        import channels_core
        import worker

        everyone = channels_core.Group("everyone")
        worker_class = worker.Worker


        def subscribe(channels):
            channels.append("chat.receive")
            return channels.Group


        channels_seen = [c for c in ["a"]]
        """
    )
    assert notes == []


def test_modules_that_are_gone_are_left_and_reported():
    new, notes = port(
        """\
        from channels.hacks import monkeypatch_django
        from channels import package_checks
        import channels.log
        """
    )
    assert "channels_core" not in new
    assert [n.split(":")[0] for n in notes] == ["1", "2", "3"]
    assert "staticfiles" in notes[0] and "version skew" in notes[1] and "LOGGING" in notes[2]


def test_names_outside_channels_and_channel_names_are_left_alone():
    source = """\
        from channels_core import Group
        from channelsx import thing
        import channels_helpers
        from myapp.channels import send

        Group("channels").send({"text": "channels"})
        CHANNEL = "channels.events"  # a channel name, not a module
        HELP = "Split into channels: see channels.readthedocs.io"
        SETTING = {"channels": ["chat.receive"], "BACKEND_NAME": "channels"}
        """
    new, notes = port(source)
    assert new == textwrap.dedent(source)
    assert notes == []


def test_a_string_naming_1x_code_is_pointed_out_not_changed():
    new, notes = port('patcher = mock.patch("channels.auth.channel_session_user")\n')
    assert new == 'patcher = mock.patch("channels.auth.channel_session_user")\n'
    assert notes == [
        "1: the string 'channels.auth.channel_session_user' names Channels 1.x code; "
        "now: channels_core.auth.channel_session_user"
    ]


# -- settings ---------------------------------------------------------------------------------------------


def test_installed_apps_entries_in_every_form():
    new, _ = port(
        """\
        INSTALLED_APPS = ('django.contrib.auth', 'channels', "channels.delay")
        INSTALLED_APPS += ["channels.apps.ChannelsConfig"]
        INSTALLED_APPS.append('channels')
        settings.INSTALLED_APPS.insert(0, "channels")
        OTHER = ["channels"]
        """
    )
    assert new == textwrap.dedent(
        """\
        INSTALLED_APPS = ('django.contrib.auth', 'channels_core', "channels_core.delay")
        INSTALLED_APPS += ["channels_core.apps.ChannelsConfig"]
        INSTALLED_APPS.append('channels_core')
        settings.INSTALLED_APPS.insert(0, "channels_core")
        OTHER = ["channels"]
        """
    )


def test_channels_moves_above_staticfiles_when_each_sits_on_its_own_line():
    new, notes = port(
        """\
        INSTALLED_APPS = [
            "django.contrib.staticfiles",  # static files
            "channels",
            "chat"
        ]
        """
    )
    assert new == textwrap.dedent(
        """\
        INSTALLED_APPS = [
            "channels_core",
            "django.contrib.staticfiles",  # static files
            "chat"
        ]
        """
    )
    assert notes == []


def test_channels_after_staticfiles_on_one_line_is_reported():
    new, notes = port('INSTALLED_APPS = ["django.contrib.staticfiles", "channels"]\n')
    assert new == 'INSTALLED_APPS = ["django.contrib.staticfiles", "channels_core"]\n'
    assert notes == ["1: INSTALLED_APPS: list 'channels_core' before 'django.contrib.staticfiles'"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("asgi_redis.RedisChannelLayer", "channels_core.layers.RedisChannelLayer"),
        ("asgiref.inmemory.ChannelLayer", "channels_core.layers.InMemoryChannelLayer"),
        ("asgi_ipc.IPCChannelLayer", "channels_core.layers.IPCChannelLayer"),
        ("asgi_rabbitmq.RabbitmqChannelLayer", "channels_core.layers.RabbitMQChannelLayer"),
        ("asgi_redis.RedisSentinelChannelLayer", "channels_core.layers.RedisSentinelChannelLayer"),
    ],
)
def test_backend_strings(old, new):
    ported, notes = port(
        f"""\
        CHANNEL_LAYERS = {{
            "default": {{"BACKEND": '{old}', "ROUTING": "chat.routing.channel_routing"}},
        }}
        CHANNEL_LAYERS["spare"]["BACKEND"] = "{old}"
        TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates"}}]
        """
    )
    assert ported.count(new) == 2 and old not in ported
    assert "django.template.backends.django.DjangoTemplates" in ported
    assert notes == []


def test_a_backend_with_no_counterpart_is_reported():
    new, notes = port('CHANNEL_LAYERS = {"default": {"BACKEND": "asgi_redis.RedisLocalChannelLayer"}}\n')
    assert "asgi_redis.RedisLocalChannelLayer" in new
    assert notes[0].startswith("1: BACKEND 'asgi_redis.RedisLocalChannelLayer' has no counterpart here")


# -- command lines ----------------------------------------------------------------------------------------


def test_procfile_daphne_becomes_interface_server_with_the_same_flags():
    new, notes = port(
        "web: daphne chat.asgi:channel_layer --port $PORT --bind 0.0.0.0 -v2 --websocket_connect_timeout=5"
        " --force-sync\nworker: python manage.py runworker -v2\n",
        "Procfile",
    )
    assert new == (
        "web: interface-server chat.asgi:channel_layer --port $PORT --bind 0.0.0.0 -v2"
        " --websocket-connect-timeout=5\nworker: python manage.py runworker -v2\n"
    )
    assert len(notes) == 1 and notes[0].startswith("1: dropped --force-sync")


def test_shell_scripts_change_daphne_only_where_it_is_run():
    new, _ = port(
        """\
        #!/bin/bash
        pip install daphne asgi_redis
        echo "starting daphne"
        # daphne chat.asgi:channel_layer (old)
        cd /app && SETTINGS=c exec /venv/bin/daphne -u /tmp/d chat.asgi:channel_layer
        python3 -m daphne --websocket_timeout 60 chat.asgi:channel_layer &
        """,
        "run.sh",
    )
    assert new == textwrap.dedent(
        """\
        #!/bin/bash
        pip install daphne asgi_redis
        echo "starting daphne"
        # daphne chat.asgi:channel_layer (old)
        cd /app && SETTINGS=c exec /venv/bin/interface-server -u /tmp/d chat.asgi:channel_layer
        python3 -m interface_server --websocket-timeout 60 chat.asgi:channel_layer &
        """
    )


def test_dockerfile_compose_and_systemd_forms():
    docker, _ = port(
        'RUN pip install daphne\nCMD ["daphne", "-b", "0.0.0.0", "--websocket_timeout", "60", '
        '"app.asgi:channel_layer"]\n',
        "Dockerfile",
    )
    assert docker == (
        'RUN pip install daphne\nCMD ["interface-server", "-b", "0.0.0.0", "--websocket-timeout", "60", '
        '"app.asgi:channel_layer"]\n'
    )
    compose, _ = port(
        "services:\n  web:\n    command: daphne -b 0.0.0.0 app.asgi:channel_layer\n", "docker-compose.yml"
    )
    assert "command: interface-server -b 0.0.0.0 app.asgi:channel_layer" in compose
    unit, _ = port("[Service]\nExecStart=/srv/venv/bin/daphne -p 9000 app.asgi:channel_layer\n", "chat.service")
    assert "ExecStart=/srv/venv/bin/interface-server -p 9000" in unit


# -- templates --------------------------------------------------------------------------------------------


def test_bridge_static_path_changes_and_its_global_name_stays():
    source = textwrap.dedent(
        """\
        <script src="{% static "channels/js/websocketbridge.js" %}"></script>
        <script src="/static/channels/js/websocketbridge.js"></script>
        <script src="/static/my_channels/js/websocketbridge.js"></script>
        <script>var bridge = new channels.WebSocketBridge(); // channels/js/ is where 1.x kept it</script>
        """
    )
    new, _ = port(source, "base.html")
    assert new == source.replace('"channels/js/websocketbridge.js"', '"channels_core/js/websocketbridge.js"').replace(
        "/static/channels/js/", "/static/channels_core/js/"
    )


# -- what is left to a person ----------------------------------------------------------------------------


def test_django_upgrade_items_are_reported_with_their_lines():
    _, notes = port(
        """\
        from django.conf.urls import url, include
        from django.core.urlresolvers import reverse
        from django.shortcuts import render_to_response
        from django.db import models

        MIDDLEWARE_CLASSES = []


        class Post(models.Model):
            blog = models.ForeignKey("Blog")
            owner = models.OneToOneField("auth.User", models.CASCADE)
            editor = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True)

            def __unicode__(self):
                return unicode(self.blog)


        def view(request):
            if request.user.is_authenticated():
                return render_to_response("x.html")
        """
    )
    assert [n.split(":", 1)[0] for n in notes] == ["1", "2", "3", "6", "10", "14", "15", "19"]
    text = "\n".join(notes)
    for expected in (
        "django.urls.re_path()",
        "import from django.urls",
        "render(request, template, context)",
        "MIDDLEWARE_CLASSES is ignored",
        "ForeignKey needs on_delete",
        "__unicode__",
        "unicode is Python 2's: use str",
        "is_authenticated is a property",
    ):
        assert expected in text, expected


def test_python_2_syntax_is_reported_and_the_file_left():
    source = "from channels import Group\nprint 'hello'\n"
    new, notes = port(source)
    assert new == source
    assert notes[0].startswith("2: not Python 3")


# -- the command line -------------------------------------------------------------------------------------


def test_check_and_diff_change_nothing_and_a_second_run_finds_nothing(tmp_path):
    (tmp_path / "consumers.py").write_text("from channels import Group\n")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "channels_core.port", str(tmp_path), *args], capture_output=True, text=True
        )

    check = run("--check")
    assert (check.returncode, check.stdout) == (1, f"would rewrite {tmp_path / 'consumers.py'}\n")
    diff = run("--diff")
    assert diff.returncode == 0
    assert "-from channels import Group\n+from channels_core import Group\n" in diff.stdout
    assert (tmp_path / "consumers.py").read_text() == "from channels import Group\n"
    assert run().returncode == 0
    assert (tmp_path / "consumers.py").read_text() == "from channels_core import Group\n"
    again = run("--check")
    assert (again.returncode, again.stdout) == (0, "")
    gone = subprocess.run(
        [sys.executable, "-m", "channels_core.port", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert gone.returncode == 2 and "no such file" in gone.stderr


def test_a_routing_module_next_to_manage_py_is_reported(tmp_path):
    from channels_core.port import port_tree

    (tmp_path / "manage.py").write_text("")
    (tmp_path / "routing.py").write_text("from channels import route\n")
    result = port_tree(tmp_path, "proj")
    assert [c.new for c in result.changes] == ["from channels_core import route\n"]
    assert [str(n) for n in result.notes] == [
        "proj/routing.py:1: this 'routing' next to manage.py hides channels-core's 'routing' package "
        "(check channels_core.E006): rename it or move it into your project package"
    ]


def test_a_multi_line_split_keeps_the_layout_and_each_names_comment():
    new, _ = port(
        """\
        from channels.management.commands import (  # commands
            runworker,  # the worker
            rundelay,
            runserver
        )
        """
    )
    assert new == textwrap.dedent(
        """\
        from channels_core.management.commands import (  # commands
            runworker,  # the worker
            runserver,
        )
        from channels_core.delay.management.commands import (
            rundelay,
        )
        """
    )
