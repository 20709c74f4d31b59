"""Log reads: one client's logs, window counts, recent errors, the `/test` probe (SPEC §9)."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Integer, Row, Select, bindparam, cast, func, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.errors import BadRequest, ClientNotFound
from app.json_values import MAX_CONTEXT_DEPTH, nests_deeper_than, truncated
from app.models import LOG_LEVELS, Client, ClientLog, LogCountHourly, LogCountSixHourly, LogTotal, UTCDateTime
from app.services.ingest import BLOCK_HOURS, LEVEL_COLUMNS, block_start, hour_bucket

LevelCounts = dict[str, int]
# The rollups, the levels as columns (kept exact by `ingest.adjust_log_counts`).
HOURLY = LogCountHourly.__table__  # type: ignore[attr-defined]
SIX_HOURLY = LogCountSixHourly.__table__  # type: ignore[attr-defined]
_HOUR = timedelta(hours=1)
_BLOCK = timedelta(hours=BLOCK_HOURS)
# (id, timestamp, level, message, context, client_uuid): read by name like a `ClientLog`.
LogRow = Row[int | None, datetime, str, str, str | None, str]


def parse_context(raw: str | None) -> dict[str, Any]:
    """The stored context object; `{}` when none, `{"raw": text}` when the text is not a JSON object.

    Rows stored before contexts were bounded at ingest are bounded here too: nested deeper than
    `MAX_CONTEXT_DEPTH` reads as `{"truncated": true}`, and whatever the result it serializes.
    """
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses but json accepts (NaN, Infinity, nesting beyond orjson's limit)
            value = json.loads(raw)
        except RecursionError:
            return truncated()
        except ValueError:
            return {"raw": raw}
    if not isinstance(value, dict):
        return {"raw": raw}
    # Nesting needs at least as many brackets as levels: most contexts skip the walk.
    if raw.count("{") + raw.count("[") > MAX_CONTEXT_DEPTH and nests_deeper_than(value, MAX_CONTEXT_DEPTH):
        return truncated()
    return value


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


# Log ids are BIGINT: a larger number in a cursor is not one we handed out (and the database would refuse it).
_MAX_ID = 2**63


def encode_cursor(log: Any) -> str:
    """An opaque cursor for the logs after this one in newest-first order: its (timestamp, id), base64url."""
    return base64.urlsafe_b64encode(f"{log.timestamp.isoformat()}|{log.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (timestamp, id) a cursor stands for; 400 `Invalid cursor` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, log_id = text.partition("|")
        timestamp = datetime.fromisoformat(moment)
        if timestamp.tzinfo is None or not log_id.isascii() or not log_id.isdigit() or int(log_id) >= _MAX_ID:
            raise ValueError(text)
        return timestamp.astimezone(UTC), int(log_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("Invalid cursor") from None


@dataclass
class LogPage:
    logs: Sequence[LogRow]
    # Where the next (older) page starts; None when this page is the last.
    next_cursor: str | None


async def client_logs_page(
    session: AsyncSession,
    *,
    client_uuid: str,
    level: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None = None,
) -> LogPage:
    """One page of `client_logs`, older than `cursor` if given, with the cursor of the next page.

    One more row than the page is read, so the last page is known without another statement.
    """
    before = decode_cursor(cursor) if cursor is not None else None
    rows = await client_logs(session, client_uuid=client_uuid, level=level, since=since, limit=limit + 1, before=before)
    if len(rows) <= limit:
        return LogPage(logs=rows, next_cursor=None)
    return LogPage(logs=rows[:limit], next_cursor=encode_cursor(rows[limit - 1]))


async def client_logs(
    session: AsyncSession,
    *,
    client_uuid: str,
    level: str | None,
    since: datetime | None,
    limit: int,
    before: tuple[datetime, int] | None = None,
) -> Sequence[LogRow]:
    """Newest first (timestamp, then id), older than `before` if given; 404 for an unknown client.

    The client is only looked up when no log matches: a log row proves its client exists (foreign key),
    so the common request is one statement. Every filter is served by the index on (client_uuid,
    timestamp, id), or (client_uuid, level, timestamp, id) with a level.
    """
    query = select(*_ENTRY_COLUMNS).where(col(ClientLog.client_uuid) == client_uuid)
    if level is not None:
        query = query.where(col(ClientLog.level) == level)
    if since is not None:
        query = query.where(col(ClientLog.timestamp) >= since)
    if before is not None:
        timestamp, log_id = before
        query = query.where(
            tuple_(col(ClientLog.timestamp), col(ClientLog.id))
            < tuple_(bindparam("before_timestamp", timestamp, type_=UTCDateTime()), log_id)
        )
    query = query.order_by(col(ClientLog.timestamp).desc(), col(ClientLog.id).desc()).limit(limit)
    logs = (await session.execute(query)).all()
    if not logs and await session.scalar(select(col(Client.uuid)).where(col(Client.uuid) == client_uuid)) is None:
        raise ClientNotFound()
    return logs


def _nearer_boundary(moment: datetime, step: timedelta, floor: datetime) -> tuple[datetime, datetime, datetime, int]:
    """Where a count from `moment` on switches to buckets of `step`, and the stretch it corrects by.

    Returns (bucket_from, lower, upper, sign): whole buckets from `bucket_from` on, plus `sign` times the
    finer counts in [lower, upper). `bucket_from` is the boundary nearer to `moment`, so the finer part
    covers at most half a bucket: with `moment` in the first half, its bucket is taken whole and
    [floor, moment) is subtracted; otherwise [moment, next boundary) is added.
    """
    if moment - floor <= step / 2:
        return floor, floor, moment, -1
    return floor + step, moment, floor + step, 1


def _window_plan(since: datetime, client_uuid: str | None) -> tuple[tuple[int, int, bool], dict[str, Any]]:
    """The shape of the window count for `since` (signs of the hourly and log parts, 0 for none; one
    client or all) and its parameters (see `window_counts_query`)."""
    hour_from, edge_from, edge_to, edge_sign = _nearer_boundary(since, _HOUR, hour_bucket(since))
    six_from, hours_from, hours_to, hours_sign = _nearer_boundary(
        hour_from, _BLOCK, block_start(hour_from, BLOCK_HOURS)
    )
    parameters: dict[str, Any] = {"six_from": six_from}
    if hours_from < hours_to:
        parameters.update(hours_from=hours_from, hours_to=hours_to)
    else:
        hours_sign = 0
    if edge_from < edge_to:
        parameters.update(edge_from=edge_from, edge_to=edge_to)
    else:
        edge_sign = 0
    if client_uuid is not None:
        parameters["client_uuid"] = client_uuid
    return (hours_sign, edge_sign, client_uuid is not None), parameters


@functools.cache
def window_counts_query(hours_sign: int, edge_sign: int, one_client: bool) -> Select[Any]:
    """(client_uuid, error, warn, info, debug) for `timestamp >= since`, clients with a log in it only.

    Whole 6-hour blocks come from `log_counts_six_hourly`, whole hours next to the window's start from
    `log_counts_hourly` (at most 3), and only the logs of at most half an hour around `since` are counted
    in the log table, on its covering index (timestamp, client_uuid, level). Each part is added or
    subtracted (see `_nearer_boundary`). A day-long window reads about 7 rollup rows per client.
    Built once per shape, with bound parameters (`_window_plan` gives both).
    """
    columns = list(LEVEL_COLUMNS.values())
    parts: list[Any] = [
        select(SIX_HOURLY.c.client_uuid, *(SIX_HOURLY.c[name] for name in columns)).where(
            SIX_HOURLY.c.bucket_start >= bindparam("six_from", type_=UTCDateTime())
        )
    ]
    if hours_sign:
        signed = (HOURLY.c[name] if hours_sign > 0 else -HOURLY.c[name] for name in columns)
        parts.append(
            select(HOURLY.c.client_uuid, *signed).where(
                HOURLY.c.bucket_start >= bindparam("hours_from", type_=UTCDateTime()),
                HOURLY.c.bucket_start < bindparam("hours_to", type_=UTCDateTime()),
            )
        )
    if edge_sign:
        # One row per log with 1 (or -1) under its level, as integers so every sum below stays one;
        # summed with the rollup rows in the single aggregate (cheaper than grouping the edge apart).
        flags = (cast(col(ClientLog.level) == name, Integer) for name in LOG_LEVELS)
        parts.append(
            select(col(ClientLog.client_uuid), *(flag if edge_sign > 0 else -flag for flag in flags)).where(
                col(ClientLog.timestamp) >= bindparam("edge_from", type_=UTCDateTime()),
                col(ClientLog.timestamp) < bindparam("edge_to", type_=UTCDateTime()),
            )
        )
    if one_client:
        parts = [part.where(part.selected_columns[0] == bindparam("client_uuid")) for part in parts]
    rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    per_level = [func.sum(rows.c[name]) for name in columns]
    total = sum(per_level[1:], start=per_level[0])
    labelled = (sums.label(name) for sums, name in zip(per_level, columns, strict=True))
    return select(rows.c.client_uuid, *labelled).group_by(rows.c.client_uuid).having(total > 0)


@functools.cache
def _summary_query(hours_sign: int, edge_sign: int) -> Select[Any]:
    counts = window_counts_query(hours_sign, edge_sign, False).subquery()
    return select(*counts.c, col(Client.hostname), col(Client.description)).outerjoin(
        Client, col(Client.uuid) == counts.c.client_uuid
    )


async def window_counts(
    session: AsyncSession | AsyncConnection, *, since: datetime, client_uuid: str | None = None
) -> dict[str, LevelCounts]:
    """Exact log counts per client and level for `timestamp >= since`, in one statement (see `window_counts_query`).

    Clients without a log in the window are left out.
    """
    shape, parameters = _window_plan(since, client_uuid)
    connection = session if isinstance(session, AsyncConnection) else await session.connection()
    result = await connection.execute(window_counts_query(*shape), parameters)
    return {uuid: dict(zip(LOG_LEVELS, counts, strict=True)) for uuid, *counts in result.all()}


async def window_summary(session: AsyncSession, *, since: datetime) -> dict[str, dict[str, Any]]:
    """The summary's entries, one statement: each client's window counts with its hostname and description."""
    (hours_sign, edge_sign, _), parameters = _window_plan(since, None)
    result = await (await session.connection()).execute(_summary_query(hours_sign, edge_sign), parameters)
    return {
        uuid: {
            "counts": {"ERROR": error, "WARN": warn, "INFO": info, "DEBUG": debug},
            "info": {"hostname": host, "description": text},
        }
        for uuid, error, warn, info, debug, host, text in result.all()
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
