"""Service endpoints: `/api/heartbeat`, `/api/replicate_mode`, `/api/health`, `/api/ready`, `/metrics`.

Readiness: each category's `state` as the source reports it: `loaded` (it has a snapshot),
`absent` (none: the backend has no catalog for it), `loading` (its first fetch is not over) or
`failed` (none: its last fetch failed or its catalog was rejected). The server is ready when every category is `loaded` or
`absent`. A source that reports no state (an older service) is read as before: no snapshot and
no error is `absent` (the app starts once each actor made its first pass).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import json_response
from horde_model_reference.http.metrics import PROMETHEUS_CONTENT_TYPE, HttpMetrics, render_metrics
from horde_model_reference.http.source import category_state

__all__ = ["health_routes"]

_READY_STATES = frozenset({"loaded", "absent"})


def health_routes(ctx: ApiContext, metrics: HttpMetrics) -> list[Route]:
    """The service routes."""

    async def root(request: Request) -> Response:
        return json_response(
            {"message": "Horde Model Reference API (hmr serve). See docs/http.md for the endpoints."}
        )

    async def heartbeat(request: Request) -> Response:
        """Today's primary's heartbeat: `status` and the AI-Horde API's breaker state."""
        return json_response({"status": "ok", "ai_horde": ctx.popularity.status()})

    async def replicate_mode(request: Request) -> Response:
        """What this server is: its replicate mode, canonical format, and whether it takes writes."""
        return json_response(
            {
                "replicate_mode": ctx.replicate_mode,
                "canonical_format": "v2",
                "writable": ctx.writes is not None,
            }
        )

    async def health(request: Request) -> Response:
        """Liveness: the process answers. Includes the service's identity and uptime."""
        status = ctx.source.status()
        return json_response(
            {
                "status": "ok",
                "service_id": status.service_id,
                "uptime": round(status.uptime, 3),
                "http_uptime": round(time.time() - ctx.started_at, 3),
                "nats_connected": status.nats_connected,
                "redis_connected": status.redis_connected,
            }
        )

    async def ready(request: Request) -> Response:
        """Readiness: 200 when every category is loaded or known absent, else 503."""
        status = ctx.source.status()
        states = {
            name: {
                "state": category_state(health),
                "revision": health.revision,
                "last_error": health.last_error,
            }
            for name, health in status.categories.items()
        }
        is_ready = all(entry["state"] in _READY_STATES for entry in states.values())
        return json_response({"ready": is_ready, "categories": states}, status=200 if is_ready else 503)

    async def prometheus(request: Request) -> Response:
        text = render_metrics(ctx.source.status(), metrics, ctx.popularity.client)
        return Response(text, media_type=PROMETHEUS_CONTENT_TYPE)

    return [
        Route("/api", root, methods=["GET"]),
        Route("/api/heartbeat", heartbeat, methods=["GET"]),
        Route("/api/replicate_mode", replicate_mode, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/ready", ready, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/api/metrics", prometheus, methods=["GET"]),
    ]
