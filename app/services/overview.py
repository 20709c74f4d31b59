"""The monitoring overview and the client list: two statements whatever the fleet size."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import DateTime, Select, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.models import (
    PRIORITY_SCREENSHOT_TYPES,
    Client,
    ClientGroup,
    ClientLog,
    DisplayStatus,
    LatestLog,
    StatusReason,
    UTCDateTime,
)
from app.services.logs import LevelCounts, empty_counts, parse_context, window_counts
from app.services.status import client_status, is_alive, priority_active, status_reasons


@dataclass(frozen=True)
class ClientFilter:
    """Optional narrowing of the client list and the overview; the default keeps every client.

    No index serves `search` (a substring): the unfiltered query reads every client anyway, and the
    filters only drop rows from that one scan; `group_id` has its index (`ix_clients_group_id`).
    """

    group_id: int | None = None
    status: str | None = None
    # Free text, case-insensitive, matched anywhere in hostname, description or uuid.
    search: str | None = None


NO_FILTER = ClientFilter()


@dataclass(frozen=True)
class Rules:
    """The settings the status rules need, read once per request."""

    grace_seconds: int
    priority_ttl_seconds: int


@dataclass
class ClientView:
    # A row with the client's columns under their model names (attribute access like a `Client`).
    client: Any
    group_name: str | None
    latest_log: dict[str, Any] | None
    latest_error: dict[str, Any] | None
    counts: LevelCounts
    alive: bool
    status: DisplayStatus
    priority_active: bool
    status_reasons: list[StatusReason]


# The client columns every view needs, selected as Core columns: no ORM entity is built per client.
_CLIENT_COLUMNS = list(Client.__table__.columns)  # type: ignore[attr-defined]
_LOG_COLUMNS = ("id", "timestamp", "level", "message", "context")
_CLIENT_POSITION = {column.name: position for position, column in enumerate(_CLIENT_COLUMNS)}
_GROUP_NAME = len(_CLIENT_COLUMNS)


def _fields(*names: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Positional getter for these client columns of a row tuple (much cheaper than attribute access)."""
    getter = itemgetter(*(_CLIENT_POSITION[name] for name in names))
    return cast(Callable[[tuple[Any, ...]], tuple[Any, ...]], getter)


_STATUS_FIELDS = _fields(
    "uuid",
    "is_active",
    "last_alive",
    "offline_announced_at",
    "process_status",
    "screen_health_status",
    "last_priority_received_at",
    "detected_screen_health",
)
_PAYLOAD_FIELDS = _fields(
    "uuid",
    "hostname",
    "description",
    "ip",
    "model",
    "group_id",
    "registration_time",
    "last_alive",
    "current_event_id",
    "current_process",
    "process_status",
    "process_pid",
    "screen_health_status",
    "last_screenshot_analyzed",
    "last_screenshot_hash",
    "latest_screenshot_type",
    "last_priority_screenshot_type",
    "last_priority_received_at",
    "last_priority_screenshot_hash",
    "detected_screen_health",
    "detected_screen_health_reason",
)


# At most this many overview builds (rows, views, payload) are in memory at once: with 10,000 clients
# one build holds ~40 MB, so 8 concurrent dashboards would otherwise push the process past 300 MB.
# The work is CPU-bound on the same cores either way, so throughput does not drop.
OVERVIEW_BUILDS = 2
_build_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


def _overview_slots() -> asyncio.Semaphore:
    """The build semaphore of the running event loop (tests run many loops in one process)."""
    loop = asyncio.get_running_loop()
    slots = _build_slots.get(loop)
    if slots is None:
        slots = _build_slots[loop] = asyncio.Semaphore(OVERVIEW_BUILDS)
    return slots


def _as_received(column: Any, dialect: str, *, label: str | None = None) -> Any:
    """On PostgreSQL a UTC timestamp column is read as asyncpg decodes it (already aware UTC), skipping the
    per-value `UTCDateTime` result processing; on SQLite that processing turns stored text into datetimes."""
    if dialect == "postgresql" and isinstance(column.type, UTCDateTime):
        return type_coerce(column, DateTime(timezone=True)).label(label or column.name)
    return column


def _clients_query(*, with_logs: bool, dialect: str) -> Select[Any]:
    """Clients with their group name (and newest log and error), unordered (see `_dashboard_order`).

    The log columns come last, `len(_LOG_COLUMNS)` for the newest log, then as many for the newest
    error: joined by primary key through the pointers in `latest_logs`, so no client's logs are searched.
    """
    columns: list[Any] = [*(_as_received(column, dialect) for column in _CLIENT_COLUMNS)]
    columns.append(col(ClientGroup.name).label("group_name"))
    if with_logs:
        latest_log = aliased(ClientLog, name="latest_log")
        latest_error = aliased(ClientLog, name="latest_error")
        for alias, prefix in ((latest_log, "log"), (latest_error, "error")):
            columns += [
                _as_received(col(getattr(alias, name)), dialect, label=f"{prefix}_{name}") for name in _LOG_COLUMNS
            ]
    query = select(*columns).outerjoin(ClientGroup, col(ClientGroup.id) == col(Client.group_id))
    if with_logs:
        query = (
            query.outerjoin(LatestLog, col(LatestLog.client_uuid) == col(Client.uuid))
            .outerjoin(latest_log, col(latest_log.id) == col(LatestLog.log_id))
            .outerjoin(latest_error, col(latest_error.id) == col(LatestLog.error_id))
        )
    return query


_ORDER_FIELDS = _fields("description", "hostname", "uuid")
_SEARCHED_COLUMNS = (col(Client.hostname), col(Client.description), col(Client.uuid))


def _dashboard_order(row: Any) -> tuple[Any, ...]:
    """Sort key: group name, description, hostname, case-insensitive with nulls last, then uuid.

    Sorted here rather than in SQL: the database would sort the wide rows (with their logs) on disk at
    10,000 clients, and Python's lowercase and code-point order is the same on every backend.
    """
    group = row[_GROUP_NAME]
    description, hostname, uuid = _ORDER_FIELDS(row)
    return (
        group is None,
        group.lower() if group else "",
        description is None,
        description.lower() if description else "",
        hostname is None,
        hostname.lower() if hostname else "",
        uuid.lower(),
        uuid,
    )


def _log_from_row(values: Sequence[Any]) -> dict[str, Any] | None:
    """A log entry from the row's (id, timestamp, level, message, context) slice; None when absent."""
    log_id, timestamp, level, message, context = values
    if log_id is None:
        return None
    return {"id": log_id, "timestamp": timestamp, "level": level, "message": message, "context": parse_context(context)}


async def client_views(
    session: AsyncSession,
    *,
    now: datetime,
    hours: int,
    rules: Rules,
    with_logs: bool,
    client_uuid: str | None = None,
    where: ClientFilter = NO_FILTER,
) -> list[ClientView]:
    """Every client (or one, or those `where` selects) with its status over the last `hours`: two statements.

    Overview builds (`with_logs`) take one of `OVERVIEW_BUILDS` slots. The caller renders the
    payload right after, without awaiting, so a build's memory is released before the next starts.
    """
    if not with_logs:
        return await _client_views(
            session, now=now, hours=hours, rules=rules, with_logs=False, client_uuid=client_uuid, where=where
        )
    async with _overview_slots():
        return await _client_views(
            session, now=now, hours=hours, rules=rules, with_logs=True, client_uuid=client_uuid, where=where
        )


async def _client_views(
    session: AsyncSession,
    *,
    now: datetime,
    hours: int,
    rules: Rules,
    with_logs: bool,
    client_uuid: str | None = None,
    where: ClientFilter = NO_FILTER,
) -> list[ClientView]:
    """See `client_views`.

    Both statements run on the session's own connection. A second pooled connection for the window
    counts (to run them beside the client query) was a hold-and-wait: with as many concurrent requests
    as the pool has connections, each held one and waited for another until the pool timed out.
    """
    since = now - timedelta(hours=hours)
    dialect = session.get_bind().dialect.name
    query = _clients_query(with_logs=with_logs, dialect=dialect)
    if client_uuid is not None:
        query = query.where(col(Client.uuid) == client_uuid)
    if where.group_id is not None:
        query = query.where(col(Client.group_id) == where.group_id)
    if where.search:
        query = query.where(or_(*(column.icontains(where.search, autoescape=True) for column in _SEARCHED_COLUMNS)))
    counts = await window_counts(session, since=since, client_uuid=client_uuid)
    # Core execution on the session's connection: no ORM result machinery per row.
    rows = (await (await session.connection()).execute(query)).all()
    first_log = len(_CLIENT_COLUMNS) + 1
    first_error = first_log + len(_LOG_COLUMNS)
    views = []
    for row in sorted(rows, key=_dashboard_order):
        values = tuple(row)
        (uuid, is_active, last_alive, offline_at, process_status, screen_health, priority_at, detected) = (
            _STATUS_FIELDS(values)
        )
        client_counts = counts.get(uuid) or empty_counts()
        alive = is_alive(
            is_active=is_active,
            last_alive=last_alive,
            offline_announced_at=offline_at,
            now=now,
            grace_seconds=rules.grace_seconds,
        )
        status = client_status(
            alive=alive,
            process_status=process_status,
            screen_health_status=screen_health,
            log_counts=client_counts,
            detected_screen_health=detected,
        )
        if where.status is not None and status != where.status:
            continue
        views.append(
            ClientView(
                client=row,
                group_name=values[_GROUP_NAME],
                latest_log=_log_from_row(values[first_log:first_error]) if with_logs else None,
                latest_error=_log_from_row(values[first_error:]) if with_logs else None,
                counts=client_counts,
                alive=alive,
                status=status,
                priority_active=priority_active(priority_at, now=now, ttl_seconds=rules.priority_ttl_seconds),
                status_reasons=status_reasons(
                    status=status,
                    is_active=is_active,
                    last_alive=last_alive,
                    offline_announced_at=offline_at,
                    process_status=process_status,
                    screen_health_status=screen_health,
                    log_counts=client_counts,
                    detected_screen_health=detected,
                ),
            )
        )
    return views


def overview_payload(views: list[ClientView], *, now: datetime, hours: int, rules: Rules) -> dict[str, Any]:
    """The camelCase overview of SPEC §9 (log `context` keys are kept as stored)."""
    summary = {
        "totalClients": len(views),
        "onlineClients": 0,
        "offlineClients": 0,
        "healthyClients": 0,
        "warningClients": 0,
        "criticalClients": 0,
        "errorLogs": 0,
        "warnLogs": 0,
        "activePriorityScreenshots": 0,
    }
    status_keys = {"healthy": "healthyClients", "warning": "warningClients", "critical": "criticalClients"}
    clients = []
    for view in views:
        (
            uuid,
            hostname,
            description,
            ip,
            model,
            group_id,
            registration_time,
            last_alive,
            current_event_id,
            current_process,
            process_status,
            process_pid,
            screen_health_status,
            last_screenshot_analyzed,
            last_screenshot_hash,
            latest_screenshot_type,
            priority_type,
            priority_received_at,
            priority_hash,
            detected_screen_health,
            detected_screen_health_reason,
        ) = _PAYLOAD_FIELDS(tuple(view.client))
        counts = view.counts
        summary["onlineClients" if view.alive else "offlineClients"] += 1
        if view.status in status_keys:
            summary[status_keys[view.status]] += 1
        summary["errorLogs"] += counts["ERROR"]
        summary["warnLogs"] += counts["WARN"]
        if view.priority_active:
            summary["activePriorityScreenshots"] += 1
        clients.append(
            {
                "uuid": uuid,
                "hostname": hostname,
                "description": description,
                "ip": ip,
                "model": model,
                "groupId": group_id,
                "groupName": view.group_name,
                "registrationTime": registration_time,
                "lastAlive": last_alive,
                "isAlive": view.alive,
                "status": view.status,
                "statusReasons": view.status_reasons,
                "currentEventId": current_event_id,
                "currentProcess": current_process,
                "processStatus": process_status,
                "processPid": process_pid,
                "screenHealthStatus": screen_health_status,
                "detectedScreenHealth": detected_screen_health,
                "detectedScreenHealthReason": detected_screen_health_reason,
                "lastScreenshotAnalyzed": last_screenshot_analyzed,
                "lastScreenshotHash": last_screenshot_hash,
                "latestScreenshotType": latest_screenshot_type or "periodic",
                "priorityScreenshotType": priority_type if priority_type in PRIORITY_SCREENSHOT_TYPES else None,
                "priorityScreenshotReceivedAt": priority_received_at,
                "priorityScreenshotHash": priority_hash,
                "hasActivePriorityScreenshot": view.priority_active,
                "screenshotUrl": f"/screenshots/{uuid}/priority" if view.priority_active else f"/screenshots/{uuid}",
                "logCounts24h": {
                    "error": counts["ERROR"],
                    "warn": counts["WARN"],
                    "info": counts["INFO"],
                    "debug": counts["DEBUG"],
                },
                "latestLog": view.latest_log,
                "latestError": view.latest_error,
            }
        )
    return {
        "summary": summary,
        "periodHours": hours,
        "gracePeriodSeconds": rules.grace_seconds,
        "since": now - timedelta(hours=hours),
        "timestamp": now,
        "clients": clients,
    }
