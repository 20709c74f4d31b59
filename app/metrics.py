"""Prometheus metrics (SPEC §10): ingest outcomes, buffer depth, HTTP durations, displays by status.

Process-wide metrics live in one dedicated registry, defined once at import, so any number of app
instances in one process (tests) never register a name twice. What belongs to one app (displays by
status, the broker connection) is computed from its state at scrape time.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.models import DISPLAY_STATUSES
from app.services.overview import Rules, client_views
from app.state import AppState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_WINDOW_HOURS = 24
# Paths no route matched share one label value, so scanners cannot blow up the label set.
UNMATCHED_ROUTE = "<unmatched>"

REGISTRY = CollectorRegistry(auto_describe=True)

MQTT_MESSAGES = Counter(
    "infoscreen_mqtt_messages",
    "MQTT messages received, by kind (topic suffix) and outcome (stored, dropped reason, ...).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
INGEST_BUFFER_DEPTH = Gauge(
    "infoscreen_ingest_buffer_depth",
    "MQTT messages received and waiting to be written to the database.",
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "infoscreen_http_request_duration_seconds",
    "HTTP request durations, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

STATUSES = DISPLAY_STATUSES


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/screenshots/{client_uuid}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    return f"{scope.get('root_path', '')}{path}" if scope.get("root_path") else path


class HttpMetrics:
    """ASGI middleware timing every HTTP request into `HTTP_REQUEST_DURATION`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            HTTP_REQUEST_DURATION.labels(scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


async def render(state: AppState) -> bytes:
    """The text exposition: the process-wide registry plus this app's gauges, read now."""
    scrape = CollectorRegistry(auto_describe=True)
    displays = Gauge(
        "infoscreen_displays", "Displays by status (offline, critical, warning, healthy).", ["status"], registry=scrape
    )
    connected = Gauge("infoscreen_mqtt_connected", "1 while the MQTT broker connection is up, else 0.", registry=scrape)
    rules = Rules(
        grace_seconds=state.settings.heartbeat_grace_seconds,
        priority_ttl_seconds=state.settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
    )
    async with state.session_factory() as session:
        views = await client_views(session, now=state.now(), hours=STATUS_WINDOW_HOURS, rules=rules, with_logs=False)
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for view in views:
        counts[view.status] += 1
    for status, count in counts.items():
        displays.labels(status).set(count)
    connected.set(1 if state.mqtt.enabled and state.mqtt.connected else 0)
    return generate_latest(REGISTRY) + generate_latest(scrape)
