"""`flush`: delete every queue of the prefix, found through the registry (AMQP cannot list queues)."""

from __future__ import annotations

from .queues import registry_arguments, registry_name


def flush_prefix(channel, prefix: str, queue_expiry: float) -> int:
    """Delete every queue named in `prefix`'s registry, then the registry; the number of queues deleted.

    Draining the registry with `basic.get` ends when it is empty: a bounded
    read of a finished list, not a polling loop. A process that declares a
    queue while this runs registers it meanwhile, so the registry is drained
    again after each round of deletes, until a drain finds nothing new: only
    then is it deleted. (Deleting it right after the first drain lost such a
    registration, and its queue stayed on the broker, unknown to any later
    flush, until `queue_expiry`.) What is left is the instant between the
    last empty drain and the delete, one round trip wide.
    """
    registry = registry_name(prefix)
    # Declared first (same arguments as everyone's), so a prefix that never declared anything is no error.
    channel.queue_declare(registry, durable=False, arguments=registry_arguments(queue_expiry))
    deleted: set[str] = set()
    for _ in range(_ROUNDS):
        names = _drain(channel, registry, prefix)
        if not names:
            break
        for name in sorted(names):
            channel.queue_delete(name)
        deleted |= names
    channel.queue_delete(registry)
    return len(deleted)


_ROUNDS = 10  # each round follows registrations made during the one before; more means a flood of declares


def _drain(channel, registry: str, prefix: str) -> set[str]:
    names: set[str] = set()
    while True:
        method, _, body = channel.basic_get(registry, auto_ack=True)
        if method is None:
            return names
        name = body.decode("utf8", "replace")
        if name.startswith(prefix) and name != registry:
            names.add(name)
