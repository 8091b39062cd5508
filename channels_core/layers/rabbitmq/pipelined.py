"""Several publishes in flight at once, each confirmed: what `send_many` needs and pika's blocking API lacks.

`BlockingChannel.basic_publish` in confirm mode waits for each confirm
before the next publish, one round trip per message: 10,000 messages take
seconds, longer than a message lives in the conformance suite. This channel
publishes a whole batch, then waits once for every confirm (RabbitMQ
confirms several with one `multiple` ack). Marshalling is done once per
batch where pika would do it per message (the publish method frame is the
same for every message, the content header the same for every body of one
size): pika's own `basic_publish` costs about 100 µs of Python per message,
which made 10,000 take a second. It uses private members of pika 1.x, named
here and nowhere else: the underlying asynchronous channel
(`BlockingChannel._impl`) for confirm mode with our own callback,
`BlockingChannel._flush_output(waiter)`, the blocking adapter's own "process
I/O until this is true" (it returns early if the channel or the connection
closes), and `Connection._output_marshaled_frames` and `_body_max_length`,
which pika's `_send_message` uses to write a message. All exist in pika 1.0
to 1.4; `tests/.../test_rabbitmq_layer.py` fails loudly if one moves.

`coalesce_writes` makes a connection write whatever it has buffered with one
`send()` (pika makes one per frame: three per publish, one per ack), through
the plaintext transport's `_tx_buffers` and `_produce`.
"""

from __future__ import annotations

import pika
import pika.exceptions as pexc
import pika.spec
from pika import frame

_WRITE_SIZE = 1 << 20


class PipelinedChannel:
    """A confirm-mode channel whose `publish_all` waits once for a whole batch of confirms."""

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.channel = connection.channel()
        self._impl = self.channel._impl  # private: see the module docstring
        self._next_tag = 1
        self._acked_up_to = 0
        self._nacked: set[int] = set()
        self._returned = 0
        selected: list[bool] = []
        self._impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True))
        self._impl.add_on_return_callback(self._on_return)
        self.channel._flush_output(lambda: bool(selected))

    def _on_confirm(self, frame) -> None:
        # Confirms come in order; `multiple` covers every tag since the previous confirm.
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            first = self._acked_up_to + 1 if method.multiple else method.delivery_tag
            self._nacked.update(range(first, method.delivery_tag + 1))
        self._acked_up_to = max(self._acked_up_to, method.delivery_tag)

    def _on_return(self, *_args) -> None:
        self._returned += 1

    def publish_all(self, queue: str, bodies: list[bytes], properties: pika.BasicProperties) -> tuple[int, int]:
        """Publish `bodies` to `queue` in order; `(refused, unroutable)` counts once all are confirmed."""
        if not self.channel.is_open:
            raise pexc.ChannelWrongStateError("the batch channel is closed")
        self._nacked.clear()
        self._returned = 0
        connection = self._impl.connection
        number = self._impl.channel_number
        chunk = connection._body_max_length  # private: see the module docstring
        method = frame.Method(number, pika.spec.Basic.Publish(exchange="", routing_key=queue, mandatory=True)).marshal()
        headers: dict[int, bytes] = {}
        first = self._next_tag
        pending: list[bytes] = []
        pending_size = 0
        for body in bodies:
            size = len(body)
            header = headers.get(size)
            if header is None:
                header = headers[size] = frame.Header(number, size, properties).marshal()
            pending += (method, header)
            pending.extend(frame.Body(number, body[i : i + chunk]).marshal() for i in range(0, size, chunk))
            pending_size += size + len(header) + len(method)
            if pending_size > _WRITE_SIZE:
                # One write per MiB: pika's transport makes one send() per frame written, three per message.
                connection._output_marshaled_frames([b"".join(pending)])  # private: see the module docstring
                pending, pending_size = [], 0
        if pending:
            connection._output_marshaled_frames([b"".join(pending)])
        self._next_tag += len(bodies)
        last = self._next_tag - 1
        self.channel._flush_output(lambda: self._acked_up_to >= last)  # private: see the module docstring
        if self._acked_up_to < last:
            raise pexc.StreamLostError("the connection closed before every publish was confirmed")
        return sum(1 for tag in self._nacked if first <= tag <= last), self._returned


def coalesce_writes(connection: pika.BlockingConnection) -> None:
    """Join `connection`'s pending output into one `send()` per write-ready socket (private, see above).

    On loopback a `send()` is the larger part of a small publish's cost on
    the client (the kernel hands the data to the broker within the call),
    and pika buffers each frame apart: a layer receive writes its ack and
    the `basic.qos` that confirms it as two, a publish its three frames. A
    TLS connection is left as it is (its transport writes through the SSL
    layer differently).
    """
    transport = getattr(connection._impl, "_transport", None)
    if type(transport).__name__ != "_AsyncPlaintextTransport":
        return
    buffers = transport._tx_buffers
    produce = transport._produce

    def coalescing_produce() -> None:
        if len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)
        produce()

    transport._produce = coalescing_produce


def send_nowait(channel, methods) -> None:
    """Send AMQP `methods` (each with `nowait=True`: the broker sends no reply) on pika `channel`, in order.

    Private like the rest of this module (`BlockingChannel._impl`, `Channel._send_method`).
    The broker handles a channel's methods in order, so the reply to the
    next synchronous call on `channel` (a confirm, a declare) means these are
    done; if one fails, the broker closes the channel and that call raises.
    One round trip for several declarations where pika's blocking API makes one each.
    """
    impl = channel._impl  # private: see the module docstring
    for method in methods:
        impl._send_method(method)
