"""`/api/model_references/v1/...`: the legacy GitHub formats, projected from the v2 snapshots.

Accepted names, as today's primary: a category (`image_generation`), the alias
`stable_diffusion`, either with a `.json` suffix, and `db.json` for text_generation.
image_generation is served in the `stable_diffusion.json` layout and text_generation as `db.json`,
each computed once per digest. LoRA and TI answer `{}` (as today: they are managed elsewhere).
The other categories have no projection back to their legacy files (those carry fields that v2
records do not keep): they answer 404 saying so and pointing at the v2 endpoint.
"""

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
from horde_model_reference.http._views import LEGACY_VIEWS
from horde_model_reference.http.routes_v2 import V2_PREFIX

__all__ = ["V1_PREFIX", "v1_routes"]

V1_PREFIX = "/api/model_references/v1"
_EMPTY_CATEGORIES = (MODEL_REFERENCE_CATEGORY.lora, MODEL_REFERENCE_CATEGORY.ti)


def legacy_category(name: str) -> MODEL_REFERENCE_CATEGORY:
    """The category a v1 path segment names (`db.json`, `stable_diffusion.json`, ...), or 404."""
    if name == "db.json":
        return MODEL_REFERENCE_CATEGORY.text_generation
    return category_or_404(name.removesuffix(".json"))


def v1_routes(ctx: ApiContext) -> list[Route]:
    """The legacy read routes."""

    async def model_categories(request: Request) -> Response:
        """The categories `GET v1/{category}` answers with data."""
        names = [c.value for c in LEGACY_VIEWS if ctx.has_data(c)]
        return json_response(names + [c.value for c in _EMPTY_CATEGORIES])

    async def legacy(request: Request) -> Response:
        """The category in its legacy format."""
        cat = legacy_category(request.path_params["category"])
        if cat in _EMPTY_CATEGORIES:
            return Response(b"{}", media_type=JSON)
        if cat not in LEGACY_VIEWS:
            served = " and ".join(c.value for c in LEGACY_VIEWS)
            raise ApiError(
                404,
                f"category {cat.value!r} has no legacy (v1) format on this server: only {served} are "
                f"projected back to their legacy files; read {V2_PREFIX}/{cat.value} (v2 format) instead",
            )
        snapshot = snapshot_or_404(ctx.source, cat)
        headers = {**ctx.revision_headers(snapshot), "etag": f'"v1-{snapshot.digest}"'}
        if not_modified(request, headers["etag"]):
            return Response(status_code=304, headers=headers)
        return Response(await ctx.views.legacy(snapshot), headers=headers, media_type=JSON)

    return [
        Route(f"{V1_PREFIX}/model_categories", model_categories, methods=["GET"]),
        Route(f"{V1_PREFIX}/{{category}}", legacy, methods=["GET"]),
    ]
