"""Consumers for the worker's full-stack tests (tests/stack/test_worker_stack.py), under /worker.

/worker/slow/   receive: sleep 1 s (or `text` seconds if it is a number), then reply
                "slow:<text>:<pid>:<thread>"
/worker/crash/  receive: raise (the worker closes the socket with 1011)
/worker/pid/    receive: reply with the pid of the worker process that ran the consumer
"""

import os
import threading
import time

from routing import route


def accept(message, **kwargs):
    message.reply_channel.send({"accept": True})


def slow(message, **kwargs):
    text = message.content.get("text") or ""
    try:
        delay = float(text)
    except ValueError:
        delay = 1.0
    time.sleep(delay)
    message.reply_channel.send({"text": f"slow:{text}:{os.getpid()}:{threading.current_thread().name}"})


def crash_on_receive(message, **kwargs):
    raise RuntimeError("this consumer always fails on receive")


def pid(message, **kwargs):
    message.reply_channel.send({"text": str(os.getpid())})


routes = [
    route("websocket.connect", accept, path=r"^/(?:slow|crash|pid)/$"),
    route("websocket.receive", slow, path=r"^/slow/$"),
    route("websocket.receive", crash_on_receive, path=r"^/crash/$"),
    route("websocket.receive", pid, path=r"^/pid/$"),
]

# For `manage.py check` (TEST_CHANNEL_ROUTING): a legacy dict is resolved only by the Router,
# so this module imports fine and the check reports the unimportable consumer as E003.
broken_routing = {"websocket.connect": "tests.project.app.no_such_module.consumer"}
