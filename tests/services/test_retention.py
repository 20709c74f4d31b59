"""Log retention on both backends: old rows go in batches, rollup and totals stay exact."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import LOG_LEVELS, ClientLog, LogTotal
from app.schemas.ingest import LogRecord
from app.services.ingest import LEVEL_COLUMNS, ROLLUPS, block_start, record_logs
from app.services.logs import window_counts
from app.services.retention import delete_expired_logs, run_periodically
from app.state import AppState
from tests.conftest import Clock

CLIENTS = ("display-1", "display-2", "display-3")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"LOG_RETENTION_DAYS": 30}


async def seed(state: AppState, clock: Clock, count: int, *, seed: int = 7) -> None:
    """Logs spread over the last 40 days (a quarter of them beyond the retention) at odd minutes."""
    rng = random.Random(seed)
    entries = [
        (
            rng.choice(CLIENTS),
            LogRecord(
                level=rng.choice(LOG_LEVELS),
                message=f"line {index}",
                timestamp=clock() - timedelta(minutes=rng.randrange(0, 40 * 24 * 60), seconds=rng.randrange(60)),
            ),
        )
        for index in range(count)
    ]
    async with state.session_factory() as session, session.begin():
        await record_logs(session, entries, now=clock())


RollupCounts = dict[int, Counter[tuple[datetime, str, str]]]


async def brute_force(session: AsyncSession) -> tuple[RollupCounts, Counter[str]]:
    """Per rollup (by its bucket length in hours): counts per (bucket, client, level); and per level."""
    rows = (await session.execute(select(ClientLog))).scalars().all()
    rollups = {
        hours: Counter((block_start(row.timestamp, hours), row.client_uuid, row.level) for row in rows)
        for _, hours in ROLLUPS
    }
    return rollups, Counter(row.level for row in rows)


async def stored_counts(session: AsyncSession) -> tuple[RollupCounts, Counter[str]]:
    rollups = {}
    for table, hours in ROLLUPS:
        rows = (await session.execute(select(table))).all()
        stored = Counter(
            {
                (row.bucket_start, row.client_uuid, level): getattr(row, column)
                for row in rows
                for level, column in LEVEL_COLUMNS.items()
            }
        )
        rollups[hours] = +stored
    totals = Counter({row.level: row.count for row in (await session.execute(select(LogTotal))).scalars().all()})
    return rollups, +totals


class TestDeleteExpiredLogs:
    async def test_deletes_only_older_than_retention_and_counts_stay_exact(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await seed(state, clock, 600)
        cutoff = clock() - timedelta(days=30)
        expected_left = (
            (await session.execute(select(col(ClientLog.id)).where(col(ClientLog.timestamp) >= cutoff))).scalars().all()
        )
        assert 0 < len(expected_left) < 600

        deleted = await delete_expired_logs(state, batch_size=37)  # many batches, the last one partial
        assert deleted == 600 - len(expected_left)

        session.expire_all()
        left = (await session.execute(select(col(ClientLog.id)))).scalars().all()
        assert sorted(left) == sorted(expected_left)
        oldest = (await session.execute(select(ClientLog.timestamp).order_by(col(ClientLog.timestamp)))).scalars()
        assert next(iter(oldest)) >= cutoff

        assert await stored_counts(session) == await brute_force(session)
        # No rollup rows left at zero for whole buckets before the cutoff.
        for table, hours in ROLLUPS:
            zero_rows = (
                await session.execute(
                    select(table.c.bucket_start).where(*(table.c[column] == 0 for column in LEVEL_COLUMNS.values()))
                )
            ).all()
            assert all(row.bucket_start >= block_start(cutoff, hours) for row in zero_rows)

    @pytest.mark.parametrize("hours", [1, 24, 24 * 29 + 5, 24 * 31, 24 * 45])
    async def test_window_counts_match_brute_force_after_retention(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession, hours: int
    ) -> None:
        await seed(state, clock, 300, seed=hours)
        await delete_expired_logs(state, batch_size=50)
        since = clock() - timedelta(hours=hours, minutes=17)
        rows = (await session.execute(select(ClientLog).where(col(ClientLog.timestamp) >= since))).scalars().all()
        expected: dict[str, Counter[str]] = {}
        for row in rows:
            expected.setdefault(row.client_uuid, Counter())[row.level] += 1
        counts = await window_counts(session, since=since)
        assert {uuid: +Counter(levels) for uuid, levels in counts.items()} == expected

    async def test_second_run_and_new_logs_keep_counts_exact(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await seed(state, clock, 200, seed=1)
        await delete_expired_logs(state, batch_size=5000)
        assert await delete_expired_logs(state) == 0
        clock.advance(5 * 24 * 3600)  # five more days expire
        await seed(state, clock, 100, seed=2)
        assert await delete_expired_logs(state, batch_size=9) > 0
        session.expire_all()
        assert await stored_counts(session) == await brute_force(session)

    async def test_nothing_to_delete_is_zero(self, backend: str, state: AppState, session: AsyncSession) -> None:
        assert await delete_expired_logs(state) == 0
        assert await stored_counts(session) == ({1: Counter(), 6: Counter()}, Counter())


class TestRunPeriodically:
    async def test_a_failing_run_is_logged_and_the_next_run_happens(self, caplog: pytest.LogCaptureFixture) -> None:
        calls: list[int] = []
        third_run = asyncio.Event()

        async def job() -> None:
            calls.append(len(calls))
            if len(calls) == 1:
                raise RuntimeError("database away")
            if len(calls) == 3:
                third_run.set()

        task = asyncio.create_task(run_periodically(job, first_delay=0, interval=0))
        try:
            async with asyncio.timeout(5):
                await third_run.wait()
            assert not task.done()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert "log retention failed" in caplog.text
        assert "database away" in caplog.text

    async def test_the_app_keeps_its_retention_task_until_shutdown(self, backend: str, state: AppState) -> None:
        names = [task.get_name() for task in state.tasks]
        assert "log-retention" in names
        assert all(not task.done() for task in state.tasks if task.get_name() == "log-retention")
