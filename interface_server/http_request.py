"""One HTTP request in flight: its body going to the application, its response coming back.

`http_protocol.HTTPProtocol` owns the connection and h11; it creates an
`ActiveRequest` per request and feeds it body data and reply messages. The
request sends `http.request` (streaming a large body through a body channel,
with flow control when that channel is full), waits `http_timeout` for the
first reply, and turns reply messages into h11 events for the protocol to
write.

Every message goes through the server's sender (`sender.py`): a full
channel makes it wait, and the connection stops being read while a few
of its messages wait (`pause_reading`). While the layer is unavailable
(failing, or not answering, for 2 s) a new request is answered 503 at once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor

from .h11_impl import h11
from .sender import LayerUnavailable, SendTimeout
from .wire_messages import (
    BadReply,
    RequestInfo,
    http_disconnect_message,
    http_request_message,
    parse_response,
    response_output,
)

if TYPE_CHECKING:
    from .http_protocol import HTTPProtocol

# The connection's logger: these messages are about the same request lines.
logger = logging.getLogger("interface_server.http")


class ActiveRequest:
    """One request in flight: its body going out, its response coming back."""

    def __init__(self, protocol: HTTPProtocol, info: RequestInfo, length: int | None) -> None:
        self.protocol = protocol
        self.server = protocol.server
        self.config = protocol.server.config
        self.info = info
        self.started_at = time.monotonic()
        self.reply_channel = self.server.new_reply_channel(self)
        self.body: list[bytes] = []
        self.body_size = 0
        self.buffered = 0  # bytes in self.body
        self.body_channel: str | None = None
        self.timeout_call: Any = None
        self.sent = False
        self.body_forwarded = False  # the last body chunk (more_content False) is on the body channel
        self.finished = False
        self.response_started = False
        self.status: int | None = None
        self.response_size = 0
        # A large body streams through a channel as it arrives. A chunked one (length None)
        # is held like a small one until it outgrows the threshold, so a chunked body that
        # turns out malformed or never ends reaches the application only if it is large.
        if length is not None and length > self.config.body_stream_threshold:
            self.start_streaming()

    def start_streaming(self) -> None:
        self.body_channel = self.server.channel_layer.new_channel("http.request.body?")
        self.send_request(b"")

    # -- the request and its body -------------------------------------------------------

    def send_request(self, body: bytes) -> None:
        message = http_request_message(self.info, self.reply_channel, body, self.body_channel)
        self.sent = True
        if self.server.sender.unavailable():
            # Nothing would answer soon: say so now rather than after --send-timeout.
            self.server.count("http_503_layer")
            self.fail(503, "The channel layer is unavailable.")
            return
        keeper = getattr(self.server, "lease_keeper", None)
        if keeper is not None and keeper.no_http_consumer():  # no worker lease listens (lease_keeper.py)
            self.server.count("no_worker_503")
            self.fail(503, "No worker is running.")
            return
        self.server.send_soon("http.request", message, self.request_not_sent, owner=self, fail_fast=True)
        if self.body_channel is None:
            self.start_timeout()

    def request_not_sent(self, exc: Exception) -> None:
        if isinstance(exc, (SendTimeout, LayerUnavailable)):
            # Logged once per episode by the sender (not one line per request).
            self.server.count("http_503_layer")
            self.fail(503, "The channel layer is unavailable.")
        else:
            logger.error("Cannot send http.request (%s: %s): answering 503", type(exc).__name__, exc)
            self.fail(503, "The channel layer refused the request.")

    def pause_reading(self) -> None:
        """The sender holds a few of this request's messages: stop reading the socket (TCP pushes back)."""
        self.protocol.transport.pauseProducing()

    def resume_reading(self) -> None:
        self.protocol.transport.resumeProducing()

    def start_timeout(self) -> None:
        """Wait `http_timeout` for the first response message, counted from when the request is complete.

        A streamed body can take longer than that to upload while the application
        reads it, so its wait starts with the last body chunk.
        """
        if not self.finished and not self.response_started and self.timeout_call is None:
            self.timeout_call = reactor.callLater(self.config.http_timeout, self.timed_out)

    def body_data(self, data: bytes) -> None:
        if self.finished:
            return
        self.body_size += len(data)
        if self.body_size > self.config.max_request_body_size:
            self.fail(413, "Request body too large.")
            return
        self.body.append(data)
        self.buffered += len(data)
        if not self.sent and self.buffered > self.config.body_stream_threshold:
            self.start_streaming()
        if self.body_channel is not None and self.buffered >= self.config.body_chunk_size:
            self.queue_chunk(more=True)

    def body_end(self) -> None:
        if self.finished:
            return
        if self.body_channel is not None:
            self.queue_chunk(more=False)
            self.start_timeout()
        elif not self.sent:
            self.send_request(b"".join(self.body))
            self.body = []
            self.buffered = 0

    def queue_chunk(self, more: bool) -> None:
        """Send the buffered body as chunks; a full body channel makes them wait (and the socket pause)."""
        data = b"".join(self.body)
        self.body = []
        self.buffered = 0
        size = self.config.body_chunk_size
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = {"content": piece, "more_content": more or not last}
            if not chunk["more_content"]:
                self.body_forwarded = True  # queued: the application will read the end of the body
            self.server.send_soon(self.body_channel, chunk, self.chunk_not_sent, owner=self)

    def chunk_not_sent(self, exc: Exception) -> None:
        if isinstance(exc, SendTimeout):
            self.fail(503, "The application did not read the request body in time.")
        else:
            logger.error("Cannot send a body chunk (%s: %s)", type(exc).__name__, exc)
            self.fail(503, "The channel layer is unavailable.")

    # -- the response ------------------------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        if self.finished:
            return
        first = not self.response_started
        try:
            part = parse_response(message, self.response_started)
        except BadReply as exc:
            logger.error("Bad response on %s for %s %s: %s", self.reply_channel, self.info.method, self.info.path, exc)
            if self.response_started:
                self.finish()
                self.protocol.transport.abortConnection()
            else:
                self.fail(500, "The application sent an invalid response.")
            return
        protocol = self.protocol
        output = response_output(part, self.info.method, self.server.server_header)
        events: list[Any] = []
        try:
            if output.status is not None:
                stats = self.server.stats
                if stats is not None:  # reply latency "http": request head to response start (metrics.py)
                    stats.latency_http.observe(time.monotonic() - self.started_at)
                self.response_started = True
                self.status = output.status
                self.cancel_timeout()
                events.append(h11.Response(status_code=output.status, headers=output.headers, reason=output.reason))
            if output.body:
                self.response_size += len(output.body)
                events.append(h11.Data(data=output.body))
            if output.end:
                events.append(h11.EndOfMessage())
            protocol.send(*events)
            if output.status is not None and self.server.stats is not None:  # h11 framed it: it is written
                responses = self.server.stats.http_responses
                responses[output.status] = responses.get(output.status, 0) + 1
            if output.end:
                self.finish()
                protocol.request_done()
        except h11.LocalProtocolError as exc:
            self.refused_by_h11(exc, first)

    def refused_by_h11(self, exc: Exception, first: bool) -> None:
        """h11 would not frame this reply (a wrong Content-Length, say): 500, or close if the response had started.

        `protocol.send` frames every event of a message before writing any, so a
        first message that fails has written nothing.
        """
        where = f"on {self.reply_channel} for {self.info.method} {self.info.path}"
        if first:
            logger.error("Invalid response %s: %s; answered 500", where, exc)
            self.status = 500
            self.finish()
            self.abandon_body()
            self.protocol.write_raw_error(500)
        else:
            logger.error("Invalid response %s: %s; the response had started: closing the connection", where, exc)
            self.finish()
            self.protocol.conn = None
            self.protocol.transport.loseConnection()

    def timed_out(self) -> None:
        self.timeout_call = None
        if not self.response_started and not self.finished:
            logger.warning(
                "No response to %s %s within %ss: answering 503",
                self.info.method,
                self.info.path,
                self.config.http_timeout,
            )
            self.fail(503, "Worker server failed to respond within time limit.")

    def fail(self, status: int, text: str) -> None:
        """Answer with an error, if nothing was sent yet; otherwise drop the connection."""
        if self.finished:
            return
        started = self.response_started
        self.status = status
        self.finish()
        self.abandon_body()
        if started:
            self.protocol.transport.abortConnection()
        else:
            self.protocol.respond_error(status, text, close=True)

    def _end(self) -> bool:
        """Stop timers and forget the reply channel; False if the request had already ended."""
        if self.finished:
            return False
        self.finished = True
        self.cancel_timeout()
        self.server.forget_reply_channel(self.reply_channel)
        return True

    def finish(self) -> None:
        if not self._end():
            return
        self.server.log_action(
            "http",
            "complete",
            {
                "path": self.info.path,
                "status": self.status,
                "method": self.info.method,
                "client": f"{self.info.client[0]}:{self.info.client[1]}" if self.info.client else None,
                "time_taken": time.monotonic() - self.started_at,
                "size": self.response_size,
                "http_version": self.info.http_version,
                "query_string": self.info.query_string,
            },
        )

    def cancel_timeout(self) -> None:
        if self.timeout_call is not None and self.timeout_call.active():
            self.timeout_call.cancel()
        self.timeout_call = None

    def client_gone(self) -> None:
        """The client closed the connection before the response was complete."""
        if self._end() and self.sent:
            self.abandon_body()
            self.server.send_disconnect(
                self.reply_channel, "http.disconnect", http_disconnect_message(self.reply_channel, self.info.path)
            )

    def abandon_body(self) -> None:
        """The application may be reading the body channel: tell it no more is coming."""
        if self.sent and self.body_channel is not None and not self.body_forwarded:
            self.body_forwarded = True
            self.server.send_best_effort(self.body_channel, {"closed": True})
