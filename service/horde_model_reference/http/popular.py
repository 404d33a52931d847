"""`GET /api/model_references/v2/{category}/popular`: models ranked by live AI-Horde usage.

Parameters as today's primary: `limit` (1..100, default 10), `sort_by` (worker_count,
usage_day, usage_month, usage_total), `include_workers`. The answer is a list of
`{name, record, stats}`; categories the Horde does not report on answer `[]`. When the Horde
cannot be read and nothing usable is cached: 503 with `Retry-After`.
"""

from __future__ import annotations

import math

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import (
    ApiError,
    QueryParams,
    category_or_404,
    json_response,
    snapshot_or_404,
)
from horde_model_reference.http.routes_v2 import V2_PREFIX
from horde_model_reference.integrations.horde_api import HordeApiUnavailable
from horde_model_reference.integrations.popularity import HORDE_MODEL_TYPES, SORT_KEYS

__all__ = ["MAX_POPULAR_LIMIT", "popular_routes"]

MAX_POPULAR_LIMIT = 100


def popular_routes(ctx: ApiContext) -> list[Route]:
    """The popularity route."""

    async def popular(request: Request) -> Response:
        cat = category_or_404(request.path_params["category"])
        params = QueryParams(request)
        limit = params.integer("limit", 10, minimum=1, maximum=MAX_POPULAR_LIMIT)
        sort_by = params.choice("sort_by", SORT_KEYS, "worker_count")
        include_workers = bool(params.boolean("include_workers", False))
        if cat not in HORDE_MODEL_TYPES:
            return json_response([])
        snapshot = snapshot_or_404(ctx.source, cat)
        try:
            ranked = await ctx.popularity.rank(
                cat,
                ctx.views.records(snapshot),
                limit=limit,
                sort_by=sort_by,
                include_workers=include_workers,
            )
        except HordeApiUnavailable as exc:
            retry = {"retry-after": str(math.ceil(exc.retry_in))} if exc.retry_in else None
            raise ApiError(503, str(exc), headers=retry) from None
        raw = ctx.views.raw_records(snapshot)
        return json_response(
            [
                {"name": item.name, "record": msgspec.Raw(raw[item.name]), "stats": item.stats}
                for item in ranked
            ]
        )

    return [Route(f"{V2_PREFIX}/{{category}}/popular", popular, methods=["GET"])]
