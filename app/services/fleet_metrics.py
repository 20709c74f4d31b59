"""The `/metrics` scrape (SPEC §10): every process-wide metric, plus this app's gauges read now.

The display counts by status, the open incidents and the outbox's backlog need the database; when
it does not answer within a scrape's patience they are left out and everything else is still
served, so a dashboard keeps its process, ingest and broker metrics through a database outage.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select
from sqlmodel import col

from app.metrics import DATABASE_ERRORS, REGISTRY
from app.models import DISPLAY_STATUSES, Incident, Notification
from app.services.overview import Rules, client_views
from app.state import AppState

logger = logging.getLogger(__name__)

STATUS_WINDOW_HOURS = 24
# A scrape must answer before Prometheus' own timeout (10 s by default) even if the database hangs.
DATABASE_PATIENCE_SECONDS = 3.0
# `infoscreen_mqtt_connected`: up, down (retrying), or ingestion switched off (MQTT_ENABLED=false).
MQTT_CONNECTED, MQTT_DOWN, MQTT_DISABLED = 1, 0, -1


async def display_counts(state: AppState) -> dict[str, int]:
    """How many displays are in each status now (over the last 24 hours of logs): two statements."""
    rules = Rules(
        grace_seconds=state.settings.heartbeat_grace_seconds,
        priority_ttl_seconds=state.settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
    )
    async with state.session_factory() as session:
        views = await client_views(session, now=state.now(), hours=STATUS_WINDOW_HOURS, rules=rules, with_logs=False)
    counts = dict.fromkeys(DISPLAY_STATUSES, 0)
    for view in views:
        counts[view.status] += 1
    return counts


@dataclass(frozen=True)
class AlertCounts:
    open_incidents: int
    pending_notifications: int
    oldest_pending_seconds: float


async def alert_counts(state: AppState) -> AlertCounts:
    """Open incidents and the outbox's backlog: one statement (the open and pending rows, on their indexes)."""
    pending = col(Notification.status) == "pending"
    query = select(
        select(func.count()).where(col(Incident.closed_at).is_(None)).scalar_subquery(),
        select(func.count()).where(pending).scalar_subquery(),
        select(func.min(col(Notification.created_at))).where(pending).scalar_subquery(),
    )
    async with state.session_factory() as session:
        incidents, notifications, oldest = (await session.execute(query)).one()
    if isinstance(oldest, str):  # SQLite hands the MIN of a timestamp column back as text
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=UTC)
    age = (state.now() - oldest).total_seconds() if oldest is not None else 0.0
    return AlertCounts(int(incidents), int(notifications), max(age, 0.0))


async def _database_counts(state: AppState) -> tuple[dict[str, int], AlertCounts]:
    return await display_counts(state), await alert_counts(state)


async def render(state: AppState) -> bytes:
    """The text exposition: the process-wide registry, then this app's broker state and display counts."""
    scrape = CollectorRegistry(auto_describe=True)
    backlog = Gauge(
        "infoscreen_screen_analysis_backlog",
        "Displays whose latest screenshot waits for screen analysis in this process.",
        registry=scrape,
    )
    backlog.set(state.analysis.depth)
    connected = Gauge(
        "infoscreen_mqtt_connected",
        "MQTT broker connection: 1 connected, 0 down (reconnecting), -1 disabled (MQTT_ENABLED=false).",
        registry=scrape,
    )
    if not state.mqtt.enabled:
        connected.set(MQTT_DISABLED)
    else:
        connected.set(MQTT_CONNECTED if state.mqtt.connected else MQTT_DOWN)
    try:
        counts, alerts = await asyncio.wait_for(_database_counts(state), DATABASE_PATIENCE_SECONDS)
    except Exception:  # any failure: the counts are left out, the rest is served
        logger.warning("metrics: display counts left out, the database does not answer", exc_info=True)
        DATABASE_ERRORS.labels("metrics").inc()
    else:
        displays = Gauge(
            "infoscreen_displays",
            "Displays by status (offline, critical, warning, healthy), evaluated at scrape time.",
            ["status"],
            registry=scrape,
        )
        for status, count in counts.items():
            displays.labels(status).set(count)
        Gauge("infoscreen_incidents_open", "Incidents open now (SPEC §12).", registry=scrape).set(alerts.open_incidents)
        Gauge(
            "infoscreen_notifications_pending",
            "Webhook deliveries waiting in the outbox (due or backing off).",
            registry=scrape,
        ).set(alerts.pending_notifications)
        Gauge(
            "infoscreen_notifications_oldest_pending_seconds",
            "Age of the oldest delivery waiting in the outbox (0 when none waits).",
            registry=scrape,
        ).set(alerts.oldest_pending_seconds)
    return generate_latest(REGISTRY) + generate_latest(scrape)
