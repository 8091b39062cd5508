"""The RabbitMQ layer across a broker restart (`rabbitmqctl stop_app` / `start_app`) under traffic."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from channels_core.layers import ChannelFull, LayerConnectionError
from channels_core.layers.rabbitmq import RabbitMQChannelLayer

URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.alone
@pytest.mark.slow
def test_senders_and_receivers_survive_a_broker_restart_and_count_what_was_in_flight(key_prefix):
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        pytest.skip("restarting the broker needs rabbitmqctl, as root, on the broker's machine")
    layer = RabbitMQChannelLayer(URL, prefix=key_prefix, expiry=30, blocking_timeout=0.5)
    sent: list[int] = []
    refused = [0]
    received: list[int] = []
    escaped: list[BaseException] = []
    stop_sending = threading.Event()
    stop_receiving = threading.Event()

    def sender():
        i = 0
        try:
            while not stop_sending.is_set():
                try:
                    layer.send("rs.work", {"i": i})
                    sent.append(i)
                except (LayerConnectionError, ChannelFull):
                    # Refused during the outage, or backpressure while the receiver reconnects: not sent.
                    refused[0] += 1
                    time.sleep(0.05)
                i += 1
                time.sleep(0.004)
        except BaseException as exc:  # noqa: BLE001 - the test fails on it below
            escaped.append(exc)

    def receiver():
        try:
            while not stop_receiving.is_set():
                channel, message = layer.receive(["rs.work"], block=True)
                if channel is not None:
                    received.append(message["i"])
        except BaseException as exc:  # noqa: BLE001 - the test fails on it below
            escaped.append(exc)

    threads = [threading.Thread(target=sender), threading.Thread(target=receiver)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        before_restart = len(sent)
        _rabbitmqctl("stop_app")
        time.sleep(1.0)
        _rabbitmqctl("start_app")
        restarted_at = len(sent)
        deadline = time.monotonic() + 20
        while len(sent) < restarted_at + 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        after_restart = [i for i in sent[restarted_at:]]
    finally:
        stop_sending.set()
        threads[0].join(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not set(sent[restarted_at:]) <= set(received):
            time.sleep(0.1)
        stop_receiving.set()
        threads[1].join(10)
        lost_in_flight = layer.lost_in_flight
        layer.flush()
        layer.close()
    assert not escaped, escaped
    assert before_restart > 50 and len(after_restart) >= 100, "traffic did not resume after the restart"
    assert len(received) == len(set(received)), "a message was delivered twice"
    assert set(received) <= set(sent)
    assert set(after_restart) <= set(received), "a message sent after the restart was lost"
    lost = len(set(sent) - set(received))
    print(
        f"\nbroker restart: {len(sent)} sent, {refused[0]} sends refused (outage or full), "
        f"{len(received)} received, {lost} lost (queued or in flight when the broker stopped; "
        f"{lost_in_flight} of them taken with an unconfirmed ack)"
    )
