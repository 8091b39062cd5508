"""How channels map onto RabbitMQ queues, and the queue arguments that give the contract's semantics.

One classic queue per channel queue name (`names.list_name`): a normal or
`?` channel is its own queue, and every `prefix!local` channel of one
process shares the queue `prefix!` (the full name travels in a header).
The arguments do the contract's work in the broker:

- `x-message-ttl` = `expiry`: every message of the layer has the same
  lifetime, so a queue-wide TTL is the per-message TTL, and RabbitMQ drops
  expired messages from the head eagerly (a per-message `expiration`
  property is only checked when a message reaches the head).
- `x-max-length` = the channel's capacity with `x-overflow: reject-publish`:
  a publish over capacity is nacked, which the sender (in confirm mode) sees
  as `ChannelFull`. Only *ready* messages count, as in RabbitMQ; messages a
  receiving process has been sent but not yet taken (at most its prefetch,
  see `.receiver`) do not.
- `x-expires`: a queue nobody declares or consumes for `queue_expiry`
  seconds is deleted by the broker, so the `?` channels of finished
  requests do not pile up. Senders and receivers re-declare the queues they
  use every third of that time, so a queue in use never expires; it is at
  least twice `expiry`, so any message in an expired queue had expired too.

Every declaration also appends the queue's name to the prefix's *registry*
queue (its messages live as long as the queue could), which is how `flush`
finds every queue of the prefix: AMQP 0-9-1 cannot list queues.
"""

from __future__ import annotations

REGISTRY = "#registry"
"""Appended to the prefix: the registry queue (`#` is not allowed in channel names, so no channel collides)."""


def queue_name(prefix: str, list_name: str) -> str:
    """The AMQP queue of channel queue `list_name`."""
    return prefix + list_name


def is_single_reader_queue(prefix: str, queue: str) -> bool:
    """True for a `?` channel's queue or a process queue (`prefix!`): one process reads it."""
    return queue.endswith("!") or "?" in queue[len(prefix) :]


def registry_name(prefix: str) -> str:
    return prefix + REGISTRY


def queue_arguments(expiry: float, capacity: int, queue_expiry: float, dead_letter_exchange: str = "") -> dict:
    """The `x-` arguments of a channel queue (every declarer must pass the same, or the broker refuses).

    `dead_letter_exchange` receives what expires in the queue (or is
    rejected by a receiver because it expired in its buffer): the layer's
    `#evict` exchange, which keeps only group copies (`.groups`).
    """
    arguments = {
        "x-message-ttl": int(expiry * 1000),
        "x-max-length": int(capacity),
        "x-overflow": "reject-publish",
        "x-expires": int(queue_expiry * 1000),
    }
    if dead_letter_exchange:
        arguments["x-dead-letter-exchange"] = dead_letter_exchange
    return arguments


def registry_arguments(queue_expiry: float) -> dict:
    """The registry keeps each entry as long as the queue it names could live without a renewal."""
    return {"x-message-ttl": int(queue_expiry * 1000)}
