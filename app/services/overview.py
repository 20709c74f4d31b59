"""The monitoring overview and the client list: two statements whatever the fleet size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, nulls_last, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.models import PRIORITY_SCREENSHOT_TYPES, Client, ClientGroup, ClientLog
from app.services.logs import LevelCounts, empty_counts, log_entry, window_counts
from app.services.status import Status, client_status, is_alive, priority_active


@dataclass(frozen=True)
class Rules:
    """The settings the status rules need, read once per request."""

    grace_seconds: int
    priority_ttl_seconds: int


@dataclass
class ClientView:
    client: Client
    group_name: str | None
    latest_log: ClientLog | None
    latest_error: ClientLog | None
    counts: LevelCounts
    alive: bool
    status: Status
    priority_active: bool


def _latest_log_id(*, errors_only: bool) -> Any:
    query = select(col(ClientLog.id)).where(col(ClientLog.client_uuid) == col(Client.uuid))
    if errors_only:
        query = query.where(col(ClientLog.level) == "ERROR")
    return query.order_by(col(ClientLog.timestamp).desc()).limit(1).correlate(Client).scalar_subquery()


def _ordered_clients(*, with_logs: bool) -> Select[Any]:
    """Clients with their group name (and newest log and error), in the dashboard's order."""
    latest_log = aliased(ClientLog, name="latest_log")
    latest_error = aliased(ClientLog, name="latest_error")
    columns: list[Any] = [Client, col(ClientGroup.name)]
    if with_logs:
        columns += [latest_log, latest_error]
    query = select(*columns).outerjoin(ClientGroup, col(ClientGroup.id) == col(Client.group_id))
    if with_logs:
        query = query.outerjoin(latest_log, col(latest_log.id) == _latest_log_id(errors_only=False)).outerjoin(
            latest_error, col(latest_error.id) == _latest_log_id(errors_only=True)
        )
    return query.order_by(
        nulls_last(func.lower(col(ClientGroup.name)).asc()),
        nulls_last(func.lower(col(Client.description)).asc()),
        nulls_last(func.lower(col(Client.hostname)).asc()),
        func.lower(col(Client.uuid)).asc(),
        col(Client.uuid).asc(),
    )


def _view(
    client: Client,
    group_name: str | None,
    counts: LevelCounts,
    *,
    now: datetime,
    rules: Rules,
    latest_log: ClientLog | None = None,
    latest_error: ClientLog | None = None,
) -> ClientView:
    alive = is_alive(
        is_active=client.is_active,
        last_alive=client.last_alive,
        offline_announced_at=client.offline_announced_at,
        now=now,
        grace_seconds=rules.grace_seconds,
    )
    return ClientView(
        client=client,
        group_name=group_name,
        latest_log=latest_log,
        latest_error=latest_error,
        counts=counts,
        alive=alive,
        status=client_status(
            alive=alive,
            process_status=client.process_status,
            screen_health_status=client.screen_health_status,
            log_counts=counts,
        ),
        priority_active=priority_active(
            client.last_priority_received_at, now=now, ttl_seconds=rules.priority_ttl_seconds
        ),
    )


async def client_views(
    session: AsyncSession,
    *,
    now: datetime,
    hours: int,
    rules: Rules,
    with_logs: bool,
    client_uuid: str | None = None,
) -> list[ClientView]:
    """Every client (or one) with its status over the last `hours`: exactly two statements."""
    counts = await window_counts(session, since=now - timedelta(hours=hours))
    query = _ordered_clients(with_logs=with_logs)
    if client_uuid is not None:
        query = query.where(col(Client.uuid) == client_uuid)
    views = []
    for row in (await session.execute(query)).all():
        client, group_name = row[0], row[1]
        views.append(
            _view(
                client,
                group_name,
                counts.get(client.uuid) or empty_counts(),
                now=now,
                rules=rules,
                latest_log=row[2] if with_logs else None,
                latest_error=row[3] if with_logs else None,
            )
        )
    return views


def _camel_log(log: ClientLog | None) -> dict[str, Any] | None:
    return None if log is None else log_entry(log)


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
        client = view.client
        summary["onlineClients" if view.alive else "offlineClients"] += 1
        if view.status in status_keys:
            summary[status_keys[view.status]] += 1
        summary["errorLogs"] += view.counts["ERROR"]
        summary["warnLogs"] += view.counts["WARN"]
        if view.priority_active:
            summary["activePriorityScreenshots"] += 1
        priority_type = client.last_priority_screenshot_type
        clients.append(
            {
                "uuid": client.uuid,
                "hostname": client.hostname,
                "description": client.description,
                "ip": client.ip,
                "model": client.model,
                "groupId": client.group_id,
                "groupName": view.group_name,
                "registrationTime": client.registration_time,
                "lastAlive": client.last_alive,
                "isAlive": view.alive,
                "status": view.status,
                "currentEventId": client.current_event_id,
                "currentProcess": client.current_process,
                "processStatus": client.process_status,
                "processPid": client.process_pid,
                "screenHealthStatus": client.screen_health_status,
                "lastScreenshotAnalyzed": client.last_screenshot_analyzed,
                "lastScreenshotHash": client.last_screenshot_hash,
                "latestScreenshotType": client.latest_screenshot_type or "periodic",
                "priorityScreenshotType": priority_type if priority_type in PRIORITY_SCREENSHOT_TYPES else None,
                "priorityScreenshotReceivedAt": client.last_priority_received_at,
                "hasActivePriorityScreenshot": view.priority_active,
                "screenshotUrl": f"/screenshots/{client.uuid}/priority"
                if view.priority_active
                else f"/screenshots/{client.uuid}",
                "logCounts24h": {
                    "error": view.counts["ERROR"],
                    "warn": view.counts["WARN"],
                    "info": view.counts["INFO"],
                    "debug": view.counts["DEBUG"],
                },
                "latestLog": _camel_log(view.latest_log),
                "latestError": _camel_log(view.latest_error),
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
