"""How a process group's parent sums its children's metrics (interface_server/group_metrics.py)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from interface_server.group_metrics import GroupMonitor, merge

CHILD = """# HELP channels_interface_replies_in_total Replies.
# TYPE channels_interface_replies_in_total counter
channels_interface_replies_in_total {replies}
# HELP channels_interface_connections Open client connections, by type.
# TYPE channels_interface_connections gauge
channels_interface_connections{{type="websocket"}} {sockets}
# HELP channels_interface_layer_available 0 or 1.
# TYPE channels_interface_layer_available gauge
channels_interface_layer_available {available}
# HELP channels_interface_reply_latency_seconds Latency.
# TYPE channels_interface_reply_latency_seconds histogram
channels_interface_reply_latency_seconds_bucket{{kind="http",le="0.5"}} {replies}
channels_interface_reply_latency_seconds_bucket{{kind="http",le="+Inf"}} {replies}
channels_interface_reply_latency_seconds_count{{kind="http"}} {replies}
channels_interface_reply_latency_seconds_sum{{kind="http"}} 0.5
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{{implementation="CPython",major="3"}} 1.0
"""


def _value(families: dict, sample_name: str, **labels: str) -> float:
    for family in families.values():
        for (name, sample_labels), value in family.values.items():
            if name == sample_name and dict(sample_labels) == labels:
                return value
    raise AssertionError(f"no {sample_name} {labels}")


def test_counters_histograms_and_gauges_are_summed_availability_is_the_lowest():
    merged = merge([CHILD.format(replies=3, sockets=10, available=1), CHILD.format(replies=5, sockets=7, available=0)])
    assert _value(merged, "channels_interface_replies_in_total") == 8
    assert _value(merged, "channels_interface_connections", type="websocket") == 17
    assert _value(merged, "channels_interface_layer_available") == 0
    assert _value(merged, "channels_interface_reply_latency_seconds_count", kind="http") == 8
    assert _value(merged, "channels_interface_reply_latency_seconds_sum", kind="http") == 1.0
    assert _value(merged, "python_info", implementation="CPython", major="3") == 1.0


class _Group:
    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self.restarts = 0

    def pids(self) -> list[int]:
        return list(self._pids)


def test_a_dead_childs_counters_stay_in_the_sums_its_gauges_leave(tmp_path: Path, monkeypatch):
    import interface_server.group_metrics as group_metrics
    from interface_server.process_group import write_status

    pages = {
        1001: CHILD.format(replies=4, sockets=6, available=1),
        1002: CHILD.format(replies=2, sockets=3, available=1),
    }
    for slot, pid in enumerate(pages):
        write_status(tmp_path, slot, {"pid": pid, "slot": slot, "metrics_port": pid, "reply_prefix": "x!"})
    monkeypatch.setattr(group_metrics, "_get", lambda port, path: (200, pages[port]) if port in pages else None)
    monitor = GroupMonitor("127.0.0.1", 0, tmp_path)
    try:
        group = _Group([1001, 1002])
        monitor.group = group
        text = monitor.metrics().decode()
        assert "channels_interface_replies_in_total 6.0" in text
        assert "channels_interface_processes 2.0" in text
        # Child 1002 dies and is replaced by 1003 (which has counted 1 reply so far).
        group._pids = [1001, 1003]
        group.restarts = 1
        monitor.child_exited(1, 1002)
        pages[1003] = CHILD.format(replies=1, sockets=1, available=1)
        write_status(tmp_path, 1, {"pid": 1003, "slot": 1, "metrics_port": 1003, "reply_prefix": "y!"})
        families = {f.name: f for f in text_string_to_metric_families(monitor.metrics().decode())}
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
        assert samples[("channels_interface_replies_in_total", ())] == 4 + 2 + 1  # never goes back
        assert samples[("channels_interface_connections", (("type", "websocket"),))] == 6 + 1  # the dead one's left
        assert samples[("channels_interface_process_restarts_total", ())] == 1
        assert monitor.readiness() is None
    finally:
        monitor.stop()
