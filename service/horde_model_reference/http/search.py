"""`GET /api/model_references/v2/{category}/search`: filter, sort and page a category's records.

The parameters are today's primary's: `nsfw`, `baseline`, `inpainting`, `tags_any`, `tags_all`,
`tags_none` (repeat the parameter for several tags), `name_contains` (case-insensitive),
`sort_by` (a record field), `sort_desc`, `limit` (1..500, default 50), `offset`, `source`, and
for text_generation `backend`, `exclude_backend_variations`, `quantized`. The answer is
`{results, total, offset, limit, has_more}`; each result is the record's JSON as in the catalog.

Filtering runs the query builder over the records decoded once per digest. A parameter that
does not apply to the category (a field it lacks, a text-only filter elsewhere) or has a bad
value is a 422 naming it. Records here carry no licensing conclusion: `license_id` matches
nothing, and `commercial_use` / `redistribution` match every record for `unknown`, none otherwise
(today's primary treats a record without licensing as "unknown" too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.http._context import ApiContext
from horde_model_reference.http._responses import (
    JSON,
    ApiError,
    QueryParams,
    category_or_404,
    snapshot_or_404,
)
from horde_model_reference.http.routes_v2 import V2_PREFIX
from horde_model_reference.query import ControlNetQuery, ImageGenerationQuery, ModelQuery, TextModelQuery
from horde_model_reference.records import GenericModelRecord, record_type_for
from horde_model_reference.source_consts import ANY_SOURCE, HORDE_SOURCE_ID

__all__ = ["DEFAULT_SEARCH_LIMIT", "MAX_SEARCH_LIMIT", "search_routes"]

DEFAULT_SEARCH_LIMIT = 50
MAX_SEARCH_LIMIT = 500
_PERMISSIONS = ("allowed", "allowed_with_conditions", "prohibited", "unknown")
_QUERY_TYPES: dict[MODEL_REFERENCE_CATEGORY, type[ModelQuery[Any, Any]]] = {
    MODEL_REFERENCE_CATEGORY.image_generation: ImageGenerationQuery,
    MODEL_REFERENCE_CATEGORY.text_generation: TextModelQuery,
    MODEL_REFERENCE_CATEGORY.controlnet: ControlNetQuery,
}
_TEXT_ONLY = ("backend", "exclude_backend_variations", "quantized")


def search_routes(ctx: ApiContext) -> list[Route]:
    """The search route."""

    async def search(request: Request) -> Response:
        cat = category_or_404(request.path_params["category"])
        snapshot = snapshot_or_404(ctx.source, cat)
        params = QueryParams(request)
        limit = params.integer("limit", DEFAULT_SEARCH_LIMIT, minimum=1, maximum=MAX_SEARCH_LIMIT)
        offset = params.integer("offset", 0, minimum=0)
        source = params.text("source") or HORDE_SOURCE_ID
        if source not in (HORDE_SOURCE_ID, ANY_SOURCE):
            raise ApiError(
                422,
                f"query parameter 'source': unknown source {source!r}; this server serves the canonical "
                f"catalog only ('{HORDE_SOURCE_ID}', or '{ANY_SOURCE}' which means the same here)",
            )
        found = run_search(cat, ctx.views.records(snapshot), params)
        key_of = ctx.views.keys_by_id(snapshot)
        names = [key_of[id(record)] for record in found]
        page = names[offset : offset + limit]
        raw = ctx.views.raw_records(snapshot)
        total = len(names)
        body = b"".join(
            (
                b'{"results":[',
                b",".join(raw[name] for name in page),
                b'],"total":%d,"offset":%d,"limit":%d,"has_more":%s}'
                % (total, offset, limit, b"true" if offset + limit < total else b"false"),
            )
        )
        return Response(body, media_type=JSON)

    return [Route(f"{V2_PREFIX}/{{category}}/search", search, methods=["GET"])]


def run_search(
    category: MODEL_REFERENCE_CATEGORY, records: Mapping[str, GenericModelRecord], params: QueryParams
) -> list[GenericModelRecord]:
    """The matching records, sorted as asked (every match: the caller pages)."""
    query_type = _QUERY_TYPES.get(category, ModelQuery)
    query: Any = query_type.from_records(records, record_type=record_type_for(category))
    for name in ("nsfw", "inpainting"):
        value = params.boolean(name)
        if value is not None:
            query = _step(name, partial(_where, field=name, value=value), query)
    baseline = params.text("baseline")
    if baseline is not None:
        query = _step("baseline", lambda q: q.where(baseline=baseline), query)
    for name in ("tags_any", "tags_all", "tags_none"):
        tags = params.texts(name)
        if tags is not None:
            query = _step(name, partial(_call, method=name, argument=tags), query)
    needle = params.text("name_contains")
    if needle is not None:
        lowered = needle.lower()
        query = query.filter(lambda r: lowered in r.name.lower())
    query = _text_filters(category, query, params)
    query = _licensing(query, params)
    sort_by = params.text("sort_by")
    descending = bool(params.boolean("sort_desc", False))
    if sort_by is not None:
        query = _step("sort_by", lambda q: q.order_by(sort_by, descending=descending), query)
    try:
        found: list[GenericModelRecord] = query.to_list()
    except TypeError as exc:
        raise ApiError(422, f"query parameter 'sort_by': {exc}") from None
    return found


def _where(query: Any, *, field: str, value: object) -> Any:
    return query.where(**{field: value})


def _call(query: Any, *, method: str, argument: object) -> Any:
    return getattr(query, method)(argument)


def _step(name: str, apply: Callable[[Any], Any], query: Any) -> Any:
    try:
        return apply(query)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, f"query parameter {name!r}: {exc}") from None


def _text_filters(category: MODEL_REFERENCE_CATEGORY, query: Any, params: QueryParams) -> Any:
    backend = params.text("backend")
    exclude = bool(params.boolean("exclude_backend_variations", False))
    quantized = params.boolean("quantized")
    if category is not MODEL_REFERENCE_CATEGORY.text_generation:
        given = [
            n for n, v in zip(_TEXT_ONLY, (backend, exclude or None, quantized), strict=True) if v is not None
        ]
        if given:
            raise ApiError(422, f"query parameter {given[0]!r}: applies to text_generation only")
        return query
    if backend is not None:
        query = _step("backend", lambda q: q.for_backend(backend), query)
    if exclude:
        query = query.exclude_backend_variations()
    if quantized is True:
        query = query.only_quantized()
    elif quantized is False:
        query = query.exclude_quantized()
    return query


def _licensing(query: Any, params: QueryParams) -> Any:
    if params.text("license_id") is not None:
        query = query.filter(lambda r: False)
    for name in ("commercial_use", "redistribution"):
        value = params.text(name)
        if value is None:
            continue
        if value not in _PERMISSIONS:
            raise ApiError(
                422, f"query parameter {name!r}: must be one of {', '.join(_PERMISSIONS)}, got {value!r}"
            )
        if value != "unknown":
            query = query.filter(lambda r: False)
    return query
