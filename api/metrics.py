"""Prometheus metrics of the API: request counts and latency histograms by route template.

A small exposition of our own (``prometheus_client`` is not a dependency): a pure ASGI
middleware observes each HTTP request under its route *template* (``/api/v1/connections/
{connection_id}``, never the concrete path, so ids do not explode the label space; unmatched
paths share ``route="unmatched"``), and :meth:`Metrics.render` writes the text format 0.0.4.
Counts are per process: with several uvicorn workers, scrape each or sum in Prometheus.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Key = tuple[str, str, str]


class Metrics:
    """Thread-safe counters and histograms keyed by (method, route, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[Key, list[int]] = {}
        self._sums: dict[Key, float] = {}
        self._counts: dict[Key, int] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "other", route, str(status))
        with self._lock:
            buckets = self._buckets.setdefault(key, [0] * len(BUCKETS))
            i = bisect.bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                buckets[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + seconds
            self._counts[key] = self._counts.get(key, 0) + 1

    def render(self) -> str:
        with self._lock:
            keys = sorted(self._counts)
            lines = [
                "# HELP openfuse_api_requests_total HTTP requests handled, by method, route template and status.",
                "# TYPE openfuse_api_requests_total counter",
            ]
            lines += [f"openfuse_api_requests_total{{{_labels(k)}}} {self._counts[k]}" for k in keys]
            lines += [
                "# HELP openfuse_api_request_duration_seconds Time to answer an HTTP request.",
                "# TYPE openfuse_api_request_duration_seconds histogram",
            ]
            for k in keys:
                cumulative = 0
                for bound, n in zip(BUCKETS, self._buckets[k], strict=True):
                    cumulative += n
                    lines.append(
                        f'openfuse_api_request_duration_seconds_bucket{{{_labels(k)},le="{bound}"}} {cumulative}'
                    )
                lines.append(
                    f'openfuse_api_request_duration_seconds_bucket{{{_labels(k)},le="+Inf"}} {self._counts[k]}'
                )
                lines.append(f"openfuse_api_request_duration_seconds_sum{{{_labels(k)}}} {self._sums[k]:.6f}")
                lines.append(f"openfuse_api_request_duration_seconds_count{{{_labels(k)}}} {self._counts[k]}")
        return "\n".join(lines) + "\n"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(k: Key) -> str:
    return f'method="{_escape(k[0])}",route="{_escape(k[1])}",status="{_escape(k[2])}"'


class MetricsMiddleware:
    """Times every HTTP request and records it under its route template.

    ``template`` maps the matched route (``scope["route"]``, or None) to its full path template.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, template: Callable[[Any], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = self.template(scope.get("route"))
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
