"""The `/metrics` scrape (SPEC §10): every process-wide metric, plus this app's gauges read now.

The display counts by status need the database; when it does not answer within a scrape's patience
they are left out and everything else is still served, so a dashboard keeps its process, ingest and
broker metrics through a database outage.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from app.metrics import DATABASE_ERRORS, REGISTRY
from app.models import DISPLAY_STATUSES
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
        counts = await asyncio.wait_for(display_counts(state), DATABASE_PATIENCE_SECONDS)
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
    return generate_latest(REGISTRY) + generate_latest(scrape)
