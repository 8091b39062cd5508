"""`enforce_ordering`: run a WebSocket's messages in the order its client sent them, on any worker.

    @enforce_ordering
    def ws_connect(message): ...

    @enforce_ordering
    @channel_session
    def ws_receive(message): ...

Every message of a socket carries `order` (0 for the connect). The layer
keeps, atomically, which order each socket waits for (the `ordering`
extension, `channels_core.layers.order_book`): the message that is next runs
at once; a later one is parked in the layer; when a message finishes, the
worker that ran it takes the parked message that is now next and runs it
too, through the routing, so nothing spins, nothing is requeued and nothing
is lost. Decorate the connect, receive and disconnect consumers of the
socket alike (`WebsocketConsumer.strict_ordering = True` does).

When the gap does not move for `timeout` seconds (a worker died holding
the missing message) or `max_parked` messages wait, ordering cannot be
restored: the socket is closed with 1011, the reason is logged, and its
later messages are dropped.

Differences from Channels 1.x: no wait channel and no requeueing (1.x
spun on `__wait__` channels and could lose messages, channels#141/#393);
the counter lives in the layer, not in the channel session.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings

from .consumer_sends import pending_message_store
from .layers.contract import supports
from .layers.order_book import DEAD, PARKED, RUN, STALE, STUCK
from .message import Message
from .utils import find_message

logger = logging.getLogger("channels_core.ordering")

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_PARKED = 1000
CLOSE_CODE = 1011


def _setting(name: str, default: float) -> float:
    return getattr(settings, name, default)


def enforce_ordering(
    func: Callable | None = None,
    slight: bool = False,
    timeout: float | None = None,
    max_parked: int | None = None,
) -> Callable:
    """Run the consumer only in the socket's `order`; see the module docstring.

    `timeout` defaults to `settings.CHANNELS_ORDERING_TIMEOUT` (30 s),
    `max_parked` to `settings.CHANNELS_ORDERING_MAX_PARKED` (1000).
    """
    if slight:
        raise ValueError("Slight ordering is now always on. Please remove `slight=True`.")
    if func is None:
        return functools.partial(enforce_ordering, timeout=timeout, max_parked=max_parked)

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "enforce_ordering")
        if getattr(message, "_order_claimed", False):
            # Released by the worker running the previous message: already claimed.
            return func(*args, **kwargs)
        order, reply_channel, layer = _ordering_of(message)
        wait = timeout if timeout is not None else _setting("CHANNELS_ORDERING_TIMEOUT", DEFAULT_TIMEOUT)
        limit = max_parked if max_parked is not None else _setting("CHANNELS_ORDERING_MAX_PARKED", DEFAULT_MAX_PARKED)
        state = layer.order_claim(reply_channel.name, order, message.channel.name, message.content, wait, limit)
        if state == PARKED:
            return None
        if state == STALE:
            logger.warning("Dropped message %d on %s for %s: already handled", order, message.channel, reply_channel)
            return None
        if state == DEAD:
            logger.debug("Dropped message %d for %s: its ordering was given up", order, reply_channel)
            return None
        if state == STUCK:
            logger.error(
                "Closing %s: message %d on %s arrived, but the socket has waited more than %ss for an earlier one "
                "(or %d are parked); ordering cannot be restored (a worker may have died holding it, or the "
                "connect consumer does not use enforce_ordering)",
                reply_channel,
                order,
                message.channel,
                wait,
                limit,
            )
            reply_channel.send({"close": CLOSE_CODE}, immediately=True)
            return None
        if state != RUN:
            raise RuntimeError(f"the channel layer answered {state!r} to an ordering claim")
        return _run_in_order(func, message, args, kwargs, order, reply_channel, layer)

    return inner


def _ordering_of(message: Any) -> tuple[int, Any, Any]:
    order = message.content.get("order")
    if not isinstance(order, int) or isinstance(order, bool):
        raise ValueError(
            f"enforce_ordering needs an integer `order` key in the message on {message.channel}; "
            "only WebSocket messages carry one"
        )
    if message.reply_channel is None:
        raise ValueError(f"enforce_ordering needs a reply_channel (message on {message.channel})")
    layer = message.channel_layer
    if not supports(layer, "ordering"):
        raise NotImplementedError(f"enforce_ordering needs a layer with the 'ordering' extension, not {layer}")
    return order, message.reply_channel, layer


def _run_in_order(
    func: Callable, message: Any, args: tuple, kwargs: dict, order: int, reply_channel: Any, layer: Any
) -> Any:
    """Run `func(*args, **kwargs)` (for `message`), then every parked message it releases; re-raise the first's error.

    A failing consumer still advances the order (one bad frame must not
    stall its socket), and the messages it releases still run.
    """
    result = None
    failure: BaseException | None = None
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        failure = exc
    released = _advance(layer, reply_channel, message.channel.name, order)
    while released is not None:
        channel, content = released
        current = Message(content, channel, layer)
        current._order_claimed = True
        try:
            _dispatch(current)
        except Exception:
            logger.exception(
                "Consumer failed on released message %s on %s from %s", content["order"], channel, reply_channel
            )
        released = _advance(layer, reply_channel, channel, content["order"])
    if failure is not None:
        raise failure
    return result


def _advance(layer: Any, reply_channel: Any, channel: str, order: int) -> tuple[str, dict] | None:
    # What this message's consumer sent goes out before the next message can run anywhere,
    # so the socket's replies keep its order too.
    if pending_message_store.active:
        pending_message_store.flush()
        pending_message_store.start()
    if channel == "websocket.disconnect":
        layer.order_forget(reply_channel.name)
        return None
    return layer.order_advance(reply_channel.name, order)


def _dispatch(message: Any) -> None:
    router = getattr(message.channel_layer, "router", None)
    if router is None:
        raise RuntimeError(f"cannot run the released message on {message.channel}: the layer has no router")
    match = router.match(message)
    if match is None:
        logger.error("No route matches the released message on %s; dropped", message.channel)
        return
    consumer, kwargs = match
    consumer(message, **kwargs)
