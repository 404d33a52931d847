"""Service endpoints: `/api/heartbeat`, `/api/replicate_mode`, `/api/health`, `/api/ready`, `/metrics`.

Readiness: a category is `loaded` (it has a snapshot), `absent` (none, and its last fetch did not
fail: the backend has no catalog for it) or `failed` (none, and its last fetch failed). The
server is ready when no category is `failed`. The app is mounted once the supervisor reports
ready (each actor made its first pass), so "no snapshot, no error" means known absent.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import json_response
from horde_model_reference.http.metrics import PROMETHEUS_CONTENT_TYPE, HttpMetrics, render_metrics

__all__ = ["health_routes"]


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
            {"replicate_mode": ctx.replicate_mode, "canonical_format": "v2", "writable": False}
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
        states: dict[str, dict[str, object]] = {}
        for name, category in status.categories.items():
            if category.digest is not None:
                state = "loaded"
            elif category.last_error is not None:
                state = "failed"
            else:
                state = "absent"
            states[name] = {"state": state, "revision": category.revision, "last_error": category.last_error}
        is_ready = all(entry["state"] != "failed" for entry in states.values())
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
