"""`CHANNEL_LAYERS` turned into layer objects: the manager, the wrapper with its router, asgi.py's helper."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import DEFAULT_CHANNEL_LAYER
from .layers.errors import LayerConfigurationError, LayerConnectionError

logger = logging.getLogger("channels_core")


class InvalidChannelLayerError(ValueError):
    """A `CHANNEL_LAYERS` entry is missing a key, names something that cannot be imported, or is refused."""


class ChannelLayerManager:
    """Builds layers from `CHANNEL_LAYERS` lazily, one per alias, wrapped with their router.

    Each layer is built from its alias's `CONFIG`; after `use_test_config()`,
    from its `TEST_CONFIG` (or `CONFIG` when it has none).
    """

    def __init__(self) -> None:
        self.backends: dict[str, ChannelLayerWrapper] = {}
        self.config_key = "CONFIG"
        """The entry of `CHANNEL_LAYERS[alias]` that `manager[alias]` builds from: CONFIG or TEST_CONFIG."""

    @property
    def configs(self) -> dict[str, dict]:
        return getattr(settings, "CHANNEL_LAYERS", {})

    def make_backend(self, name: str) -> ChannelLayerWrapper:
        return self._make(name, "CONFIG")

    def make_test_backend(self, name: str) -> ChannelLayerWrapper:
        return self._make(name, "TEST_CONFIG")

    def use_test_config(self) -> None:
        """From now on, build each alias's layer from its `TEST_CONFIG` (or `CONFIG` when it has none).

        For the interface server and workers a `ChannelLiveServerTestCase`
        starts: they must serve the layer the test uses. Layers built before
        the call keep their settings. Logged, because it changes where every
        message of the process goes.
        """
        if self.config_key == "TEST_CONFIG":
            return
        self.config_key = "TEST_CONFIG"
        logger.info("Channel layers are built from TEST_CONFIG (or CONFIG where there is none) from now on")

    def _make(self, name: str, config_key: str) -> ChannelLayerWrapper:
        try:
            config = self.configs[name]
        except KeyError:
            raise InvalidChannelLayerError(f"No channel layer named {name!r} in CHANNEL_LAYERS") from None
        for key in ("BACKEND", "ROUTING"):
            if key not in config:
                raise InvalidChannelLayerError(f"CHANNEL_LAYERS[{name!r}] has no {key}")
        try:
            backend_class = import_string(config["BACKEND"])
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}]['BACKEND'] = {config['BACKEND']!r} cannot be imported: {exc}"
            ) from None
        # Without a TEST_CONFIG the test layer is built from CONFIG: messages must name what was used.
        used_key = config_key if config_key in config else "CONFIG"
        setting = f"CHANNEL_LAYERS[{name!r}]['{used_key}']"
        try:
            layer = backend_class(**(config.get(used_key) or {}))
        except (TypeError, ValueError) as exc:
            raise InvalidChannelLayerError(f"{setting} is wrong: {exc}") from None
        return ChannelLayerWrapper(layer, name, config["ROUTING"], setting)

    def __getitem__(self, key: str) -> ChannelLayerWrapper:
        if key not in self.backends:
            self.backends[key] = self._make(key, self.config_key)
        return self.backends[key]

    def __contains__(self, key: str) -> bool:
        return key in self.configs

    def set(self, key: str, layer: ChannelLayerWrapper | None) -> ChannelLayerWrapper | None:
        """Swap the layer of an alias (tests); returns the old one."""
        old = self.backends.get(key)
        if layer is None:
            self.backends.pop(key, None)
        else:
            self.backends[key] = layer
        return old


class ChannelLayerWrapper:
    """A layer plus its alias and router; attribute access falls through to the layer."""

    def __init__(self, channel_layer: Any, alias: str, routing: Any, setting: str | None = None) -> None:
        self.channel_layer = channel_layer
        self.alias = alias
        self.routing = routing
        self._router = None
        self.setting = setting or f"CHANNEL_LAYERS[{alias!r}]"
        """The settings the layer was built from, for messages: CHANNEL_LAYERS['default']['CONFIG']."""

    def check_store(self) -> None:
        """Stop a process at start when the layer's store refuses its settings (a Redis db index out of range).

        Raises InvalidChannelLayerError naming the setting. An unreachable
        store passes: processes wait for it to come back.
        """
        ping = getattr(self.channel_layer, "ping", None)
        if ping is None:
            return
        try:
            ping()
        except LayerConfigurationError as exc:
            raise InvalidChannelLayerError(f"{self.setting} cannot be used: {exc}") from None
        except LayerConnectionError:
            pass

    @property
    def router(self):
        if self._router is None:
            # Here, not at the top: a project module that shadows our `routing` package must
            # reach system check E006, not fail the import of this module.
            from .routing import router_for

            self._router = router_for(self.routing)
        return self._router

    @router.setter
    def router(self, value) -> None:
        self._router = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel_layer, name)

    def local_only(self) -> bool:
        """True when the layer only works inside one process (the in-memory layer)."""
        return bool(getattr(self.channel_layer, "local_only", False))

    def __str__(self) -> str:
        cls = type(self.channel_layer)
        return f"{self.alias} ({cls.__module__}.{cls.__qualname__})"


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> Any:
    """For a project's asgi.py: set up Django and return the raw layer of `alias`.

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
        channel_layer = get_channel_layer()

    then `interface-server myproject.asgi:channel_layer`. A store that refuses
    the layer's settings (a Redis db index out of range) raises here, at start.
    """
    import django

    django.setup(set_prefix=False)
    try:
        wrapper = channel_layers[alias]
        wrapper.check_store()
    except InvalidChannelLayerError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    return wrapper.channel_layer


channel_layers = ChannelLayerManager()
