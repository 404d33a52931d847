"""The HTTP face: today's primary's API, reads served from the in-memory snapshots of `hmr serve`,
writes handed to its `WriteService`.

    app = create_app(supervisor, writes=writes)  # a Starlette app over any SnapshotSource
    await tg.start(serve_http, supervisor, "0.0.0.0", 19800)   # uvicorn in the caller's task group
    await tg.start(partial(serve_http, supervisor, limits=HttpSettings(head_timeout=5)))  # bounds

Endpoints and choices: docs/http.md.
"""

from horde_model_reference.http.app import create_app
from horde_model_reference.http.server import HttpEndpoint, HttpServerError, serve_http
from horde_model_reference.http.source import SnapshotSource, StaticSnapshotSource
from horde_model_reference.writes.settings import HttpSettings

__all__ = [
    "HttpEndpoint",
    "HttpServerError",
    "HttpSettings",
    "SnapshotSource",
    "StaticSnapshotSource",
    "create_app",
    "serve_http",
]
