"""Prometheus metrics, read from the Manager's counters at scrape time.

Nothing is counted through prometheus-client on the hot path: the core keeps
plain integers and this collector turns them into metrics when scraped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from roomchat.adapters.http.capacity import CONNECTIONS
from roomchat.core import Manager


class ManagerCollector(Collector):
    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        stats = self._manager.stats()
        listeners = GaugeMetricFamily(
            "roomchat_listeners", "Open listeners, by transport", labels=["transport"]
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
        yield GaugeMetricFamily(
            "roomchat_http_connections", "Open HTTP connections, every adapter", CONNECTIONS.open
        )
        yield GaugeMetricFamily(
            "roomchat_http_connections_limit", "HTTP connections allowed (0: no cap)", CONNECTIONS.limit
        )
        yield CounterMetricFamily(
            "roomchat_http_connections_refused", "Connections answered 503 past the cap", CONNECTIONS.refused
        )


def metrics_endpoint(manager: Manager) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ManagerCollector(manager))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
