"""Retention (SPEC §3 `LOG_RETENTION_DAYS`): old log rows go and the counts stay exact; old status
history, closed incidents and finished webhook deliveries go too.

Rows are deleted in batches, each its own short transaction, so the log table is never locked for
long. Every batch takes back exactly what it deleted (`DELETE ... RETURNING`) from the rollups
and the totals, so two replicas running retention at once never count a row twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.metrics import DATABASE_ERRORS, RETENTION_DELETED, count_after_commit
from app.models import ClientLog, LatestLog
from app.services.ingest import LEVEL_COLUMNS, ROLLUPS, adjust_log_counts, block_start, hour_bucket
from app.services.status_history import MIN_RETENTION, delete_expired_history
from app.state import AppState

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
# Let start-up (migrations, the MQTT connection) finish first; then once an hour.
FIRST_RUN_DELAY_SECONDS = 300.0
INTERVAL_SECONDS = 3600.0


async def delete_logs_batch(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` logs older than `before` and take them out of the counts; never commits."""
    expired = select(col(ClientLog.id)).where(col(ClientLog.timestamp) < before).limit(limit)
    deleted = (
        await session.execute(
            delete(ClientLog)
            .where(col(ClientLog.id).in_(expired))
            .returning(col(ClientLog.id), col(ClientLog.client_uuid), col(ClientLog.timestamp), col(ClientLog.level))
        )
    ).all()
    deltas = Counter((hour_bucket(row.timestamp), row.client_uuid, row.level) for row in deleted)
    await adjust_log_counts(session, {key: -count for key, count in deltas.items()})
    await forget_latest_logs(session, [row.id for row in deleted])
    count_after_commit(session, RETENTION_DELETED.labels("client_logs"), len(deleted))
    return len(deleted)


async def forget_latest_logs(session: AsyncSession, log_ids: list[int]) -> None:
    """Clear the newest-log, newest-error and newest-warning pointers that point at these deleted logs.

    A client's newest log is only deleted with all its older ones (they are older still), so
    there is nothing to point at instead; a late log arriving later takes the free pointer.
    """
    if not log_ids:
        return
    for kind in ("log", "error", "warn"):
        pointer = col(getattr(LatestLog, f"{kind}_id"))
        cleared = {f"{kind}_id": None, f"{kind}_timestamp": None}
        await session.execute(update(LatestLog).where(pointer.in_(log_ids)).values(cleared))


async def drop_empty_buckets(session: AsyncSession, *, before: datetime) -> None:
    """Remove rollup rows that retention brought to zero (only buckets wholly before `before`)."""
    for table, hours in ROLLUPS:
        await session.execute(
            delete(table).where(
                table.c.bucket_start < block_start(before, hours),
                *(table.c[column] == 0 for column in LEVEL_COLUMNS.values()),
            )
        )


async def delete_expired_logs(state: AppState, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete every log older than `LOG_RETENTION_DAYS`, one transaction per batch; returns how many."""
    before = state.now() - timedelta(days=state.settings.LOG_RETENTION_DAYS)
    total = 0
    while True:
        async with state.session_factory() as session, session.begin():
            deleted = await delete_logs_batch(session, before=before, limit=batch_size)
        total += deleted
        if deleted < batch_size:
            break
        await asyncio.sleep(0)  # let requests in between batches
    async with state.session_factory() as session, session.begin():
        await drop_empty_buckets(session, before=before)
    if total:
        logger.info("log retention: deleted %d logs older than %s", total, before.isoformat())
    return total


async def delete_expired(state: AppState) -> None:
    """Logs older than `LOG_RETENTION_DAYS`; status history, closed incidents and finished deliveries older
    than that or 30 days (the longest uptime window), whichever is longer."""
    await delete_expired_logs(state)
    keep = max(timedelta(days=state.settings.LOG_RETENTION_DAYS), MIN_RETENTION)
    async with state.session_factory() as session, session.begin():
        deleted = await delete_expired_history(session, before=state.now() - keep)
        for table, count in deleted.items():
            count_after_commit(session, RETENTION_DELETED.labels(table), count)


async def run_periodically(
    job: Callable[[], Awaitable[object]],
    *,
    first_delay: float = FIRST_RUN_DELAY_SECONDS,
    interval: float = INTERVAL_SECONDS,
    name: str = "log retention",
) -> None:
    """Run `job` after `first_delay`, then every `interval` seconds; a failure is logged, never fatal."""
    await asyncio.sleep(first_delay)
    while True:
        try:
            await job()
        except Exception:  # the task must outlive a database outage; the next run retries
            DATABASE_ERRORS.labels("retention").inc()
            logger.exception("%s failed; retrying in %.0f s", name, interval)
        await asyncio.sleep(interval)


def start_retention_task(state: AppState) -> asyncio.Task[None]:
    """Start the periodic retention task and keep it in `state.tasks` (the lifespan cancels it)."""
    task = asyncio.create_task(run_periodically(lambda: delete_expired(state)), name="log-retention")
    state.tasks.append(task)
    return task
