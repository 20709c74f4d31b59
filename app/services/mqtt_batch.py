"""Apply a batch of MQTT messages in one unit of work, through the same ingest services as HTTP.

Logs of every display go in one `record_logs` call. Heartbeats and health are coalesced per
display (the fields merge in arrival order, the last values win) and applied in the display's own
order relative to its screenshots and `offline` announcements, so coalescing never changes the
outcome. Displays are written in uuid order, so two replicas lock rows in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.services import ingest
from app.services.mqtt_topics import Action, Liveness, LogLine, ScreenshotUpload, StatusChange
from app.services.screenshots import store_screenshot


@dataclass
class _Display:
    """What one display's messages in a batch add up to."""

    fields: dict[str, Any] = field(default_factory=dict)
    alive_at: datetime | None = None
    screenshots: list[ScreenshotUpload] = field(default_factory=list)
    offline_at: datetime | None = None
    status_seen: bool = False

    def add(self, action: Action) -> None:
        if isinstance(action, Liveness):
            self.fields.update(action.fields)
            self.alive_at = action.received_at
            # A sign of life after an `offline` in the same batch supersedes it.
            self.offline_at = None
        elif isinstance(action, ScreenshotUpload):
            self.screenshots.append(action)
            self.offline_at = None
        elif isinstance(action, StatusChange):
            self.status_seen = True
            if not action.online:
                self.offline_at = action.received_at


async def apply_actions(session: AsyncSession, actions: Sequence[Action], *, settings: Settings, now: datetime) -> None:
    """Apply every action in `session` (no commit; screenshot files go to the session's unit of work).

    `now` (the batch's latest arrival) is the registration time of displays first seen in logs.
    Heartbeats are written for all displays at once (one statement per set of fields), before or
    after each display's screenshots so that `last_alive` ends at its latest arrival.
    """
    displays: dict[str, _Display] = {}
    for action in actions:
        if not isinstance(action, LogLine):
            displays.setdefault(action.client_uuid, _Display()).add(action)
    ordered = sorted(displays.items())
    logs = [(action.client_uuid, action.record) for action in actions if isinstance(action, LogLine)]
    checked_logs = {client_uuid for client_uuid, record in logs if record.level in ingest.STATUS_LEVELS}
    if checked_logs and session.get_bind().dialect.name == "postgresql":
        # Lock every known clients row this batch writes before any of them, in uuid order (the heartbeat
        # upserts lock theirs one set of fields at a time, and the logs' status check comes last).
        await ingest.ensure_clients(session, checked_logs, now=now)
        await ingest.lock_clients(session, checked_logs | displays.keys())
    before_shots: list[tuple[str, dict[str, Any], datetime]] = []
    after_shots: list[tuple[str, dict[str, Any], datetime]] = []
    for client_uuid, display in ordered:
        if display.alive_at is not None:
            last = all(shot.received_at <= display.alive_at for shot in display.screenshots)
            (after_shots if last else before_shots).append((client_uuid, display.fields, display.alive_at))
    await ingest.record_heartbeats(session, before_shots)
    for client_uuid, display in ordered:
        for shot in display.screenshots:
            await store_screenshot(
                session,
                settings=settings,
                client_uuid=client_uuid,
                image=shot.image,
                screenshot_type=shot.screenshot_type,
                captured_at=shot.captured_at,
                now=shot.received_at,
            )
    await ingest.record_heartbeats(session, after_shots)
    announced_only: list[str] = []
    for client_uuid, display in ordered:
        if display.offline_at is not None:
            await ingest.record_status(session, client_uuid=client_uuid, online=False, now=display.offline_at)
        elif display.status_seen and display.alive_at is None and not display.screenshots:
            # `online` alone registers the display but is no heartbeat.
            announced_only.append(client_uuid)
    await ingest.ensure_clients(session, announced_only, now=now)
    if logs:
        await ingest.record_logs(session, logs, now=now, clients_locked=True)
