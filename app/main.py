"""The ASGI app: `create_app()` and the lifespan that owns every long-lived resource."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from app.config import Settings, load_settings
from app.db import create_engine, create_session_factory, run_migrations
from app.errors import install_error_handlers
from app.headers import NoSniff
from app.limits import BodySizeLimit
from app.metrics import HttpMetrics
from app.models import utcnow
from app.routers import (
    client_logs,
    clients,
    events,
    incidents,
    ingest,
    maintenance,
    ops,
    pages,
    screenshots,
    tokens,
    webhooks,
)
from app.services.evaluator import start_status_evaluator
from app.services.event_feed import start_event_feed, stop_event_feed
from app.services.event_ticker import start_event_ticker
from app.services.ingest import UUID_PATTERN
from app.services.mqtt import start_mqtt_ingest
from app.services.retention import start_retention_task
from app.services.screen_analysis_worker import start_screen_analysis
from app.services.sweep import start_sweep_task
from app.services.tokens import ensure_bootstrap_token
from app.services.webhooks import start_webhook_delivery
from app.state import AppState

logger = logging.getLogger(__name__)

DESCRIPTION = """Monitoring for fleets of digital-signage displays.

Displays publish heartbeats, logs, health and screenshots over MQTT (or HTTP); this API serves the
monitoring overview, logs, error summaries and screenshots. Send `Authorization: Bearer <token>`.
"""


GZIP_MINIMUM_BYTES = 1400
# How long shutdown waits for the cancelled background tasks.
SHUTDOWN_TASKS_SECONDS = 10.0
GZIP_EXCLUDED = ("image/jpeg", "image/png", "text/event-stream")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=False)
    logging.getLogger().setLevel(level)


# Cyclic garbage collection: the default first generation (700 allocations) makes the collector run
# thousands of times while an overview of 10,000 clients is built (about a million objects, most of
# them alive until the response is sent): a third of the request's time. Collections stay on, only
# rarer; reference counting still frees everything without cycles at once.
GC_THRESHOLDS = (100_000, 20, 10)


def tune_garbage_collection() -> None:
    """Rarer collections, and the objects of start-up (imports, app) kept out of every later one.

    Process-wide, so `python -m app serve` calls it once before serving (not the app factory,
    which tests call many times in one process).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """Build the app; `settings` and `clock` are injectable for tests."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.LOG_LEVEL)
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        settings.screenshots_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.database_url)
        state = AppState(settings=settings, engine=engine, session_factory=create_session_factory(engine), clock=clock)
        app.state.monitor = state
        try:
            if settings.AUTO_MIGRATE:
                await run_migrations(engine)
            async with state.session_factory() as session, session.begin():
                await ensure_bootstrap_token(
                    session,
                    initial_secret=settings.INITIAL_SUPERADMIN_TOKEN,
                    token_file=settings.initial_token_path,
                    now=state.now(),
                )
            await start_event_feed(state.events, engine, settings.database_url, state.tasks)
            start_event_ticker(state)
            start_retention_task(state)
            start_sweep_task(state)
            if settings.STATUS_EVALUATION_ENABLED:
                start_status_evaluator(state)
            if settings.WEBHOOK_DELIVERY_ENABLED:
                start_webhook_delivery(state)
            if settings.SCREEN_ANALYSIS_ENABLED:
                await start_screen_analysis(state)
            if settings.MQTT_ENABLED:
                # Connects in the background: a broker that is down never blocks start-up.
                start_mqtt_ingest(state)
            yield
        finally:
            # Every open event stream ends first: none may hold the shutdown up.
            stop_event_feed(state.events, engine)
            for task in state.tasks:
                task.cancel()
            if state.tasks:
                # Bounded: a task that ignored its cancellation is named in the log, never waited on for ever.
                done, pending = await asyncio.wait(state.tasks, timeout=SHUTDOWN_TASKS_SECONDS)
                for task in done:
                    if not task.cancelled():
                        task.exception()  # retrieved: a task's failure was logged where it happened
                for task in pending:
                    logger.error("task %s did not stop within %.0f s", task.get_name(), SHUTDOWN_TASKS_SECONDS)
            await engine.dispose()

    app = FastAPI(
        title="Infoscreen Monitor",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by app/routers/pages.py from vendored assets: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_screenshot_bytes=settings.MAX_SCREENSHOT_BYTES)
    app.add_middleware(NoSniff)
    app.add_middleware(HttpMetrics)
    # JSON of more than about one TCP segment goes gzipped to clients that accept it (the overview of
    # 10,000 displays: 9 MB, about 1 MB gzipped). Level 1: most of the saving for a fraction of the CPU
    # of level 9 (docs/performance.md). Images (already compressed) and event streams (each event must
    # reach the page at once, not when a compressor's buffer fills) are never compressed.
    app.add_middleware(
        GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=1, exclude_content_types=GZIP_EXCLUDED
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "Retry-After", "X-Screenshot-Type", "X-Screenshot-Fallback"],
            max_age=600,
        )
    for module in (
        ops,
        tokens,
        client_logs,
        clients,
        incidents,
        maintenance,
        webhooks,
        ingest,
        screenshots,
        events,
        pages,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("app", "static")]), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# Operations that never touch the database: every other one may answer 503 `Database unavailable`.
NO_DATABASE_OPERATIONS = frozenset({"ops_healthz", "ops_metrics", "ops_readyz"})
TAGS = [
    {"name": "client-logs", "description": "The original `client_logs` blueprint: logs, summaries, the overview."},
    {"name": "clients", "description": "Displays: read, update, delete."},
    {"name": "groups", "description": "Groups of displays."},
    {"name": "incidents", "description": "Status history and incidents, as the status evaluator recorded them."},
    {"name": "maintenance", "description": "Maintenance windows: when notifications are silenced."},
    {"name": "webhooks", "description": "Where notifications of incidents go (superadmin)."},
    {"name": "screenshots", "description": "Screenshot images (with ETag) and history."},
    {"name": "ingest", "description": "What displays send over HTTP (the same effects as over MQTT)."},
    {"name": "events", "description": "The dashboard's live feed (Server-Sent Events)."},
    {"name": "tokens", "description": "API tokens and their roles."},
    {"name": "operations", "description": "Probes and Prometheus metrics; no token needed."},
]
_ERROR_RESPONSES = {
    "NotFound": 'Unknown path: `{"error": "Not found"}`',
    "MethodNotAllowed": 'Known path, wrong method: `{"error": "Method not allowed"}`, with `Allow`',
    "BodyTooLarge": 'The body is larger than its path allows: `{"error": "Request body too large"}`',
    "DatabaseUnavailable": 'The database is down or restarting: 503 `{"error": "Database unavailable"}` with '
    "`Retry-After: 1`; the retry reconnects",
}


def _absent_not_null(body: dict[str, Any]) -> None:
    """An optional body (the heartbeat's) is one that may be left out, not a `null`: generated clients
    then send nothing when given nothing (openapi-python-client 0.29 sends its `Unset` marker otherwise)."""
    if body.get("required"):
        return
    for media in body.get("content", {}).values():
        variants = media.get("schema", {}).get("anyOf", [])
        if len(variants) == 2 and {"type": "null"} in variants:
            [media["schema"]] = [variant for variant in variants if variant != {"type": "null"}]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with our error contract (no 422: bad input is a 400 `{"error"}`).

    Each operation's summary is the first line of its endpoint's docstring, not the function name.
    The answers of the middleware and the database (413 for any body, 503) are declared here, once.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=TAGS
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if "requestBody" in operation:
                responses.setdefault("413", {"$ref": "#/components/responses/BodyTooLarge"})
                _absent_not_null(operation["requestBody"])
            if operation.get("operationId") not in NO_DATABASE_OPERATIONS:
                responses.setdefault("503", {"$ref": "#/components/responses/DatabaseUnavailable"})
            operation["responses"] = dict(sorted(responses.items()))
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "client_uuid":
                    # Checked in the endpoint (400 "Invalid client uuid"); documented here for generated clients.
                    parameter["schema"].update(pattern=UUID_PATTERN.pattern, maxLength=64)
            description = operation.get("description", "")
            if description:
                operation["summary"] = description.strip().splitlines()[0]
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    # Answers that belong to no one operation (SPEC §5): the same `{"error"}` body as every other error.
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    schema.setdefault("components", {})["responses"] = {
        name: {"description": description, "content": error_body} for name, description in _ERROR_RESPONSES.items()
    }
    app.openapi_schema = schema
    return schema


def __getattr__(name: str) -> Any:
    """`app.main:app` for uvicorn, built on first access so importing this module has no side effects."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
