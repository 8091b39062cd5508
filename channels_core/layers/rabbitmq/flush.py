"""`flush`: delete every queue of the prefix, found through the registry (AMQP cannot list queues)."""

from __future__ import annotations

from .queues import registry_arguments, registry_name


def flush_prefix(channel, prefix: str, queue_expiry: float) -> int:
    """Delete every queue named in `prefix`'s registry, then the registry; the number of queues deleted.

    Draining the registry with `basic.get` ends when it is empty: a bounded
    read of a finished list, not a polling loop. A queue declared by another
    process while this runs registers itself again afterwards, as it should.
    """
    registry = registry_name(prefix)
    # Declared first (same arguments as everyone's), so a prefix that never declared anything is no error.
    channel.queue_declare(registry, durable=False, arguments=registry_arguments(queue_expiry))
    names: set[str] = set()
    while True:
        method, _, body = channel.basic_get(registry, auto_ack=True)
        if method is None:
            break
        name = body.decode("utf8", "replace")
        if name.startswith(prefix) and name != registry:
            names.add(name)
    for name in sorted(names):
        channel.queue_delete(name)
    channel.queue_delete(registry)
    return len(names)
