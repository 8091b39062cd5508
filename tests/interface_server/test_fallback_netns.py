"""An SSE client whose machine vanishes (no FIN, no RST: its cable pulled) is disconnected within two pings.

The client runs in a network namespace of its own (tests/support/netns.py);
unplugging its link leaves the server's TCP connection open with nothing
ever acknowledged, which TCP alone would notice only after many minutes of
retransmissions. The server finds it at its pings (fallback_http's `ping`).
"""

from __future__ import annotations

import sys
import time

from .ws_support import receive

CLIENT = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
sock.sendall(b"GET /_channels/sse/ws/echo/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
seen = b""
while b"event: session" not in seen:
    seen += sock.recv(4096)
print("OPEN", flush=True)
while sock.recv(4096):
    pass
"""


def test_an_unplugged_sse_client_is_disconnected_within_two_ping_intervals(network, start_server, worker_layer):
    server = start_server("-b", network.gateway, "--ping-interval", "0.5")
    host = network.add_host("cl")
    client = host.run([sys.executable, "-c", CLIENT, network.gateway, str(server.port)], label="sse-client")
    connect = receive(worker_layer, "websocket.connect", timeout=10)
    worker_layer.send(connect["reply_channel"], {"accept": True})
    client.wait_for("OPEN", timeout=10)
    time.sleep(1.2)  # a few pings go out and are acknowledged: a live client is left alone
    host.unplug()
    unplugged = time.monotonic()
    disconnect = receive(worker_layer, "websocket.disconnect", timeout=20)
    assert (disconnect["reply_channel"], disconnect["code"]) == (connect["reply_channel"], 1006)
    assert time.monotonic() - unplugged < 2 * 0.5 + 1.0, time.monotonic() - unplugged
    assert "acknowledged nothing" in server.output()
