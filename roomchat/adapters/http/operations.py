"""What an operator probes on every HTTP adapter: /healthz, /readyz and /metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roomchat.adapters.http.metrics import metrics_response, registry_for
from roomchat.core import Manager


def operations_routes(manager: Manager) -> list[BaseRoute]:
    registry = registry_for(manager)

    async def healthz(request: Request) -> Response:
        """Liveness: the process answers; 503 when the backend does not, with why."""
        problem = await manager.health()
        if problem is None:
            return JSONResponse({"status": "ok", "backend": "ok"})
        return JSONResponse({"status": "unavailable", "backend": problem}, 503)

    async def readyz(request: Request) -> Response:
        """Readiness: send traffic here? Not while starting, stopping or without a backend."""
        if await manager.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, 503)

    async def metrics(request: Request) -> Response:
        return metrics_response(registry)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
