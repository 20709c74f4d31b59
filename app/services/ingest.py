"""The one place that applies what a display sends, whether it came over MQTT or HTTP (SPEC §6).

Functions here never commit: the caller's unit of work does (the HTTP session dependency, or the
MQTT batch writer), so a batch is stored whole or not at all.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func, literal_column, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app import json_values
from app.db import execute_many, rows_insert
from app.errors import BadRequest
from app.metrics import LOG_LINES_STORED, count_after_commit
from app.models import Client, ClientLog, LatestLog, LogCountHourly, LogCountSixHourly, LogTotal
from app.schemas.ingest import MAX_CLOCK_AHEAD, LogRecord
from app.services import events

UUID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CLIENTS = Client.__table__  # type: ignore[attr-defined]
_LOGS = ClientLog.__table__  # type: ignore[attr-defined]
_HOURLY = LogCountHourly.__table__  # type: ignore[attr-defined]
_SIX_HOURLY = LogCountSixHourly.__table__  # type: ignore[attr-defined]
# The bucket length of `log_counts_six_hourly`, in hours.
BLOCK_HOURS = 6
# Every rollup table with the length of its buckets in hours; each is written in step with the logs.
ROLLUPS: tuple[tuple[Any, int], ...] = ((_HOURLY, 1), (_SIX_HOURLY, BLOCK_HOURS))
_TOTALS = LogTotal.__table__  # type: ignore[attr-defined]
_LATEST = LatestLog.__table__  # type: ignore[attr-defined]
# The client fields a heartbeat may send that the status rules read (SPEC §8).
STATUS_INPUTS = frozenset({"process_status", "screen_health_status"})
# Rollup column of each level.
LEVEL_COLUMNS = {"ERROR": "error", "WARN": "warn", "INFO": "info", "DEBUG": "debug"}


def valid_uuid(value: str) -> bool:
    return UUID_PATTERN.fullmatch(value) is not None


def check_uuid(value: str) -> str:
    """The uuid, or 400 before it touches the database or the disk."""
    if not valid_uuid(value):
        raise BadRequest("Invalid client uuid")
    return value


def hour_bucket(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def block_start(moment: datetime, hours: int) -> datetime:
    """The start of the UTC block of `hours` (a divisor of 24) holding `moment`."""
    hour = hour_bucket(moment)
    return hour.replace(hour=hour.hour - hour.hour % hours)


async def ensure_clients(session: AsyncSession, client_uuids: Iterable[str], *, now: datetime) -> None:
    """Register unknown uuids (`registration_time = now`, active); known ones are left alone."""
    rows = [
        {"uuid": uuid, "registration_time": now, "is_active": True, "changed_at": now}
        for uuid in sorted(set(client_uuids))
    ]
    if rows:
        await execute_many(session, _client_registration(session.get_bind().dialect.name), rows)


async def lock_clients(session: AsyncSession, client_uuids: Iterable[str]) -> None:
    """On PostgreSQL, lock these (existing) clients rows `FOR NO KEY UPDATE`, in uuid order: one statement.

    A unit of work whose status check (`events.check_status`) will lock a display's row at the end
    locks it here first, before it writes the display's `latest_logs` row, so every writer takes the
    clients row, then `latest_logs`, and none deadlocks (SQLite serialises writers: nothing to do).
    """
    uuids = sorted(set(client_uuids))
    if uuids and session.get_bind().dialect.name == "postgresql":
        await session.execute(_CLIENT_LOCK, {"client_uuids": uuids})


_CLIENT_LOCK = (
    select(_CLIENTS.c.uuid)
    .where(_CLIENTS.c.uuid.in_(bindparam("client_uuids", expanding=True)))
    .order_by(_CLIENTS.c.uuid)
    .with_for_update(key_share=True)  # `FOR NO KEY UPDATE`: no conflict with the logs' foreign key locks
)


@functools.cache
def _client_registration(dialect: str) -> Any:
    statement = rows_insert(dialect, _CLIENTS, ("uuid", "registration_time", "is_active", "changed_at"))
    return statement.on_conflict_do_nothing(index_elements=["uuid"])


async def record_heartbeat(
    session: AsyncSession, *, client_uuid: str, fields: Mapping[str, Any], now: datetime
) -> None:
    """Mark the display alive now and update only the fields it sent; registers it if new."""
    await record_heartbeats(session, [(client_uuid, fields, now)])


async def record_heartbeats(session: AsyncSession, beats: Sequence[tuple[str, Mapping[str, Any], datetime]]) -> None:
    """Heartbeats of many displays: one upsert per set of fields sent, whatever the number of displays.

    Repeats of one display merge in order (later values and time win). Rows go in uuid order, so
    concurrent writers lock them in the same order.
    """
    merged: dict[str, tuple[dict[str, Any], datetime, int]] = {}
    for client_uuid, fields, at in beats:
        known = merged.get(client_uuid)
        merged[client_uuid] = ({**known[0], **fields}, at, known[2] + 1) if known else (dict(fields), at, 1)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for client_uuid in sorted(merged):
        fields, at, count = merged[client_uuid]
        groups.setdefault(tuple(sorted(fields)), []).append(
            {
                "uuid": client_uuid,
                "registration_time": at,
                "is_active": True,
                **fields,
                "last_alive": at,
                "heartbeat_count": count,
                "changed_at": at,
            }
        )
    dialect = session.get_bind().dialect.name
    checked: list[str] = []
    for names, rows in groups.items():
        result = await execute_many(session, _heartbeat_upsert(dialect, names), rows)
        checked.extend(row.uuid for row in result if heartbeat_may_change_status(row, at=merged[row.uuid][1]))
    if checked:
        # A sign of life may revive a display; health fields may change its status (SPEC §11's live feed).
        events.check_status(session, checked, now=max(at for _, at, _ in merged.values()))


def heartbeat_may_change_status(row: Row[Any], *, at: datetime) -> bool:
    """Whether this heartbeat upsert's returned row needs a status check (`flush_events`' statement).

    A heartbeat makes the display alive: it can change the announced status only if that is offline
    or not announced yet; if a field the status rules read changed (the upsert then sets `changed_at`
    to the heartbeat's time; a row that equals it for another reason is checked too); or if the
    status is critical (warning) and no ERROR (WARN) log is left in the status window, so it may
    have ended with time. New logs, screenshots and `offline` check the status in their own unit of
    work, and the ticker announces heartbeats turning late.
    """
    if row.changed_at == at:
        return True
    since = at - events.STATUS_WINDOW
    newest: datetime | None
    if row.announced_status == "critical":
        newest = row.newest_error
    elif row.announced_status == "warning":
        newest = row.newest_warn
    else:
        return bool(row.announced_status != "healthy")
    return newest is None or newest < since


@functools.cache
def _heartbeat_upsert(dialect: str, names: tuple[str, ...]) -> Any:
    """The heartbeat upsert for one set of fields, built once (building `excluded` is not cheap).

    Counts the heartbeats, and moves `changed_at` only when a field the status rules read changes
    (the status evaluator re-reads those displays; a plain heartbeat is found by its `last_alive`).
    Returns each row's uuid, announced status and `changed_at` (`heartbeat_may_change_status`).
    """
    columns = ("uuid", "registration_time", "is_active", *names, "last_alive", "heartbeat_count", "changed_at")
    statement = rows_insert(dialect, _CLIENTS, columns)
    offered, stored = statement.excluded, _CLIENTS.c
    updated = {name: offered[name] for name in (*names, "last_alive")}
    updated["heartbeat_count"] = stored.heartbeat_count + offered.heartbeat_count
    status_inputs = [stored[name].is_distinct_from(offered[name]) for name in names if name in STATUS_INPUTS]
    if status_inputs:
        updated["changed_at"] = case((or_(*status_inputs), offered.changed_at), else_=stored.changed_at)
    returned = (stored.uuid, stored.announced_status, stored.changed_at, *_NEWEST_STATUS_LOGS)
    return statement.on_conflict_do_update(index_elements=["uuid"], set_=updated).returning(*returned)


# The display's newest ERROR and WARN times (`latest_logs`' pointers, one primary-key probe), which
# tell a heartbeat whether a critical or warning status can have ended with its logs leaving the window.
_NEWEST_STATUS_LOGS = tuple(
    select(_LATEST.c[f"{kind}_timestamp"])
    # Spelled out: SQLAlchemy does not correlate a subquery in RETURNING with the table written.
    .where(_LATEST.c.client_uuid == literal_column("clients.uuid"))
    .scalar_subquery()
    .label(f"newest_{kind}")
    for kind in ("error", "warn")
)


async def record_health(session: AsyncSession, *, client_uuid: str, fields: Mapping[str, Any], now: datetime) -> None:
    """Health counts as a sign of life (SPEC §6), so it is a heartbeat with health fields."""
    await record_heartbeat(session, client_uuid=client_uuid, fields=fields, now=now)


async def record_status(session: AsyncSession, *, client_uuid: str, online: bool, now: datetime) -> None:
    """`offline` (the MQTT last will) makes the display offline until its next heartbeat."""
    await ensure_clients(session, [client_uuid], now=now)
    if not online:
        await session.execute(
            update(Client).where(col(Client.uuid) == client_uuid).values(offline_announced_at=now, changed_at=now)
        )
        events.check_status(session, [client_uuid], now=now)


def _context_text(context: Mapping[str, Any] | None) -> str | None:
    if not context:
        return None if context is None else "{}"
    return json_values.dumps(context).decode()


def _stored_time(record: LogRecord, *, now: datetime) -> tuple[datetime, Mapping[str, Any] | None]:
    """The time to store a log at, and its context: a display clock more than `MAX_CLOCK_AHEAD` ahead
    of the server's would pin the log at the top for ever, so it is stored at arrival (`now`) and the
    display's time kept in the context as `display_timestamp` (SPEC §5)."""
    if record.timestamp is None:
        return now, record.context
    timestamp = record.timestamp if record.timestamp.tzinfo else record.timestamp.replace(tzinfo=UTC)
    if timestamp > now + MAX_CLOCK_AHEAD:
        return now, {**(record.context or {}), "display_timestamp": timestamp.isoformat()}
    return timestamp, record.context


# The levels whose logs make the unit of work check the display's status.
STATUS_LEVELS = frozenset({"ERROR", "WARN"})


async def record_logs(
    session: AsyncSession, entries: Sequence[tuple[str, LogRecord]], *, now: datetime, clients_locked: bool = False
) -> int:
    """Store log lines of one or many displays; a repeated `message_id` is accepted and ignored.

    `now` is the arrival time: the time of logs without one, or whose time is too far ahead. Keeps the
    rollups, the per-level totals and each client's newest log and error in step with what was really
    inserted. Returns how many entries were accepted (repeats included). Logs do
    not touch `last_alive`. The clients rows of displays with ERROR or WARN lines are locked first
    (`lock_clients`) unless the caller did (`clients_locked`).
    """
    if not entries:
        return 0
    await ensure_clients(session, (uuid for uuid, _ in entries), now=now)
    if not clients_locked:
        await lock_clients(session, (uuid for uuid, record in entries if record.level in STATUS_LEVELS))
    rows = []
    for uuid, record in entries:
        timestamp, context = _stored_time(record, now=now)
        rows.append(
            {
                "client_uuid": uuid,
                "timestamp": timestamp,
                "level": record.level,
                "message": record.message,
                "context": _context_text(context),
                "message_id": record.message_id,
            }
        )
    inserted = (await execute_many(session, _log_insert(session.get_bind().dialect.name), rows)).all()
    await adjust_log_counts(
        session, Counter((hour_bucket(row.timestamp), row.client_uuid, row.level) for row in inserted)
    )
    await advance_latest_logs(session, inserted, now=now)
    _note_log_events(session, inserted, now=now)
    count_after_commit(session, LOG_LINES_STORED, len(inserted))
    return len(entries)


def _note_log_events(session: AsyncSession, inserted: Sequence[Row[Any]], *, now: datetime) -> None:
    """One `error` event per display for its newest new ERROR log (a burst of errors is one event per
    unit of work); a status check for every display with a new ERROR or WARN log."""
    newest_errors: dict[str, Row[Any]] = {}
    checked: set[str] = set()
    for row in inserted:
        if row.level not in ("ERROR", "WARN"):
            continue
        checked.add(row.client_uuid)
        if row.level == "ERROR":
            known = newest_errors.get(row.client_uuid)
            if known is None or (row.timestamp, row.id) > (known.timestamp, known.id):
                newest_errors[row.client_uuid] = row
    for client_uuid in sorted(newest_errors):
        row = newest_errors[client_uuid]
        data = {"uuid": client_uuid, "logId": row.id, "message": row.error_message, "timestamp": row.timestamp}
        events.note_event(session, kind="error", client_uuid=client_uuid, data=data, at=now)
    if checked:
        events.check_status(session, checked, now=now)


async def advance_latest_logs(session: AsyncSession, inserted: Sequence[Row[Any]], *, now: datetime) -> None:
    """Point `latest_logs` at the newest of these (id, client_uuid, timestamp, level) rows where they are newer.

    Newest means the latest timestamp, then the highest id, as the log reads order them; a late
    log with an older timestamp leaves the pointer alone. An ERROR or WARN sets `changed_at` to `now`
    (the status evaluator's cue). One statement, rows in uuid order.
    """
    newest: dict[str, dict[str, Any]] = {}
    for row in inserted:
        entry = newest.get(row.client_uuid)
        if entry is None:
            entry = newest[row.client_uuid] = dict.fromkeys(_LATEST.c.keys())
            entry["client_uuid"] = row.client_uuid
        kinds = _POINTER_KINDS.get(row.level, ("log",))
        if len(kinds) > 1:
            entry["changed_at"] = now
        for kind in kinds:
            known = entry[f"{kind}_id"]
            if known is None or (row.timestamp, row.id) > (entry[f"{kind}_timestamp"], known):
                entry[f"{kind}_id"], entry[f"{kind}_timestamp"] = row.id, row.timestamp
    if newest:
        rows = [newest[client_uuid] for client_uuid in sorted(newest)]
        await execute_many(session, _latest_upsert(session.get_bind().dialect.name), rows)


async def adjust_log_counts(session: AsyncSession, deltas: Mapping[tuple[datetime, str, str], int]) -> None:
    """Add (or, negative, remove) counts keyed by (hour, client, level) in every rollup and the totals.

    One statement per rollup table. Rows are written in key order so concurrent writers lock them
    in the same order (no deadlock).
    """
    per_bucket: list[dict[tuple[datetime, str], dict[str, int]]] = [{} for _ in ROLLUPS]
    totals: Counter[str] = Counter()
    for (bucket, client_uuid, level), delta in deltas.items():
        if delta:
            column = LEVEL_COLUMNS[level]
            for buckets, (_, hours) in zip(per_bucket, ROLLUPS, strict=True):
                key = (block_start(bucket, hours), client_uuid)
                counts = buckets.get(key)
                if counts is None:
                    counts = buckets[key] = dict.fromkeys(LEVEL_COLUMNS.values(), 0)
                counts[column] += delta
            totals[level] += delta
    dialect = session.get_bind().dialect.name
    for buckets, (table, _) in zip(per_bucket, ROLLUPS, strict=True):
        if buckets:
            rows = [
                {"bucket_start": bucket, "client_uuid": client_uuid, **counts}
                for (bucket, client_uuid), counts in sorted(buckets.items())
            ]
            await execute_many(session, _rollup_upsert(dialect, table), rows)
    await adjust_totals(session, totals)


async def adjust_totals(session: AsyncSession, deltas: Mapping[str, int]) -> None:
    """Add (or remove) all-time counts per level."""
    rows = [{"level": level, "count": delta} for level, delta in sorted(deltas.items()) if delta]
    if rows:
        await execute_many(session, _totals_upsert(session.get_bind().dialect.name), rows)


@functools.cache
def _rollup_upsert(dialect: str, table: Any) -> Any:
    statement = rows_insert(dialect, table, ("bucket_start", "client_uuid", *LEVEL_COLUMNS.values()))
    added = {column: table.c[column] + statement.excluded[column] for column in LEVEL_COLUMNS.values()}
    return statement.on_conflict_do_update(index_elements=["bucket_start", "client_uuid"], set_=added)


@functools.cache
def _log_insert(dialect: str) -> Any:
    columns = ("client_uuid", "timestamp", "level", "message", "context", "message_id")
    return (
        rows_insert(dialect, _LOGS, columns)
        .on_conflict_do_nothing(index_elements=["client_uuid", "message_id"])
        .returning(
            _LOGS.c.id,
            _LOGS.c.client_uuid,
            _LOGS.c.timestamp,
            _LOGS.c.level,
            # Only an ERROR log's message comes back (its `error` event carries it), not every log's.
            case((_LOGS.c.level == "ERROR", _LOGS.c.message), else_=None).label("error_message"),
        )
    )


# The pointers of `latest_logs` a log of each level moves.
_POINTER_KINDS = {"ERROR": ("log", "error"), "WARN": ("log", "warn")}


@functools.cache
def _latest_upsert(dialect: str) -> Any:
    """Insert the pointers, or move each one only when the offered log is newer than the stored one."""
    statement = rows_insert(dialect, _LATEST, tuple(_LATEST.c.keys()))
    offered, stored = statement.excluded, _LATEST.c
    updated: dict[str, Any] = {"changed_at": func.coalesce(offered.changed_at, stored.changed_at)}
    for kind in ("log", "error", "warn"):
        log_id, timestamp = f"{kind}_id", f"{kind}_timestamp"
        newer = and_(
            offered[log_id].is_not(None),
            or_(
                stored[log_id].is_(None),
                tuple_(offered[timestamp], offered[log_id]) > tuple_(stored[timestamp], stored[log_id]),
            ),
        )
        for name in (log_id, timestamp):
            updated[name] = case((newer, offered[name]), else_=stored[name])
    return statement.on_conflict_do_update(index_elements=["client_uuid"], set_=updated)


@functools.cache
def _totals_upsert(dialect: str) -> Any:
    statement = rows_insert(dialect, _TOTALS, ("level", "count"))
    return statement.on_conflict_do_update(
        index_elements=["level"], set_={"count": _TOTALS.c.count + statement.excluded["count"]}
    )
