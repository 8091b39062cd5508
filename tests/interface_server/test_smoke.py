"""The shortest path through the real server: one request, one reply, both layers."""

from __future__ import annotations

import threading
import urllib.request


def test_http_request_round_trip_over_redis(start_server, worker_layer):
    server = start_server()

    def worker():
        channel, message = worker_layer.receive(["http.request"], block=True)
        worker_layer.send(message["reply_channel"], {"status": 201, "content": b"made " + message["path"].encode()})

    thread = threading.Thread(target=worker)
    thread.start()
    with urllib.request.urlopen(server.url + "/thing?a=1", timeout=5) as response:
        assert response.status == 201
        assert response.read() == b"made /thing"
    thread.join(5)


def test_http_request_round_trip_in_memory(start_server):
    server = start_server(layer_path="tests.interface_server.inmemory_echo:channel_layer")
    request = urllib.request.Request(server.url + "/echo", data=b"x" * 300_000, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.read() == b"/echo\n" + b"x" * 300_000


def test_startup_names_the_http_parser(start_server):
    """The compiled h11 is used when installed (the `speedups` extra), plain h11 otherwise."""
    import importlib.util

    server = start_server()
    compiled = importlib.util.find_spec("h11_mypyc") is not None
    expected = "HTTP/1.1 parsing with h11-mypyc " if compiled else "HTTP/1.1 parsing with h11 "
    assert expected in server.output(), server.output()
