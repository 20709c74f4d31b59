"""Reads of what the status evaluator recorded (SPEC §12): status history, uptime, incidents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ClientNotFound, IncidentNotFound
from app.models import Client, DisplayState, DisplayStatus, Incident, Notification, StatusChange
from app.services.notifications import incident_payload

# The windows of the uptime in `GET /api/clients/{uuid}`, by field name.
UPTIME_WINDOWS = {"uptime_24h": timedelta(hours=24), "uptime_7d": timedelta(days=7), "uptime_30d": timedelta(days=30)}
_LONGEST_WINDOW = max(UPTIME_WINDOWS.values())
# The history, closed incidents and finished deliveries are kept at least this long (the longest uptime
# window), or `LOG_RETENTION_DAYS` if longer.
MIN_RETENTION = _LONGEST_WINDOW
# A status history answer holds at most this many transitions (the newest).
MAX_TRANSITIONS = 1000


@dataclass(frozen=True)
class Change:
    at: datetime
    from_status: DisplayStatus | None
    to_status: DisplayStatus


def uptime(
    changes: Sequence[Change], *, current: DisplayStatus, tracked_since: datetime, now: datetime, window: timedelta
) -> float | None:
    """The share of `window` before `now` the display was not offline, as far as it was tracked.

    `changes` are the confirmed transitions in time order (at least those of the window); time before
    `tracked_since` (the evaluator's first look) is left out. None when nothing of the window was tracked.
    """
    start = max(now - window, tracked_since)
    if start >= now:
        return None
    later = [change for change in changes if start < change.at <= now]
    status = later[0].from_status if later else current
    moment, offline = start, timedelta(0)
    for change in later:
        if status == "offline":
            offline += change.at - moment
        moment, status = change.at, change.to_status
    if status == "offline":
        offline += now - moment
    return 1 - offline / (now - start)


async def client_uptime(session: AsyncSession, *, client_uuid: str, now: datetime) -> dict[str, float | None]:
    """Uptime over 24 h, 7 d and 30 d: one statement (the display's state with its month of transitions)."""
    query = (
        select(
            col(DisplayState.status),
            col(DisplayState.tracked_since),
            col(StatusChange.at),
            col(StatusChange.from_status),
            col(StatusChange.to_status),
        )
        .outerjoin(
            StatusChange,
            and_(
                col(StatusChange.client_uuid) == col(DisplayState.client_uuid),
                col(StatusChange.at) >= now - _LONGEST_WINDOW,
            ),
        )
        .where(col(DisplayState.client_uuid) == client_uuid)
        .order_by(col(StatusChange.at), col(StatusChange.id))
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return dict.fromkeys(UPTIME_WINDOWS)
    current, tracked_since = rows[0].status, rows[0].tracked_since
    changes = [Change(row.at, row.from_status, row.to_status) for row in rows if row.at is not None]
    return {
        name: uptime(changes, current=current, tracked_since=tracked_since, now=now, window=window)
        for name, window in UPTIME_WINDOWS.items()
    }


def change_entry(row: Any) -> dict[str, Any]:
    return {
        "from": row.from_status,
        "to": row.to_status,
        "at": row.at,
        "reasons": orjson.loads(row.reasons),
        "screenshot_hash": row.screenshot_hash,
        "priority_screenshot_hash": row.priority_screenshot_hash,
    }


async def status_history(session: AsyncSession, *, client_uuid: str, since: datetime) -> list[dict[str, Any]]:
    """The confirmed transitions since `since`, oldest first (at most the newest `MAX_TRANSITIONS`); 404 for an
    unknown client. One statement, two when there is none (to tell an empty history from an unknown client)."""
    query = (
        select(StatusChange)
        .where(col(StatusChange.client_uuid) == client_uuid, col(StatusChange.at) >= since)
        .order_by(col(StatusChange.at).desc(), col(StatusChange.id).desc())
        .limit(MAX_TRANSITIONS)
    )
    rows = list((await session.execute(query)).scalars())
    if not rows and await session.scalar(select(col(Client.uuid)).where(col(Client.uuid) == client_uuid)) is None:
        raise ClientNotFound()
    return [change_entry(row) for row in reversed(rows)]


def incident_entry(incident: Incident, hostname: str | None, description: str | None) -> dict[str, Any]:
    """The incident as `GET /api/incidents` lists it: what its notifications carry, and whether it is open."""
    return {
        **incident_payload(incident, hostname=hostname, description=description),
        "open": incident.closed_at is None,
    }


@dataclass(frozen=True)
class IncidentFilter:
    # True: only open ones; False: only closed ones; None: both.
    open: bool | None = None
    group_id: int | None = None
    client_uuid: str | None = None
    # Only incidents open at some moment since then (still open, or closed since).
    since: datetime | None = None


def _with_client() -> Any:
    return select(Incident, col(Client.hostname), col(Client.description)).join(
        Client, col(Client.uuid) == col(Incident.client_uuid)
    )


async def list_incidents(session: AsyncSession, *, where: IncidentFilter, limit: int) -> list[dict[str, Any]]:
    """Newest first (opened_at, then id), with the display's hostname and description: one statement.

    Each filter has its index: `closed_at` (open, since), (group_id, opened_at), (client_uuid, opened_at),
    (opened_at, id) for the order.
    """
    query = _with_client()
    if where.open is True:
        query = query.where(col(Incident.closed_at).is_(None))
    elif where.open is False:
        query = query.where(col(Incident.closed_at).is_not(None))
    if where.group_id is not None:
        query = query.where(col(Incident.group_id) == where.group_id)
    if where.client_uuid is not None:
        query = query.where(col(Incident.client_uuid) == where.client_uuid)
    if where.since is not None:
        query = query.where(or_(col(Incident.closed_at).is_(None), col(Incident.closed_at) >= where.since))
    query = query.order_by(col(Incident.opened_at).desc(), col(Incident.id).desc()).limit(limit)
    return [incident_entry(*row) for row in (await session.execute(query)).all()]


async def acknowledge(session: AsyncSession, *, incident_id: int, by: str, now: datetime) -> dict[str, Any]:
    """Mark an incident acknowledged (the first acknowledgement stays); 404 for an unknown one."""
    await session.execute(
        update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.acknowledged_at).is_(None))
        .values(acknowledged_at=now, acknowledged_by=by)
    )
    row = (await session.execute(_with_client().where(col(Incident.id) == incident_id))).first()
    if row is None:
        raise IncidentNotFound()
    return incident_entry(*row)


async def delete_expired_history(session: AsyncSession, *, before: datetime) -> dict[str, int]:
    """Delete transitions, closed incidents and sent or failed deliveries older than `before`, each by its
    index (`at`, `closed_at`, `created_at`); open incidents and pending deliveries stay. Never commits."""
    statements = {
        "status_history": delete(StatusChange).where(col(StatusChange.at) < before),
        "incidents": delete(Incident).where(col(Incident.closed_at) < before),
        "notifications": delete(Notification).where(
            col(Notification.created_at) < before, col(Notification.status) != "pending"
        ),
    }
    deleted = {}
    for table, statement in statements.items():
        result = await session.execute(statement)
        deleted[table] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted
