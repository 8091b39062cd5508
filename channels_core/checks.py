"""System checks: each `CHANNEL_LAYERS` mistake reported by `manage.py check` with an id."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .port.table import BACKENDS as _PORTED_BACKENDS  # Channels 1.x backends and their homes: one table


@checks.register("channels")
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001 no/unknown BACKEND, E002 no ROUTING, E003 bad routing (unimportable, bad regex, bad consumer),
    E004 CONFIG the backend rejects, E005 CHANNEL_LAYERS is not a dict."""
    from .shadowing import shadowed_packages

    if "routing" in shadowed_packages():
        return []  # E006 says why; importing routing here would load the project's module
    from routing import Router
    from routing.router import RoutingError

    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is None:
        return []
    if not isinstance(layers, dict):
        return [checks.Error("CHANNEL_LAYERS must be a dict of aliases", id="channels_core.E005")]
    errors: list[checks.CheckMessage] = []
    for alias, config in layers.items():
        where = f"CHANNEL_LAYERS[{alias!r}]"
        if not isinstance(config, dict):
            errors.append(checks.Error(f"{where} must be a dict", id="channels_core.E005"))
            continue
        backend = config.get("BACKEND")
        backend_class = None
        if not backend:
            errors.append(
                checks.Error(
                    f"{where} has no BACKEND",
                    hint="e.g. 'channels_core.layers.RedisChannelLayer'",
                    id="channels_core.E001",
                )
            )
        else:
            try:
                backend_class = import_string(backend)
            except ImportError as exc:
                errors.append(
                    checks.Error(
                        f"{where}['BACKEND'] = {backend!r} cannot be imported: {exc}",
                        hint=_backend_hint(backend),
                        id="channels_core.E001",
                    )
                )
        if backend_class is not None:
            rejections: set[str] = set()
            # Without a TEST_CONFIG the test layer is CONFIG's; one copied from CONFIG repeats its mistakes.
            for key in ("CONFIG", "TEST_CONFIG") if "TEST_CONFIG" in config else ("CONFIG",):
                try:
                    layer = backend_class(**(config.get(key) or {}))
                except (TypeError, ValueError, ImportError) as exc:
                    if str(exc) not in rejections:
                        rejections.add(str(exc))
                        errors.append(
                            checks.Error(f"{where}['{key}'] is rejected by {backend}: {exc}", id="channels_core.E004")
                        )
                else:
                    close = getattr(layer, "close", None)
                    if close:
                        close()
        if "ROUTING" not in config:
            errors.append(
                checks.Error(
                    f"{where} has no ROUTING", hint="e.g. 'myproject.routing.channel_routing'", id="channels_core.E002"
                )
            )
        else:
            try:
                Router(config["ROUTING"])
            except RoutingError as exc:
                errors.append(checks.Error(f"{where}['ROUTING']: {exc}", id="channels_core.E003"))
            except Exception as exc:
                errors.append(
                    checks.Error(
                        f"{where}['ROUTING'] cannot be loaded: {type(exc).__name__}: {exc}", id="channels_core.E003"
                    )
                )
    return errors


@checks.register("channels", deploy=True)
def check_layer_stores(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E007, `check --deploy` only (it connects): a layer's store refuses its CONFIG, e.g. a Redis db index
    out of range or a wrong password. An unreachable store is not reported: it may only be down right now."""
    from .asgi import InvalidChannelLayerError, channel_layers

    layers = getattr(settings, "CHANNEL_LAYERS", None)
    errors: list[checks.CheckMessage] = []
    for alias in layers if isinstance(layers, dict) else ():
        try:
            wrapper = channel_layers.make_backend(alias)
        except Exception:
            continue  # check_channel_layers reports it
        try:
            wrapper.check_store()
        except InvalidChannelLayerError as exc:
            errors.append(checks.Error(str(exc), id="channels_core.E007"))
        finally:
            close = getattr(wrapper.channel_layer, "close", None)
            if close:
                close()
    return errors


@checks.register("channels")
def check_runserver_override(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001: another app's `runserver` (usually django.contrib.staticfiles') wins over channels_core's.

    Django takes each management command from the first app in INSTALLED_APPS
    that has it, so channels_core must come before django.contrib.staticfiles.
    """
    from django.core.management import get_commands

    provider = get_commands().get("runserver")
    if provider in (None, "channels_core"):
        return []
    return [
        checks.Warning(
            f"`manage.py runserver` is {provider}'s, not channels_core's: it serves Django through WSGI only "
            "(no WebSockets, no worker threads)",
            hint=f"List 'channels_core' before {provider!r} in INSTALLED_APPS.",
            id="channels_core.W001",
        )
    ]


@checks.register("channels")
def check_shadowed_packages(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E006: a project module hides one of the top-level packages this distribution installs.

    `manage.py`'s directory comes first on `sys.path`, so a project-root
    `routing.py` (or a `worker` app) is imported instead of ours.
    """
    from .shadowing import shadowed_packages

    errors = []
    for name, path in shadowed_packages().items():
        if name == "routing":
            hint = (
                "Rename it (e.g. to channel_routing.py, and ROUTING to match) or move it into your project "
                "package, and import the helpers from channels_core: 'from channels_core import route'."
            )
        else:
            hint = f"Rename your {name!r} module or app; the name is taken by a package channels-core installs."
        errors.append(
            checks.Error(
                f"{path} shadows the {name!r} package of channels-core: 'import {name}' loads it instead",
                hint=hint,
                id="channels_core.E006",
            )
        )
    return errors


_OUR_LAYERS = (
    "RedisChannelLayer (one Redis, client-side shards, redis+sentinel:// or redis+cluster:// URLs), "
    "RedisSentinelChannelLayer, RedisClusterChannelLayer, RabbitMQChannelLayer, IPCChannelLayer, "
    "InMemoryChannelLayer"
)


def _backend_hint(backend: str) -> str:
    """What to write instead of a BACKEND that cannot be imported."""
    replacement = _PORTED_BACKENDS.get(backend)
    if replacement:
        return f"Channels 1.x's {backend} is {replacement} here"
    return f"The layers in channels_core.layers: {_OUR_LAYERS}"
