"""`/api/model_references/v2/...`: categories, a category's catalog, one model, revisions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import (
    JSON,
    ApiError,
    category_or_404,
    json_response,
    not_modified,
    snapshot_or_404,
)
from horde_model_reference.names import name_candidates, validate_model_name

__all__ = ["V2_PREFIX", "v2_routes"]

V2_PREFIX = "/api/model_references/v2"


def v2_routes(ctx: ApiContext) -> list[Route]:
    """The v2 read routes (the fixed paths before `{category}`; search and popular are elsewhere)."""

    async def model_categories(request: Request) -> Response:
        """The names of the categories that have a catalog here."""
        names = [c.value for c in ctx.source.categories if ctx.has_data(c)]
        return json_response(names)

    async def revisions(request: Request) -> Response:
        """Every served category's revision, digest and record count (digest null: no catalog)."""
        status = ctx.source.status()
        return json_response(
            {
                name: {
                    "revision": health.revision,
                    "digest": health.digest,
                    "record_count": health.record_count,
                }
                for name, health in status.categories.items()
            }
        )

    async def category(request: Request) -> Response:
        """The category's v2 JSON: the snapshot bytes as held, with ETag = digest."""
        cat = category_or_404(request.path_params["category"])
        snapshot = snapshot_or_404(ctx.source, cat)
        headers = ctx.cache_headers(snapshot)
        if not_modified(request, headers["etag"]):
            return Response(status_code=304, headers=headers)
        return Response(ctx.views.body(snapshot), headers=headers, media_type=JSON)

    async def model(request: Request) -> Response:
        """One record of the category, as it is in the catalog (compact JSON)."""
        cat = category_or_404(request.path_params["category"])
        name = request.path_params["name"]
        try:
            validate_model_name(name)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        snapshot = snapshot_or_404(ctx.source, cat)
        raw = ctx.views.raw_records(snapshot)
        key = _find(cat, name, raw)
        if key is None:
            raise ApiError(404, f"model {name!r} not found in category {cat.value!r}")
        headers = {
            **ctx.revision_headers(snapshot),
            "etag": ctx.views.record_etag(snapshot, key),
            "x-hmr-record-digest": ctx.views.record_digest(snapshot, key),
        }
        if not_modified(request, headers["etag"]):
            return Response(status_code=304, headers=headers)
        return Response(raw[key], headers=headers, media_type=JSON)

    return [
        Route(f"{V2_PREFIX}/model_categories", model_categories, methods=["GET"]),
        Route(f"{V2_PREFIX}/revisions", revisions, methods=["GET"]),
        Route(f"{V2_PREFIX}/{{category}}", category, methods=["GET"]),
        Route(f"{V2_PREFIX}/{{category}}/model/{{name:path}}", model, methods=["GET"]),
    ]


def _find(category: MODEL_REFERENCE_CATEGORY, name: str, records: dict[str, bytes]) -> str | None:
    """The catalog key for `name`: itself, or for text a backend-prefixed name without its prefix."""
    return next((key for key in name_candidates(category, name) if key in records), None)
