"""The status evaluator (SPEC §12): every display's status, continuously, and its confirmed transitions.

A lifespan task runs a pass every `STATUS_EVALUATION_INTERVAL_SECONDS` on the app's clock. A pass
reads only the displays whose status may have changed since the previous pass, never the whole
fleet, and never a log window count:

- an input of the rules changed: `clients.changed_at` (process or screen status, last will,
  activation, detected screen: kept at ingest) or `latest_logs.changed_at` (an ERROR or WARN arrived);
- time passed a boundary: `last_alive` crossed the grace period, the newest ERROR or WARN left the
  24-hour window (`latest_logs.error_timestamp` / `warn_timestamp`), a pending status is due
  (`display_states.recheck_at`);
- a display offline, or about to be (pending), sent a heartbeat (recovery counts heartbeats; a
  pending offline that is alive again is dropped).

Each is an indexed range; the log window reduces to "is the newest ERROR (WARN) in it", which the
latest-log pointers answer exactly. A pass is a fixed number of statements: one read, then at most
four writes (states, history, incidents closed, incidents opened) in the same transaction.

A pass records at most `TRANSITIONS_PER_PASS` transitions and reminders together (a power cut that
takes down a thousand displays at once would otherwise write a thousand rows of each kind in one pass,
and their reminders an hour later as many again): the displays and reminders past it
are left untouched, the pass reports them as `deferred`, and the next pass starts at once instead of
after the interval, reading from the same point as the deferring one (so it sees them again; what the
deferring pass recorded reads back as unchanged). The grouped alert still counts the deferred ones, so
a group split across passes is one notice.

Exactly one replica evaluates: on PostgreSQL the one holding a session advisory lock on its own
connection (the pass runs on that connection, so losing it loses the lock too; a replica that dies
releases it with its connection, and another takes over at its next tick). On SQLite, the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Select, bindparam, case, func, literal, or_, select, text, union, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import execute_rows, rows_insert
from app.metrics import DATABASE_ERRORS
from app.models import Client, DisplayState, DisplayStatus, Incident, LatestLog, StatusChange, StatusReason, UTCDateTime
from app.services.damping import Damping, Tracked, Transition, advance, recheck_at
from app.services.maintenance import load_windows, silenced_until
from app.services.notifications import (
    GROUP_ALERT_WINDOW,
    Event,
    NotificationRules,
    incident_payload,
    write_notifications,
)
from app.services.status import reasons_of, status_of
from app.state import AppState

logger = logging.getLogger(__name__)

# The window of logs the evaluated status counts (the overview's default).
STATUS_WINDOW = timedelta(hours=24)
# Ingest stamps its rows before it commits, so a pass also re-reads what changed this long before the
# previous one (a transaction still open then) and absorbs small clock differences between replicas.
OVERLAP = timedelta(seconds=10)
# Any constant works: the same for every replica on one database, and no other lock's (migrations use
# 7_140_221, the bootstrap token 7_140_222: sharing one would block a replica's start-up behind the leader).
EVALUATOR_LOCK_ID = 7_140_223
# The most transitions one pass records (bench/evaluator.py: at 10,000 displays a pass recording 1,000
# costs about 58 ms of database time, a steady one about 18 ms; 400 keep a pass near 35 ms).
TRANSITIONS_PER_PASS = 400
RELEASE_TIMEOUT_SECONDS = 5.0

_CLIENTS = Client.__table__  # type: ignore[attr-defined]
_STATES = DisplayState.__table__  # type: ignore[attr-defined]
_LATEST = LatestLog.__table__  # type: ignore[attr-defined]
_HISTORY = StatusChange.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]


def _at(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


def _changed_displays() -> Any:
    """The uuids a pass re-reads (see the module docstring), each part on its own index."""
    parts = [
        select(_CLIENTS.c.uuid).where(_CLIENTS.c.changed_at >= _at("since")),
        select(_LATEST.c.client_uuid).where(_LATEST.c.changed_at >= _at("since")),
        select(_CLIENTS.c.uuid).where(
            _CLIENTS.c.last_alive >= _at("alive_from"), _CLIENTS.c.last_alive < _at("alive_to")
        ),
        select(_LATEST.c.client_uuid).where(
            _LATEST.c.error_timestamp >= _at("logs_from"), _LATEST.c.error_timestamp < _at("logs_to")
        ),
        select(_LATEST.c.client_uuid).where(
            _LATEST.c.warn_timestamp >= _at("logs_from"), _LATEST.c.warn_timestamp < _at("logs_to")
        ),
        select(_STATES.c.client_uuid).where(_STATES.c.recheck_at <= _at("now")),
        select(_STATES.c.client_uuid)
        .join(_CLIENTS, _CLIENTS.c.uuid == _STATES.c.client_uuid)
        .where(
            or_(_STATES.c.status == "offline", _STATES.c.pending_status == "offline"),
            _CLIENTS.c.last_alive >= _at("since"),
        ),
    ]
    return union(*parts).subquery("changed")


_READ_COLUMNS = (
    _CLIENTS.c.uuid,
    _CLIENTS.c.hostname,
    _CLIENTS.c.description,
    _CLIENTS.c.group_id,
    _CLIENTS.c.is_active,
    _CLIENTS.c.last_alive,
    _CLIENTS.c.offline_announced_at,
    _CLIENTS.c.process_status,
    _CLIENTS.c.screen_health_status,
    _CLIENTS.c.detected_screen_health,
    _CLIENTS.c.heartbeat_count,
    _CLIENTS.c.last_screenshot_hash,
    _CLIENTS.c.last_priority_screenshot_hash,
    _LATEST.c.error_timestamp,
    _LATEST.c.warn_timestamp,
    _STATES.c.status,
    _STATES.c.reasons,
    _STATES.c.status_since,
    _STATES.c.tracked_since,
    _STATES.c.pending_status,
    _STATES.c.pending_since,
    _STATES.c.offline_heartbeats,
)


@functools.cache
def read_query(everything: bool) -> Select[Any]:
    """The displays of a pass with what the rules need: every display on a leader's first pass."""
    query = select(*_READ_COLUMNS).select_from(_CLIENTS)
    if not everything:
        changed = _changed_displays()
        query = query.join(changed, changed.c.uuid == _CLIENTS.c.uuid)
    return query.outerjoin(_LATEST, _LATEST.c.client_uuid == _CLIENTS.c.uuid).outerjoin(
        _STATES, _STATES.c.client_uuid == _CLIENTS.c.uuid
    )


@functools.cache
def _state_upsert(dialect: str) -> Any:
    columns = tuple(_STATES.c.keys())
    statement = rows_insert(dialect, _STATES, columns)
    updated = {name: statement.excluded[name] for name in columns if name != "client_uuid"}
    return statement.on_conflict_do_update(index_elements=["client_uuid"], set_=updated)


@functools.cache
def _history_insert(dialect: str) -> Any:
    columns = (
        "client_uuid",
        "at",
        "from_status",
        "to_status",
        "reasons",
        "screenshot_hash",
        "priority_screenshot_hash",
    )
    return rows_insert(dialect, _HISTORY, columns)


@functools.cache
def _incident_insert(dialect: str) -> Any:
    columns = (
        "client_uuid",
        "group_id",
        "status",
        "reasons",
        "opened_at",
        "screenshot_hash",
        "priority_screenshot_hash",
        "remind_at",
        "notified_at",
    )
    return rows_insert(dialect, _INCIDENTS, columns).returning(*_INCIDENTS.c)


def _close_incidents(closed_at: dict[str, datetime]) -> Any:
    """Close the open incidents of these displays, each at its own time; returns them."""
    when = case(
        {uuid: literal(moment, UTCDateTime()) for uuid, moment in closed_at.items()}, value=_INCIDENTS.c.client_uuid
    )
    return (
        update(_INCIDENTS)
        .where(_INCIDENTS.c.client_uuid.in_(sorted(closed_at)), _INCIDENTS.c.closed_at.is_(None))
        .values(closed_at=when, remind_at=None)
        .returning(*_INCIDENTS.c)
    )


_DUE_REMINDERS = (
    select(*_INCIDENTS.c, _CLIENTS.c.hostname, _CLIENTS.c.description)
    .join(_CLIENTS, _CLIENTS.c.uuid == _INCIDENTS.c.client_uuid)
    .where(_INCIDENTS.c.remind_at <= bindparam("now", type_=UTCDateTime()), _INCIDENTS.c.closed_at.is_(None))
    # A group's reminders together, so a batch cut short splits at most the group it ends with.
    .order_by(_INCIDENTS.c.group_id, _INCIDENTS.c.id)
    .limit(bindparam("limit"))
)
_REMINDED = (
    update(_INCIDENTS)
    .where(_INCIDENTS.c.id == bindparam("id_"))
    .values(
        remind_at=bindparam("next_", type_=UTCDateTime()),
        reminded_at=func.coalesce(bindparam("reminded_", type_=UTCDateTime()), _INCIDENTS.c.reminded_at),
        notified_at=func.coalesce(bindparam("notified_", type_=UTCDateTime()), _INCIDENTS.c.notified_at),
    )
)


@dataclass(frozen=True)
class EvaluationRules:
    grace_seconds: int
    damping: Damping
    reminder: timedelta = timedelta(minutes=60)
    zone: ZoneInfo = ZoneInfo("UTC")
    notifications: NotificationRules = NotificationRules(group_threshold=5, group_lookback=timedelta(seconds=90))
    transitions_per_pass: int = TRANSITIONS_PER_PASS


@dataclass
class PassResult:
    """What one pass did: displays read, states written, transitions recorded."""

    read: int = 0
    written: int = 0
    transitions: int = 0
    opened: int = 0
    closed: int = 0
    reminded: int = 0
    notifications: int = 0
    # Displays whose transition was left to the next pass (this one had recorded its maximum).
    deferred: int = 0
    # Reminders due that were left to the next pass.
    reminders_deferred: bool = False

    @property
    def carry_over(self) -> bool:
        """Work was left to the next pass, which should run at once."""
        return self.deferred > 0 or self.reminders_deferred


def _reasons_text(reasons: tuple[StatusReason, ...]) -> str:
    return orjson.dumps(list(reasons)).decode()


def _tracked(row: Any) -> Tracked | None:
    if row.status is None:
        return None
    return Tracked(
        status=row.status,
        reasons=tuple(orjson.loads(row.reasons)),
        status_since=row.status_since,
        tracked_since=row.tracked_since,
        pending_status=row.pending_status,
        pending_since=row.pending_since,
        offline_heartbeats=int(row.offline_heartbeats),
    )


def observe(row: Any, *, now: datetime, grace_seconds: int) -> tuple[DisplayStatus, tuple[StatusReason, ...]]:
    """The status and reasons of a read row by the rules of SPEC §8, over the last 24 hours of logs.

    The newest ERROR (WARN) is in the window exactly when the window holds one, so the pointers stand
    in for the counts (only "any", never "how many", decides a status).
    """
    since = now - STATUS_WINDOW
    counts = {
        "ERROR": int(row.error_timestamp is not None and row.error_timestamp >= since),
        "WARN": int(row.warn_timestamp is not None and row.warn_timestamp >= since),
    }
    status = status_of(row, log_counts=counts, now=now, grace_seconds=grace_seconds)
    reasons = reasons_of(row, status=status, log_counts=counts)
    return status, tuple(reasons)


def _pass_parameters(*, now: datetime, previous: datetime, grace_seconds: int) -> dict[str, Any]:
    since = previous - OVERLAP
    grace = timedelta(seconds=grace_seconds)
    return {
        "now": now,
        "since": since,
        # Alive at the previous pass (or just before), not alive now.
        "alive_from": since - grace,
        "alive_to": now - grace,
        "logs_from": since - STATUS_WINDOW,
        "logs_to": now - STATUS_WINDOW,
    }


async def evaluate(
    connection: AsyncConnection, *, now: datetime, previous: datetime | None, rules: EvaluationRules
) -> PassResult:
    """One pass on `connection` (the caller commits): every display on the first (`previous` None).

    Statements: one read, and one per kind of write that has rows (at most four).
    """
    parameters = (
        {} if previous is None else _pass_parameters(now=now, previous=previous, grace_seconds=rules.grace_seconds)
    )
    rows = (await connection.execute(read_query(previous is None), parameters)).all()
    result = PassResult(read=len(rows))
    states: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    opened: list[dict[str, Any]] = []
    closed: dict[str, datetime] = {}
    deferred: set[str] = set()
    # The group events left to the next pass, which the group threshold counts already.
    coming: Counter[tuple[str, int]] = Counter()
    for row in sorted(rows, key=lambda row: cast(str, row.uuid)):
        tracked = _tracked(row)
        status, reasons = observe(row, now=now, grace_seconds=rules.grace_seconds)
        updated, transition = advance(
            tracked,
            observed=status,
            reasons=reasons,
            heartbeat_count=int(row.heartbeat_count),
            now=now,
            damping=rules.damping,
        )
        if transition is not None and len(history) >= rules.transitions_per_pass:
            # Untouched: the next pass, at once, reads it again and records it.
            deferred.add(row.uuid)
            if row.group_id is not None and (transition.opens_incident or transition.closes_incident):
                kind = "incident_opened" if transition.opens_incident else "incident_recovered"
                coming[(kind, row.group_id)] += 1
            continue
        if updated != tracked:
            states.append(_state_row(row.uuid, updated, rules.damping))
        if transition is not None:
            history.append(_history_row(row, transition))
            if transition.opens_incident:
                opened.append(_incident_row(row, transition))
            elif transition.closes_incident:
                closed[row.uuid] = transition.at
    dialect = connection.dialect.name
    if states:
        await execute_rows(connection, _state_upsert(dialect), states)
    if history:
        await execute_rows(connection, _history_insert(dialect), history)
    names = {row.uuid: (row.hostname, row.description) for row in rows}
    # Reminders share the pass's bound with the transitions; under half of it left, they wait for the next
    # pass (a batch never so small that it would split a group below the group threshold). One row past
    # the batch tells whether more are due.
    batch = rules.transitions_per_pass - len(history)
    if batch < rules.transitions_per_pass / 2:
        batch = 0
    due_rows = (await connection.execute(_DUE_REMINDERS, {"now": now, "limit": batch + 1})).all()
    more_due = len(due_rows) > batch
    if more_due:
        due_rows = _whole_groups(due_rows[:batch], following=due_rows[batch])
    # Read before this pass closes any: the ones it closes (or leaves to the next) get their recovery instead.
    due = [row for row in due_rows if row.client_uuid not in closed and row.client_uuid not in deferred]
    windows = await load_windows(connection) if opened or due else []

    def silenced(client_uuid: str, group_id: int | None) -> datetime | None:
        return silenced_until(windows, client_uuid=client_uuid, group_id=group_id, moment=now, zone=rules.zone)

    events: list[Event] = []
    if closed:
        for incident in (await connection.execute(_close_incidents(closed))).all():
            # What a receiver was told opened is told closed, maintenance or not (else it would believe the
            # display still down); an incident opened silently, and never notified, closes silently.
            if incident.notified_at is not None:
                events.append(_event("incident_recovered", incident.closed_at, incident, names))
    if opened:
        for row in opened:
            until = silenced(row["client_uuid"], row["group_id"])
            # Silenced: the incident is looked at again when the window ends (see the reminders below).
            row["notified_at"], row["remind_at"] = (None, until) if until else (now, now + rules.reminder)
        for incident in (await execute_rows(connection, _incident_insert(dialect), opened)).all():
            if incident.notified_at is not None:
                events.append(_event("incident_opened", incident.opened_at, incident, names))
    if due:
        reminded = []
        for incident in due:
            names[incident.client_uuid] = (incident.hostname, incident.description)
            until = silenced(incident.client_uuid, incident.group_id)
            if until is not None:
                reminded.append({"id_": incident.id, "next_": until, "reminded_": None, "notified_": None})
            elif incident.notified_at is None:
                # Down since before the window ended: its opened notice goes now.
                events.append(_event("incident_opened", now, incident, names))
                reminded.append(
                    {"id_": incident.id, "next_": now + rules.reminder, "reminded_": None, "notified_": now}
                )
            else:
                events.append(_event("incident_reminder", now, incident, names))
                reminded.append(
                    {"id_": incident.id, "next_": now + rules.reminder, "reminded_": now, "notified_": None}
                )
        await connection.execute(_REMINDED, reminded)
    result.notifications = await write_notifications(
        connection, events, now=now, rules=rules.notifications, coming=coming
    )
    result.reminders_deferred = more_due
    result.written, result.transitions, result.opened, result.closed, result.reminded, result.deferred = (
        len(states),
        len(history),
        len(opened),
        len(closed),
        len(due),
        len(deferred),
    )
    return result


def _whole_groups(batch: Sequence[Any], *, following: Any) -> Sequence[Any]:
    """The batch without its last group when that group goes on past it (`following`, the first row left
    out, is of it), unless the batch is that group alone (larger than the batch, so over the group threshold
    in every pass that takes a part of it)."""
    last = batch[-1].group_id if batch else None
    if last is None or following.group_id != last:
        return batch
    whole = [row for row in batch if row.group_id != last]
    return whole or batch


def _event(kind: str, at: datetime, incident: Any, names: dict[str, tuple[str | None, str | None]]) -> Event:
    hostname, description = names.get(incident.client_uuid, (None, None))
    payload = incident_payload(incident, hostname=hostname, description=description)
    return Event(kind=kind, at=at, group_id=incident.group_id, incident=payload)


def _state_row(client_uuid: str, tracked: Tracked, damping: Damping) -> dict[str, Any]:
    return {
        "client_uuid": client_uuid,
        "status": tracked.status,
        "reasons": _reasons_text(tracked.reasons),
        "status_since": tracked.status_since,
        "tracked_since": tracked.tracked_since,
        "pending_status": tracked.pending_status,
        "pending_since": tracked.pending_since,
        "recheck_at": recheck_at(tracked, damping),
        "offline_heartbeats": tracked.offline_heartbeats,
    }


def _history_row(row: Any, transition: Transition) -> dict[str, Any]:
    return {
        "client_uuid": row.uuid,
        "at": transition.at,
        "from_status": transition.from_status,
        "to_status": transition.to_status,
        "reasons": _reasons_text(transition.reasons),
        "screenshot_hash": row.last_screenshot_hash,
        "priority_screenshot_hash": row.last_priority_screenshot_hash,
    }


def _incident_row(row: Any, transition: Transition) -> dict[str, Any]:
    return {
        "client_uuid": row.uuid,
        "group_id": row.group_id,
        "status": transition.to_status,
        "reasons": _reasons_text(transition.reasons),
        "opened_at": transition.at,
        "screenshot_hash": row.last_screenshot_hash,
        "priority_screenshot_hash": row.last_priority_screenshot_hash,
    }


class StatusEvaluator:
    """Holds the evaluator's leadership and its clock between passes (one per app)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        settings = state.settings
        self.rules = EvaluationRules(
            grace_seconds=settings.heartbeat_grace_seconds,
            damping=Damping(
                confirm_seconds=settings.STATUS_CONFIRM_SECONDS, recovery_heartbeats=settings.RECOVERY_HEARTBEATS
            ),
            reminder=timedelta(minutes=settings.ALERT_REMINDER_MINUTES),
            zone=settings.maintenance_zone,
            notifications=NotificationRules(
                group_threshold=settings.GROUP_ALERT_THRESHOLD,
                group_lookback=GROUP_ALERT_WINDOW + timedelta(seconds=settings.STATUS_CONFIRM_SECONDS),
            ),
        )
        self._connection: AsyncConnection | None = None
        self._leader = False
        # The time of the previous pass as leader: None until then (the first pass reads everything).
        self._previous: datetime | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def run_pass(self) -> PassResult | None:
        """Take (or keep) the leadership and evaluate once; None when another replica leads."""
        engine = self.state.engine
        try:
            connection = await self._leadership(engine)
            if connection is None:
                return None
            now = self.state.now()
            async with connection.begin():
                result = await evaluate(connection, now=now, previous=self._previous, rules=self.rules)
            if not result.carry_over:
                # Otherwise the next pass reads from the same point again, to see the deferred displays.
                self._previous = now
            if result.notifications:
                self.state.outbox_wakeup.set()
            return result
        except Exception:
            await self.release()
            raise

    async def _leadership(self, engine: AsyncEngine) -> AsyncConnection | None:
        if self._connection is None:
            self._connection = await engine.connect()
        if self._leader:
            return self._connection
        if engine.dialect.name == "postgresql":
            async with self._connection.begin():
                locked = await self._connection.scalar(
                    text("SELECT pg_try_advisory_lock(:id)"), {"id": EVALUATOR_LOCK_ID}
                )
            if not locked:
                return None
            logger.info("this replica now evaluates display status")
        self._leader = True
        self._previous = None
        return self._connection

    async def release(self) -> None:
        """Give up the leadership: the connection is closed, not pooled, so the advisory lock goes with it."""
        connection, self._connection, self._leader = self._connection, None, False
        if connection is not None:
            # Bounded: shutdown must not wait on a database that stopped answering.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                    await connection.invalidate()
                    await connection.close()

    async def run(self) -> None:
        """Evaluate every interval until cancelled (at once after a pass that deferred transitions); a failed
        pass is logged and retried at the next tick."""
        interval = self.state.settings.STATUS_EVALUATION_INTERVAL_SECONDS
        try:
            while True:
                pause = interval
                try:
                    result = await self.run_pass()
                    if result is not None and result.carry_over:
                        pause = 0
                except Exception:
                    DATABASE_ERRORS.labels("evaluator").inc()
                    logger.exception("status evaluation failed; retrying in %.1f s", interval)
                await asyncio.sleep(pause)
        finally:
            await self.release()


def start_status_evaluator(state: AppState) -> asyncio.Task[None]:
    """Start the evaluator task and keep it in `state.tasks` (the lifespan cancels it)."""
    evaluator = StatusEvaluator(state)
    task = asyncio.create_task(evaluator.run(), name="status-evaluator")
    state.tasks.append(task)
    return task
