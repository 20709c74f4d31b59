"""Log reads: one client's logs, window counts, recent errors, the `/test` probe (SPEC §9)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Integer, Row, cast, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.errors import ClientNotFound
from app.models import LOG_LEVELS, Client, ClientLog, LogCountHourly, LogTotal
from app.services.ingest import LEVEL_COLUMNS, hour_bucket

LevelCounts = dict[str, int]
# The hourly rollup, the levels as columns (kept exact by `ingest.adjust_log_counts`).
HOURLY = LogCountHourly.__table__  # type: ignore[attr-defined]
_HALF_HOUR = timedelta(minutes=30)
# (id, timestamp, level, message, context, client_uuid): read by name like a `ClientLog`.
LogRow = Row[int | None, datetime, str, str, str | None, str]


def parse_context(raw: str | None) -> dict[str, Any]:
    """The stored context object; `{}` when none, `{"raw": text}` when the text is not a JSON object."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses but json accepts (NaN, Infinity, huge integers)
            value = json.loads(raw)
        except ValueError:
            return {"raw": raw}
    return value if isinstance(value, dict) else {"raw": raw}


# Log reads select these columns (Core rows, no ORM entities); rows read like a `ClientLog`.
_ENTRY_COLUMNS = (
    col(ClientLog.id),
    col(ClientLog.timestamp),
    col(ClientLog.level),
    col(ClientLog.message),
    col(ClientLog.context),
    col(ClientLog.client_uuid),
)


def log_entry(log: Any, *, with_client: bool = False) -> dict[str, Any]:
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
) -> Sequence[LogRow]:
    """Newest first; 404 for an unknown client."""
    if await session.scalar(select(col(Client.uuid)).where(col(Client.uuid) == client_uuid)) is None:
        raise ClientNotFound()
    query = select(*_ENTRY_COLUMNS).where(col(ClientLog.client_uuid) == client_uuid)
    if level is not None:
        query = query.where(col(ClientLog.level) == level)
    if since is not None:
        query = query.where(col(ClientLog.timestamp) >= since)
    query = query.order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc()).limit(limit)
    return (await session.execute(query)).all()


async def window_counts(
    session: AsyncSession | AsyncConnection, *, since: datetime, client_uuid: str | None = None
) -> dict[str, LevelCounts]:
    """Exact log counts per client and level for `timestamp >= since`, in one statement.

    Whole hours come from the hourly rollup `log_counts_hourly` (one row per hour and client with
    the four levels side by side), summed as integers. Only the part of the hour around `since` is counted in the log
    table, on the covering index (timestamp, client_uuid, level), and from the nearer hour
    boundary: with `since` in the first half of its hour, that hour's rollup row is taken whole
    and the logs in [hour start, since) are subtracted; otherwise the logs in [since, next hour)
    are added to the rollup from the next hour on. At most 30 minutes of logs are read.
    Clients without a log in the window are left out.
    """
    floor = hour_bucket(since)
    if since - floor <= _HALF_HOUR:
        rollup_from, edge_from, edge_to, sign = floor, floor, since, -1
    else:
        rollup_from, edge_from, edge_to, sign = floor + timedelta(hours=1), since, floor + timedelta(hours=1), 1
    rollup = HOURLY.c
    rolled: Any = select(rollup.client_uuid, *(func.sum(rollup[LEVEL_COLUMNS[level]]) for level in LOG_LEVELS)).where(
        rollup.bucket_start >= rollup_from
    )
    edge: Any = select(
        col(ClientLog.client_uuid),
        *(cast(func.count().filter(col(ClientLog.level) == level) * sign, Integer) for level in LOG_LEVELS),
    ).where(col(ClientLog.timestamp) >= edge_from, col(ClientLog.timestamp) < edge_to)
    if client_uuid is not None:
        rolled = rolled.where(rollup.client_uuid == client_uuid)
        edge = edge.where(col(ClientLog.client_uuid) == client_uuid)
    parts = union_all(rolled.group_by(rollup.client_uuid), edge.group_by(col(ClientLog.client_uuid))).subquery()
    per_level = [func.coalesce(func.sum(column), 0) for column in list(parts.c)[1:]]
    total = sum(per_level[1:], start=per_level[0])
    query = select(parts.c.client_uuid, *per_level).group_by(parts.c.client_uuid).having(total > 0)
    connection = session if isinstance(session, AsyncConnection) else await session.connection()
    result = await connection.execute(query)
    return {
        uuid: {"ERROR": int(error), "WARN": int(warn), "INFO": int(info), "DEBUG": int(debug)}
        for uuid, error, warn, info, debug in result.all()
    }


async def recent_errors(session: AsyncSession, *, limit: int) -> Sequence[LogRow]:
    query = (
        select(*_ENTRY_COLUMNS)
        .where(col(ClientLog.level) == "ERROR")
        .order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc())
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def level_totals(session: AsyncSession) -> LevelCounts:
    """All-time counts per level, from the totals kept at ingest (never a COUNT over the log table)."""
    counts = empty_counts()
    for level, count in (await session.execute(select(col(LogTotal.level), col(LogTotal.count)))).all():
        counts[level] = int(count)
    return counts


async def newest_logs(session: AsyncSession, *, limit: int) -> Sequence[LogRow]:
    query = select(*_ENTRY_COLUMNS).order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc()).limit(limit)
    return (await session.execute(query)).all()
