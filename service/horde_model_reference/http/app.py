"""`create_app`: the Starlette application over a `SnapshotSource` (and a `WriteService`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import exception_handlers
from horde_model_reference.http.health import health_routes
from horde_model_reference.http.metrics import HttpMetrics, RequestMetricsMiddleware
from horde_model_reference.http.popular import popular_routes
from horde_model_reference.http.routes_v1 import v1_routes
from horde_model_reference.http.routes_v2 import v2_routes
from horde_model_reference.http.routes_writes import write_routes
from horde_model_reference.http.search import search_routes
from horde_model_reference.http.source import SnapshotSource
from horde_model_reference.integrations.horde_api import DEFAULT_HORDE_API_URL
from horde_model_reference.integrations.popularity import PopularityService
from horde_model_reference.settings import ReplicateMode
from horde_model_reference.writes.settings import HttpSettings

if TYPE_CHECKING:
    from horde_model_reference.writes.service import WriteService

__all__ = ["create_app"]


def create_app(
    source: SnapshotSource,
    *,
    popularity: PopularityService | None = None,
    horde_api_url: str = DEFAULT_HORDE_API_URL,
    replicate_mode: ReplicateMode | str = ReplicateMode.PRIMARY,
    cors_origins: Sequence[str] | None = None,
    writes: WriteService | None = None,
    limits: HttpSettings | None = None,
) -> Starlette:
    """The HTTP face (today's primary's API) over `source`'s in-memory snapshots.

    `popularity` serves `.../popular` and the heartbeat's `ai_horde` state (default: a
    `PopularityService` on `horde_api_url`, which sends nothing until asked). `cors_origins`
    adds CORS headers for those origins (`["*"]` for any). `writes`, the service's running
    `WriteService`, answers the write routes (without it they answer 503 `read_only`).
    `limits` (`HttpSettings`): the app uses its `body_timeout`, `serve_http` the rest.
    """
    ctx = ApiContext(
        source=source,
        popularity=popularity or PopularityService(base_url=horde_api_url),
        replicate_mode=ReplicateMode(replicate_mode).value,
        writes=writes,
        limits=limits or HttpSettings(),
    )
    metrics = HttpMetrics()
    routes: list[BaseRoute] = [  # the most requested first: routes are tried in order
        *v2_routes(ctx),
        *search_routes(ctx),
        *popular_routes(ctx),
        *v1_routes(ctx),
        *health_routes(ctx, metrics),
        *write_routes(ctx),
    ]
    middleware = [Middleware(RequestMetricsMiddleware, metrics=metrics)]
    if cors_origins:
        methods = ["GET", "POST", "PUT", "DELETE"] if writes is not None else ["GET"]
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=methods,
                allow_headers=["*"],
            )
        )
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=exception_handlers)
    app.state.context = ctx
    app.state.metrics = metrics
    return app
