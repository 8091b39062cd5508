"""Several publishes in flight at once, each confirmed: what `send_many` needs and pika's blocking API lacks.

`BlockingChannel.basic_publish` in confirm mode waits for each confirm
before the next publish, one round trip per message: 10,000 messages take
seconds, longer than a message lives in the conformance suite. This channel
publishes a whole batch, then waits once for every confirm (RabbitMQ
confirms several with one `multiple` ack). It uses two private members of
pika 1.x, named here and nowhere else: the underlying asynchronous channel
(`BlockingChannel._impl`) for confirm mode with our own callback, and
`BlockingChannel._flush_output(waiter)`, the blocking adapter's own
"process I/O until this is true" (it returns early if the channel or the
connection closes). Both exist in pika 1.0 to 1.3; a pika 2 may move them.
"""

from __future__ import annotations

import pika
import pika.exceptions as pexc
import pika.spec


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

    def publish_all(self, queue: str, messages: list[tuple[bytes, pika.BasicProperties]]) -> tuple[int, int]:
        """Publish `messages` to `queue` in order; `(refused, unroutable)` counts once all are confirmed."""
        self._nacked.clear()
        self._returned = 0
        first = self._next_tag
        for body, properties in messages:
            self._impl.basic_publish("", queue, body, properties, mandatory=True)
        self._next_tag += len(messages)
        last = self._next_tag - 1
        self.channel._flush_output(lambda: self._acked_up_to >= last)  # private: see the module docstring
        if self._acked_up_to < last:
            raise pexc.StreamLostError("the connection closed before every publish was confirmed")
        return sum(1 for tag in self._nacked if first <= tag <= last), self._returned
