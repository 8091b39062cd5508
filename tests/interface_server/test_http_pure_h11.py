"""The core HTTP tests again, with the server forced onto pure-Python h11.

The server prefers the compiled `h11-mypyc` when it is installed (the
`speedups` extra, which CI installs); an installation without it runs plain
h11, so that path is exercised here too.
"""

from __future__ import annotations

import pytest

from .test_http import (  # noqa: F401  (collected here again, with the fixture below)
    background,
    test_chunked_request_body_streams_through_body_channel,
    test_expect_100_continue,
    test_head_response_on_raw_socket_has_no_body_bytes,
    test_keep_alive_serves_two_requests_on_one_connection,
    test_malformed_requests_get_400_and_server_keeps_serving,
    test_pipelined_requests_are_answered_in_order,
    test_response_status_headers_and_content,
    test_streamed_response_arrives_chunk_by_chunk,
)


@pytest.fixture
def start_server(start_server):
    def start(*args, env=None, **kwargs):
        server = start_server(*args, env={**(env or {}), "INTERFACE_SERVER_PURE_H11": "1"}, **kwargs)
        assert "HTTP/1.1 parsing with h11 " in server.output(), server.output()
        return server

    return start
