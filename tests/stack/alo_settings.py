"""The test project with an at-least-once `thumbnails` channel (tests/stack/test_at_least_once_stack.py)."""

from tests.project.settings import *  # noqa: F403
from tests.project.settings import CHANNEL_LAYERS

CHANNEL_LAYERS["default"]["CONFIG"]["at_least_once"] = {
    # Generous max_deliveries: a job can be hit by many of the test's SIGKILLs (40 in one run) and must not be
    # dead-lettered: the killer picks busy workers, and a redelivered job goes to the head of the queue.
    "thumbnails": {"max_deliveries": 1000, "dead_letter": "thumbnails.dead", "redeliver_after": 2},
}
CHANNEL_LAYERS["default"]["ROUTING"] = "tests.stack.alo_consumers.channel_routing"
