"""Prometheus metrics, read from the Manager's counters at scrape time.

Nothing is counted through prometheus-client on the hot path: the core keeps
plain integers (and its latency histograms, `core.timings`) and this collector
turns them into metrics when scraped. The process and platform collectors are
prometheus-client's own.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from roomchat.adapters.gauges import OPEN_CONNECTIONS
from roomchat.adapters.http.capacity import CONNECTIONS
from roomchat.core import Manager

_HISTOGRAMS = {
    "post": ("roomchat_post_seconds", "A post from its admission to its acknowledgement"),
    "delivery_lag": (
        "roomchat_delivery_lag_seconds",
        "A message's stored time to its fan-out to this process's listeners",
    ),
    "backend": ("roomchat_backend_seconds", "Backend round trips: storing a post, a health ping"),
}


class ManagerCollector(Collector):
    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        stats = self._manager.stats()
        listeners = GaugeMetricFamily(
            "roomchat_listeners", "Open listeners (streams), by transport", labels=["transport"]
        )
        for transport, count in sorted(stats.listeners.items()):
            listeners.add_metric([transport], count)
        yield listeners
        yield CounterMetricFamily(
            "roomchat_messages_published", "Messages stored and broadcast", stats.published
        )
        yield CounterMetricFamily(
            "roomchat_deliveries", "Messages handed to listeners' writers", stats.delivered
        )
        yield CounterMetricFamily(
            "roomchat_listeners_lagged", "Listeners ended for being too slow", stats.lagged
        )
        yield from self._connections()
        for name, snapshot in sorted(stats.timings.items()):
            metric, help_text = _HISTOGRAMS[name]
            buckets = [(_bound(bound), count) for bound, count in snapshot.buckets]
            yield HistogramMetricFamily(metric, help_text, buckets=buckets, sum_value=snapshot.total)

    def _connections(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "roomchat_connections", "Open connections, by transport (http counts every HTTP one)",
            labels=["transport"],
        )  # fmt: skip
        connections.add_metric(["http"], CONNECTIONS.open)
        for transport in ("grpc", "ws"):
            connections.add_metric([transport], OPEN_CONNECTIONS.by_transport[transport])
        yield connections
        yield GaugeMetricFamily(
            "roomchat_http_connections", "Open HTTP connections, every adapter", CONNECTIONS.open
        )
        yield GaugeMetricFamily(
            "roomchat_http_connections_limit", "HTTP connections allowed (0: no cap)", CONNECTIONS.limit
        )
        yield CounterMetricFamily(
            "roomchat_http_connections_refused", "Connections answered 503 past the cap", CONNECTIONS.refused
        )


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def registry_for(manager: Manager) -> CollectorRegistry:
    """Roomchat's series and the process's (CPU, memory, descriptors, Python's version)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ManagerCollector(manager))
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR):
        registry.register(standard)
    return registry
