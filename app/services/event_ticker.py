"""Transitions that come from time passing (SPEC §11): heartbeats turning late, priority screenshots ending.

Nothing is written when a display's heartbeat becomes too old or a priority screenshot's TTL ends,
so no ingest transaction can announce these. A periodic task (every `TICK_SECONDS`) announces
what happened between the previous tick and now: displays whose last heartbeat crossed the grace
period in that stretch get their status worked out again (a `status` event if it changed), and
priority screenshots whose TTL ended in it get a `priority` event with `active: false`.

With several replicas, each stretch is announced once in all: the stretch starts where the row in
`event_ticks` says, and a replica moves it by compare-and-set (`tick = :seen`); the one that loses
the race changes nothing. Both scans are ranges on an index, so a tick costs the same statements
whatever the fleet size. The ticker also deletes events older than `EVENT_RETENTION`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import insert_for
from app.models import Client, EventTick
from app.services.events import (
    announce_status_changes,
    delete_old_events,
    event_row,
    wake_after_commit,
    write_events,
)
from app.services.retention import run_periodically
from app.state import AppState

TICK_NAME = "transitions"
TICK_SECONDS = 1.0
# Old events are deleted every this many ticks.
RETENTION_EVERY_TICKS = 30

_CLIENTS = Client.__table__  # type: ignore[attr-defined]
_TICKS = EventTick.__table__  # type: ignore[attr-defined]
_READ_TICK = select(_TICKS.c.tick, _TICKS.c.at).where(_TICKS.c.name == TICK_NAME)
_MOVE_TICK = (
    update(_TICKS)
    .where(_TICKS.c.name == TICK_NAME, _TICKS.c.tick == bindparam("seen"))
    .values(tick=bindparam("next_tick"), at=bindparam("now"))
)
# Displays whose last heartbeat left the grace period in [from, to): on `ix_clients_last_alive`.
_TURNED_LATE = select(_CLIENTS.c.uuid).where(
    _CLIENTS.c.last_alive >= bindparam("late_from"), _CLIENTS.c.last_alive < bindparam("late_to")
)
# Priority screenshots whose TTL ended in [from, to): on `ix_clients_last_priority_received_at`.
_PRIORITY_ENDED = select(
    _CLIENTS.c.uuid,
    _CLIENTS.c.last_priority_screenshot_type,
    _CLIENTS.c.last_priority_screenshot_hash,
    _CLIENTS.c.last_priority_received_at,
).where(
    _CLIENTS.c.last_priority_received_at >= bindparam("ended_from"),
    _CLIENTS.c.last_priority_received_at < bindparam("ended_to"),
)


async def tick(
    session_factory: async_sessionmaker[AsyncSession], *, now: datetime, grace_seconds: int, ttl_seconds: int
) -> int:
    """Announce the transitions since the previous tick (once across replicas); how many events were written."""
    rows: list[dict[str, Any]] = []
    async with session_factory() as session:
        async with session.begin():
            await session.connection(execution_options={"logging_token": "event-ticker"})
            seen = (await session.execute(_READ_TICK)).one_or_none()
            if seen is None:
                # The first tick of this database only marks where the next one starts.
                statement = insert_for(session.get_bind().dialect.name)(_TICKS).values(name=TICK_NAME, tick=0, at=now)
                await session.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
                return 0
            previous: datetime = seen.at
            if now <= previous:
                return 0
            moved = await session.execute(_MOVE_TICK, {"seen": seen.tick, "next_tick": seen.tick + 1, "now": now})
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return 0  # another replica announced this stretch
            grace, ttl = timedelta(seconds=grace_seconds), timedelta(seconds=ttl_seconds)
            ended = (
                await session.execute(_PRIORITY_ENDED, {"ended_from": previous - ttl, "ended_to": now - ttl})
            ).all()
            for uuid, screenshot_type, digest, received_at in ended:
                data = {
                    "uuid": uuid,
                    "active": False,
                    "type": screenshot_type,
                    "hash": digest,
                    "receivedAt": received_at,
                    "expiresAt": received_at + ttl,
                }
                rows.append(event_row(kind="priority", client_uuid=uuid, data=data, at=now))
            late = list(
                (await session.execute(_TURNED_LATE, {"late_from": previous - grace, "late_to": now - grace})).scalars()
            )
            if late:
                rows += await announce_status_changes(session, sorted(late), now=now, grace_seconds=grace_seconds)
            if seen.tick % RETENTION_EVERY_TICKS == 0:
                await delete_old_events(session, now=now)
            if rows:
                await write_events(session, rows)
        if rows:
            wake_after_commit(session)
    return len(rows)


def start_event_ticker(state: AppState, *, interval: float = TICK_SECONDS) -> asyncio.Task[None]:
    """Tick every `interval` seconds; kept in `state.tasks` (the lifespan cancels it)."""
    settings = state.settings

    async def job() -> int:
        return await tick(
            state.session_factory,
            now=state.now(),
            grace_seconds=settings.heartbeat_grace_seconds,
            ttl_seconds=settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
        )

    task = asyncio.create_task(
        run_periodically(job, first_delay=interval, interval=interval, name="event ticker"), name="event-ticker"
    )
    state.tasks.append(task)
    return task
