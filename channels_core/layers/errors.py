"""Errors a channel layer raises; also exposed as attributes of every layer."""


class ChannelFull(Exception):
    """The channel is at capacity; the sender decides what that means (503, retry, drop)."""


class MessageTooLarge(Exception):
    """The serialized message is over the layer's size limit (1 MiB)."""


class LayerConnectionError(ConnectionError):
    """The layer's backing store cannot be reached.

    Raised by `send` and non-blocking `receive` during an outage; a blocking
    `receive` keeps retrying instead and returns `(None, None)` if its own
    timeout ends first.
    """


class LayerConfigurationError(Exception):
    """The backing store refuses the layer's settings: a Redis database index it does not have, a wrong password.

    Unlike `LayerConnectionError`, waiting cannot help: processes should stop
    and say so (`runworker` exits with this message).
    """
