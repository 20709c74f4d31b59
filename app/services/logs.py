"""Log reads: one client's logs, window counts, recent errors, the `/test` probe (SPEC §9)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ClientNotFound
from app.models import LOG_LEVELS, Client, ClientLog, LogCountHourly, LogTotal
from app.services.ingest import hour_bucket

LevelCounts = dict[str, int]


def parse_context(raw: str | None) -> dict[str, Any]:
    """The stored context object; `{}` when none, `{"raw": text}` when the text is not a JSON object."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    return value if isinstance(value, dict) else {"raw": raw}


def log_entry(log: ClientLog, *, with_client: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": log.id,
        "timestamp": log.timestamp,
        "level": log.level,
        "message": log.message,
        "context": parse_context(log.context),
    }
    if with_client:
        entry["client_uuid"] = log.client_uuid
    return entry


def empty_counts() -> LevelCounts:
    return dict.fromkeys(LOG_LEVELS, 0)


async def client_logs(
    session: AsyncSession, *, client_uuid: str, level: str | None, since: datetime | None, limit: int
) -> Sequence[ClientLog]:
    """Newest first; 404 for an unknown client."""
    if await session.scalar(select(col(Client.uuid)).where(col(Client.uuid) == client_uuid)) is None:
        raise ClientNotFound()
    query = select(ClientLog).where(col(ClientLog.client_uuid) == client_uuid)
    if level is not None:
        query = query.where(col(ClientLog.level) == level)
    if since is not None:
        query = query.where(col(ClientLog.timestamp) >= since)
    query = query.order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def window_counts(session: AsyncSession, *, since: datetime) -> dict[str, LevelCounts]:
    """Exact log counts per client and level for `timestamp >= since`, in one statement.

    Whole hours come from the hourly rollup; only the part of the first hour after `since`
    is counted in the log table itself.
    """
    edge_end = since if since == hour_bucket(since) else hour_bucket(since) + timedelta(hours=1)
    rolled: Select[Any, Any, Any] = select(
        col(LogCountHourly.client_uuid).label("client_uuid"),
        col(LogCountHourly.level).label("level"),
        col(LogCountHourly.count).label("n"),
    ).where(col(LogCountHourly.bucket_start) >= edge_end)
    edge = (
        select(col(ClientLog.client_uuid), col(ClientLog.level), func.count().label("n"))
        .where(col(ClientLog.timestamp) >= since, col(ClientLog.timestamp) < edge_end)
        .group_by(col(ClientLog.client_uuid), col(ClientLog.level))
    )
    parts = union_all(rolled, edge).subquery()
    total = func.sum(parts.c.n)
    query = (
        select(parts.c.client_uuid, parts.c.level, total).group_by(parts.c.client_uuid, parts.c.level).having(total > 0)
    )
    counts: dict[str, LevelCounts] = defaultdict(empty_counts)
    for client_uuid, level, count in (await session.execute(query)).all():
        counts[client_uuid][level] = int(count)
    return dict(counts)


async def recent_errors(session: AsyncSession, *, limit: int) -> Sequence[ClientLog]:
    query = (
        select(ClientLog)
        .where(col(ClientLog.level) == "ERROR")
        .order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc())
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def level_totals(session: AsyncSession) -> LevelCounts:
    """All-time counts per level, from the totals kept at ingest (never a COUNT over the log table)."""
    counts = empty_counts()
    for level, count in (await session.execute(select(col(LogTotal.level), col(LogTotal.count)))).all():
        counts[level] = int(count)
    return counts


async def newest_logs(session: AsyncSession, *, limit: int) -> Sequence[ClientLog]:
    query = select(ClientLog).order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc()).limit(limit)
    return (await session.execute(query)).scalars().all()
