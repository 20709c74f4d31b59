"""The Prometheus metrics every layer records into (SPEC §10); README "Metrics" says what each means.

Only metric objects and the cheap helpers that feed them live here, so any module may import this one
and it imports nothing of the app: the scrape itself, with the per-status display counts that need the
database, is `app.services.fleet_metrics`. The metrics live in one dedicated registry, defined once at
import, so any number of app instances in one process (tests) never register a name twice.
"""

from __future__ import annotations

import importlib.metadata
import platform
import time
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Counters are exposed without the `_created` series (one per label set, noise for dashboards).
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Paths no route matched share one label value, so scanners cannot blow up the label set.
UNMATCHED_ROUTE = "<unmatched>"

REGISTRY = CollectorRegistry(auto_describe=True)
# process_* (memory, CPU, open files, start time) and python_info.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

BUILD_INFO = Info("infoscreen_build", "The running service: its version and Python.", registry=REGISTRY)


def _version() -> str:
    try:
        return importlib.metadata.version("infoscreen-monitor")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO.info({"version": _version(), "python": platform.python_version()})

MQTT_MESSAGES = Counter(
    "infoscreen_mqtt_messages",
    "MQTT messages received, by kind (topic suffix) and outcome (stored, dropped reason, ...).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
MQTT_RECONNECTS = Counter(
    "infoscreen_mqtt_reconnects",
    "Times the MQTT connection was lost or could not be made, so the service connects again (with backoff).",
    registry=REGISTRY,
)
INGEST_BUFFER_DEPTH = Gauge(
    "infoscreen_ingest_buffer_depth",
    "MQTT messages received and waiting to be written to the database.",
    registry=REGISTRY,
)
ORPHAN_FILES_REMOVED = Counter(
    "infoscreen_orphan_screenshot_files_removed",
    "Screenshot files without a row (left by an interrupted write) removed by the sweep.",
    registry=REGISTRY,
)
INGEST_BATCH_COMMIT = Histogram(
    "infoscreen_ingest_batch_commit_seconds",
    "Time to apply and commit one MQTT batch (one transaction), successful writes only.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
NOTIFICATIONS_DELIVERED = Counter(
    "infoscreen_notifications",
    "Webhook delivery attempts by outcome: sent (the receiver answered 2xx), retried (it will be tried "
    "again), failed (given up after 24 hours).",
    ["outcome"],
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "infoscreen_database_errors",
    "Database operations that failed, by source: http (answered 503), mqtt (a batch write), retention, "
    "metrics (a scrape left the display counts out), evaluator (a status evaluation pass), "
    "webhooks (a delivery round).",
    ["source"],
    registry=REGISTRY,
)
LOG_LINES_STORED = Counter(
    "infoscreen_log_lines_stored",
    "Log lines committed to the database (a repeated message_id is not stored again).",
    registry=REGISTRY,
)
SCREENSHOT_BYTES_STORED = Counter(
    "infoscreen_screenshot_bytes_stored",
    "Bytes of screenshot images committed (files written and their rows committed).",
    registry=REGISTRY,
)
RETENTION_DELETED = Counter(
    "infoscreen_retention_deleted_rows",
    "Rows removed because they aged out (table: client_logs, status_history, incidents, notifications).",
    ["table"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "infoscreen_http_request_duration_seconds",
    "HTTP request durations, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


class IngestLag:
    """When the oldest MQTT message received and not yet stored arrived (monotonic clock), or None."""

    def __init__(self) -> None:
        self.waiting_since: float | None = None

    def seconds(self) -> float:
        return 0.0 if self.waiting_since is None else max(0.0, time.monotonic() - self.waiting_since)


INGEST_WAITING = IngestLag()
INGEST_LAG = Gauge(
    "infoscreen_ingest_lag_seconds",
    "Age of the oldest MQTT message received but not yet stored; 0 when everything received is stored.",
    registry=REGISTRY,
)
INGEST_LAG.set_function(INGEST_WAITING.seconds)


_AFTER_COMMIT = "metrics_after_commit"


def count_after_commit(session: AsyncSession | Session, counter: Any, amount: float) -> None:
    """Add `amount` to `counter` once this session's transaction commits (nothing if it rolls back)."""
    if amount:
        sync_session = session.sync_session if isinstance(session, AsyncSession) else session
        sync_session.info.setdefault(_AFTER_COMMIT, []).append((counter, amount))


@event.listens_for(Session, "after_commit")
def _apply_counts(session: Session) -> None:
    for counter, amount in session.info.pop(_AFTER_COMMIT, ()):
        counter.inc(amount)


@event.listens_for(Session, "after_rollback")
def _drop_counts(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


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
