"""Prometheus text exposition: the service's health figures and the HTTP face's own counters.

`RequestMetricsMiddleware` counts requests by route template, method and status and keeps a
latency histogram per route; `render_metrics` writes those and the figures of the source's
`status()` (per category: state, revision, record counts, events published, fetch durations and
failures, actor restarts; connectivity) and of the AI-Horde client.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from horde_model_reference.bus.events import CategoryHealth, HealthReply
from horde_model_reference.http.source import CATEGORY_STATES, category_state
from horde_model_reference.integrations.horde_api import HordeApiClient

__all__ = ["PROMETHEUS_CONTENT_TYPE", "HttpMetrics", "RequestMetricsMiddleware", "render_metrics"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass
class HttpMetrics:
    """Request counters of one app (mutated on the event loop only)."""

    requests: dict[tuple[str, str, int], int] = field(default_factory=dict)
    durations: dict[str, _Histogram] = field(default_factory=dict)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.durations.get(route)
        if histogram is None:
            histogram = self.durations[route] = _Histogram()
        histogram.observe(seconds)


class RequestMetricsMiddleware:
    """Pure ASGI middleware feeding `HttpMetrics` (the route is the matched path template)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(template, scope["method"], status, time.perf_counter() - started)


def _label(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{text}"'


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)
    return lines


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render_metrics(status: HealthReply, http: HttpMetrics, horde: HordeApiClient | None = None) -> str:
    """The Prometheus text format of everything known."""
    cats = sorted(status.categories.items())
    per = [(f"{{category={_label(name)}}}", health) for name, health in cats]
    lines: list[str] = []
    lines += _family(
        "hmr_info", "gauge", "Service identity.", [(f"{{service_id={_label(status.service_id)}}}", 1)]
    )
    lines += _family(
        "hmr_uptime_seconds", "gauge", "Seconds since the service started.", [("", status.uptime)]
    )
    lines += _family(
        "hmr_category_revision", "gauge", "Revision held per category.", [(lbl, h.revision) for lbl, h in per]
    )
    lines += _family(
        "hmr_category_loaded",
        "gauge",
        "1 when the category has a snapshot.",
        [(lbl, h.digest is not None) for lbl, h in per],
    )
    lines += _family(
        "hmr_category_records", "gauge", "Records in the snapshot.", [(lbl, h.record_count) for lbl, h in per]
    )
    lines += _family(
        "hmr_category_skipped_records",
        "gauge",
        "Records of the current catalog that could not be decoded.",
        [(lbl, h.skipped_records) for lbl, h in per],
    )
    lines += _family(
        "hmr_category_last_change_timestamp_seconds",
        "gauge",
        "Unix time of the last published change.",
        [(lbl, h.last_change) for lbl, h in per if h.last_change is not None],
    )
    lines += _family(
        "hmr_category_last_error_timestamp_seconds",
        "gauge",
        "Unix time of the last fetch or decode error.",
        [(lbl, h.last_error_at) for lbl, h in per if h.last_error_at is not None],
    )
    lines += _category_lines(per)
    lines += _family(
        "hmr_actor_restarts_total",
        "counter",
        "Fetcher actor crashes (each followed by a restart).",
        [(f"{{category={_label(name)}}}", count) for name, count in sorted(status.actor_restarts.items())],
    )
    lines += _family(
        "hmr_nats_connected", "gauge", "1 while connected to NATS.", [("", status.nats_connected)]
    )
    lines += _family(
        "hmr_embedded_nats", "gauge", "1 when NATS is the embedded server.", [("", status.embedded_nats)]
    )
    if status.redis_connected is not None:
        lines += _family(
            "hmr_redis_connected", "gauge", "1 while Redis answers.", [("", status.redis_connected)]
        )
    lines += _http_lines(http)
    if horde is not None:
        lines += _horde_lines(horde)
    return "\n".join(lines) + "\n"


def _category_lines(per: list[tuple[str, CategoryHealth]]) -> list[str]:
    """State, publish, fetch and Redis figures per category (`per`: label, health)."""
    states = [
        (f"{lbl[:-1]},state={_label(state)}}}", category_state(h) == state)
        for lbl, h in per
        for state in CATEGORY_STATES
    ]
    lines = _family("hmr_category_state", "gauge", "1 for the state the category is in.", states)
    for key, help_text in (
        ("events_published", "CategoryChanged events published."),
        ("publish_failures", "CategoryChanged publishes that failed or timed out."),
        ("fetch_failures", "Backend fetches that failed or timed out."),
        ("redis_write_failures", "Snapshot writes to Redis that failed."),
    ):
        samples = [(lbl, getattr(h, key)) for lbl, h in per]
        lines += _family(f"hmr_category_{key}_total", "counter", help_text, samples)
    name = "hmr_category_fetch_duration_seconds"
    lines += [f"# HELP {name} Time to fetch the category from the backend.", f"# TYPE {name} summary"]
    for lbl, h in per:
        lines.append(f"{name}_sum{lbl} {_number(h.fetch_seconds_total)}")
        lines.append(f"{name}_count{lbl} {h.fetch_count}")
    lines += _family(
        "hmr_category_last_fetch_duration_seconds",
        "gauge",
        "How long the latest fetch took.",
        [(lbl, h.last_fetch_seconds) for lbl, h in per if h.last_fetch_seconds is not None],
    )
    return lines


def _http_lines(http: HttpMetrics) -> list[str]:
    requests = [
        (f"{{route={_label(route)},method={_label(method)},status={_label(code)}}}", count)
        for (route, method, code), count in sorted(http.requests.items())
    ]
    lines = _family("hmr_http_requests_total", "counter", "HTTP requests answered.", requests)
    name = "hmr_http_request_duration_seconds"
    lines += [f"# HELP {name} Time to answer an HTTP request.", f"# TYPE {name} histogram"]
    for route, histogram in sorted(http.durations.items()):
        cumulative = 0
        for bound, count in zip((*_BUCKETS, float("inf")), histogram.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f"{name}_bucket{{route={_label(route)},le={_label(le)}}} {cumulative}")
        lines.append(f"{name}_sum{{route={_label(route)}}} {_number(histogram.total)}")
        lines.append(f"{name}_count{{route={_label(route)}}} {cumulative}")
    return lines


def _horde_lines(horde: HordeApiClient) -> list[str]:
    counters = horde.counters
    lines: list[str] = []
    for key, help_text in (
        ("requests", "Requests sent to the AI-Horde API."),
        ("failures", "AI-Horde API requests that failed or timed out."),
        ("cache_hits", "AI-Horde answers served from the TTL cache."),
        ("short_circuited", "Calls refused at once by the open circuit breaker."),
        ("stale_served", "Calls answered with a cached answer older than the TTL."),
    ):
        lines += _family(f"hmr_horde_api_{key}_total", "counter", help_text, [("", getattr(counters, key))])
    breaker = horde.breaker
    lines += _family(
        "hmr_horde_api_breaker_open",
        "gauge",
        "1 while the circuit breaker is not closed.",
        [("", breaker.state != "closed")],
    )
    lines += _family(
        "hmr_horde_api_breaker_opened_total",
        "counter",
        "Times the circuit breaker opened.",
        [("", breaker.opened_total)],
    )
    return lines
