"""The live feed's events (SPEC §11), written in the transaction of the write that causes them.

Ingest services note events, and the displays whose status the write may have changed, in the
session (`note_event`, `check_status`). Just before its commit the unit of work calls
`flush_events`: it works out those displays' statuses (one statement), records the ones that differ
from what the feed last announced (one statement), writes every event (one statement) and, on
PostgreSQL, `pg_notify`s every replica's feed in that same statement (delivered at commit). So a
stream never shows an uncommitted write, and a unit of work costs a fixed number of statements
whatever the number of displays in it.

Payloads are camelCase JSON (the page reads them as they are):
- `status`: {"uuid", "old", "new", "reasons", "at"} (`old` is null the first time a display is announced)
- `screenshot`: {"uuid", "type", "hash", "receivedAt"}
- `priority`: {"uuid", "active", "type", "hash", "receivedAt", "expiresAt"}
- `error`: {"uuid", "logId", "message", "timestamp"} (a new ERROR log; one per display per unit of work)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import json_values
from app.db import execute_many, rows_insert
from app.models import Client, ClientLog, Event, UTCDateTime
from app.services.status import reasons_of, status_of

EventKind = Literal["status", "screenshot", "priority", "error"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
# The PostgreSQL channel every replica's feed listens on; the payload is empty (the feed reads the table).
NOTIFY_CHANNEL = "infoscreen_events"
# What a reconnecting stream can still get with `Last-Event-ID`; older events are deleted.
EVENT_RETENTION = timedelta(minutes=10)
# The log window of the statuses the feed announces: that of `GET /api/clients` and the overview's default.
STATUS_WINDOW = timedelta(hours=24)

_EVENTS = Event.__table__  # type: ignore[attr-defined]
_CLIENTS = Client.__table__  # type: ignore[attr-defined]
_EVENT_COLUMNS = ("at", "kind", "client_uuid", "payload")
_PENDING = "pending_events"


@dataclass(frozen=True)
class FeedEvent:
    """One stored event as a stream sends it."""

    id: int
    kind: str
    payload: str

    def frame(self) -> str:
        """The Server-Sent Events frame: `id`, `event` and one `data` line (compact JSON has no newline)."""
        return f"id: {self.id}\nevent: {self.kind}\ndata: {self.payload}\n\n"


@dataclass
class PendingEvents:
    """What a unit of work will announce at its commit."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    status_checks: set[str] = field(default_factory=set)
    now: datetime | None = None


def _pending(session: AsyncSession) -> PendingEvents:
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = PendingEvents()
    assert isinstance(pending, PendingEvents)
    return pending


def event_row(*, kind: EventKind, client_uuid: str | None, data: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    return {"at": at, "kind": kind, "client_uuid": client_uuid, "payload": json_values.dumps(data).decode()}


def note_event(
    session: AsyncSession, *, kind: EventKind, client_uuid: str | None, data: Mapping[str, Any], at: datetime
) -> None:
    """An event to write with this unit of work (nothing is written before `flush_events`)."""
    _pending(session).rows.append(event_row(kind=kind, client_uuid=client_uuid, data=data, at=at))


def check_status(session: AsyncSession, client_uuids: Iterable[str], *, now: datetime) -> None:
    """These displays' status may have changed: `flush_events` compares it with the announced one."""
    pending = _pending(session)
    pending.status_checks.update(client_uuids)
    pending.now = now if pending.now is None else max(now, pending.now)


async def flush_events(session: AsyncSession, *, grace_seconds: int) -> bool:
    """Write what this unit of work announces (call it right before the commit); whether anything was written."""
    pending: PendingEvents | None = session.info.pop(_PENDING, None)
    if pending is None:
        return False
    rows = pending.rows
    if pending.status_checks and pending.now is not None:
        rows = rows + await announce_status_changes(
            session, sorted(pending.status_checks), now=pending.now, grace_seconds=grace_seconds
        )
    if not rows:
        return False
    await write_events(session, rows)
    return True


_LOGS = ClientLog.__table__  # type: ignore[attr-defined]


def _has_log(level: str) -> Any:
    """Whether the client has a log of `level` in the window: one probe of `ix_client_logs_client_level_timestamp`
    per display (cheaper than summing its rollup rows, and all the status rules need)."""
    return (
        exists()
        .where(
            _LOGS.c.client_uuid == _CLIENTS.c.uuid,
            _LOGS.c.level == level,
            _LOGS.c.timestamp >= bindparam("since", type_=UTCDateTime()),
        )
        .label(level.lower())
    )


@functools.cache
def _status_query(dialect: str) -> Any:
    """These clients' status inputs, their announced status, and whether they have ERROR/WARN logs in the window.

    On PostgreSQL the rows are locked (in uuid order, as the ingest writes lock them): a concurrent
    unit of work announcing the same display waits and then reads what this one announced. The lock
    is `FOR NO KEY UPDATE`, which the heartbeat upsert takes too and which does not conflict with the
    `KEY SHARE` locks a log insert takes through its foreign key; a unit of work that writes
    `latest_logs` locks these rows before it (`ingest.lock_clients`), so both lock in one order.
    """
    query = (
        select(
            _CLIENTS.c.uuid,
            _CLIENTS.c.is_active,
            _CLIENTS.c.last_alive,
            _CLIENTS.c.offline_announced_at,
            _CLIENTS.c.process_status,
            _CLIENTS.c.screen_health_status,
            _CLIENTS.c.detected_screen_health,
            _CLIENTS.c.announced_status,
            _has_log("ERROR"),
            _has_log("WARN"),
        )
        .where(_CLIENTS.c.uuid.in_(bindparam("client_uuids", expanding=True)))
        .order_by(_CLIENTS.c.uuid)
    )
    if dialect == "postgresql":
        # `key_share` without `read` is `FOR NO KEY UPDATE`.
        query = query.with_for_update(of=_CLIENTS, key_share=True)
    return query


_ANNOUNCE = update(_CLIENTS).where(_CLIENTS.c.uuid == bindparam("uuid_")).values(announced_status=bindparam("status"))


async def announce_status_changes(
    session: AsyncSession, client_uuids: Sequence[str], *, now: datetime, grace_seconds: int
) -> list[dict[str, Any]]:
    """`status` event rows for the displays whose status now differs from the announced one, which is
    updated: two statements whatever the number of displays (one when none changed)."""
    connection = await session.connection()
    query = _status_query(connection.dialect.name)
    parameters = {"since": now - STATUS_WINDOW, "client_uuids": list(client_uuids)}
    rows = (await connection.execute(query, parameters)).all()
    changed: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for row in rows:
        counts = {"ERROR": int(bool(row.error)), "WARN": int(bool(row.warn))}
        status = status_of(row, log_counts=counts, now=now, grace_seconds=grace_seconds)
        if status == row.announced_status:
            continue
        reasons = reasons_of(row, status=status, log_counts=counts)
        changed.append({"uuid_": row.uuid, "status": status})
        data = {"uuid": row.uuid, "old": row.announced_status, "new": status, "reasons": reasons, "at": now}
        events.append(event_row(kind="status", client_uuid=row.uuid, data=data, at=now))
    if changed:
        await connection.execute(_ANNOUNCE, changed)
    return events


@functools.cache
def _write_statement(dialect: str) -> Any:
    """The multi-row event insert; on PostgreSQL with the `pg_notify` in the same statement."""
    insert = rows_insert(dialect, _EVENTS, _EVENT_COLUMNS)
    if dialect != "postgresql":
        return insert
    inserted = insert.returning(_EVENTS.c.id).cte("inserted")
    # A data-modifying CTE runs whether or not the query reads it; the notification goes out at commit.
    return select(func.pg_notify(NOTIFY_CHANNEL, "")).add_cte(inserted)


async def write_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert event rows (and notify on PostgreSQL): one statement."""
    connection = await session.connection()
    await execute_many(session, _write_statement(connection.dialect.name), rows)


_EVENT_READ_COLUMNS = (_EVENTS.c.id, _EVENTS.c.kind, _EVENTS.c.payload)


async def events_after(
    session: AsyncSession, *, after_id: int, gaps: Sequence[int] = (), since: datetime | None = None, limit: int
) -> list[FeedEvent]:
    """Events with an id above `after_id` (or one of `gaps`), oldest first; only those at or after `since` if given."""
    condition = _EVENTS.c.id > after_id
    if gaps:
        condition = or_(condition, _EVENTS.c.id.in_(list(gaps)))
    query = select(*_EVENT_READ_COLUMNS).where(condition)
    if since is not None:
        query = query.where(_EVENTS.c.at >= since)
    rows = (await session.execute(query.order_by(_EVENTS.c.id).limit(limit))).all()
    return [FeedEvent(id=row.id, kind=row.kind, payload=row.payload) for row in rows]


async def newest_event_id(session: AsyncSession) -> int:
    return int((await session.execute(select(func.coalesce(func.max(_EVENTS.c.id), 0)))).scalar_one())


async def delete_old_events(session: AsyncSession, *, now: datetime) -> int:
    """Delete the events older than `EVENT_RETENTION` (on the `at` index); returns how many."""
    result = await session.execute(delete(Event).where(Event.at < now - EVENT_RETENTION))  # type: ignore[arg-type]
    return int(result.rowcount)  # type: ignore[attr-defined]


# In-process wake-ups after a commit that wrote events (SQLite has no NOTIFY; on PostgreSQL this spares
# the writing replica the round trip through the LISTEN connection). Keyed by the engine written to.
_WAKERS: WeakKeyDictionary[Engine, Callable[[], None]] = WeakKeyDictionary()


def register_waker(engine: Engine, wake: Callable[[], None]) -> None:
    _WAKERS[engine] = wake


def unregister_waker(engine: Engine) -> None:
    _WAKERS.pop(engine, None)


def wake_after_commit(session: AsyncSession) -> None:
    """Wake this process's feed of the session's engine (call once the commit succeeded)."""
    bind = session.get_bind()
    wake = _WAKERS.get(bind) if isinstance(bind, Engine) else None
    if wake is not None:
        wake()
