"""The one private h11 name the server reads (`request_framing.declared_chunk_size`), checked on both builds.

If an h11 upgrade renames its chunked reader's state, these fail: the
server would then stop refusing chunk sizes over 64 bits early and lean on
the body size limit alone.
"""

from __future__ import annotations

import importlib

import pytest

from interface_server.request_framing import declared_chunk_size

BUILDS = ["h11", "h11_mypyc"]


@pytest.mark.parametrize("module_name", BUILDS)
@pytest.mark.parametrize("declared", [5, 0x1000, 2**64 + 5])
def test_declared_chunk_size_reads_what_the_client_declared(module_name, declared):
    try:
        h11 = importlib.import_module(module_name)
    except ImportError:
        if module_name == "h11_mypyc":
            pytest.fail("h11-mypyc is not installed: CI installs the speedups extra, which this check covers")
        raise
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + f"{declared:x}\r\n".encode() + b"hello"
    )
    assert isinstance(conn.next_event(), h11.Request)
    event = conn.next_event()
    assert isinstance(event, h11.Data) and event.chunk_start
    assert declared_chunk_size(conn, event.data) == declared
