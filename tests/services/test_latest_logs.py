"""The newest-log pointers kept at ingest (`latest_logs`) give what a search of each client's logs gives."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ClientLog
from app.schemas.ingest import LogRecord
from app.services.ingest import record_logs
from app.services.overview import Rules, client_views
from app.services.retention import delete_expired_logs
from app.state import AppState
from tests.conftest import Clock
from tests.services.test_window_counts import seed_random_logs

pytestmark = pytest.mark.usefixtures("backend")

RULES = Rules(grace_seconds=180, priority_ttl_seconds=120)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"LOG_RETENTION_DAYS": 1}


async def searched(session: AsyncSession) -> dict[str, tuple[int | None, int | None]]:
    """Each client's newest log id and newest ERROR id by timestamp, then id: the definition."""
    rows = (await session.execute(select(ClientLog))).scalars().all()
    newest: dict[str, tuple[int | None, int | None]] = {}
    for row in sorted(rows, key=lambda row: (row.timestamp, row.id)):
        _, error_id = newest.get(row.client_uuid, (None, None))
        newest[row.client_uuid] = (row.id, row.id if row.level == "ERROR" else error_id)
    return newest


async def pointed(session: AsyncSession, now: datetime) -> dict[str, tuple[int | None, int | None]]:
    """The same pair as the overview reports it (clients without any log left out)."""
    views = await client_views(session, now=now, hours=24, rules=RULES, with_logs=True)
    return {
        view.client.uuid: (
            view.latest_log["id"] if view.latest_log else None,
            view.latest_error["id"] if view.latest_error else None,
        )
        for view in views
        if view.latest_log is not None or view.latest_error is not None
    }


class TestLatestLogPointers:
    @pytest.mark.parametrize("seed", [11, 12])
    async def test_random_out_of_order_batches_match_a_search(
        self, state: AppState, clock: Clock, session: AsyncSession, seed: int
    ) -> None:
        rng = random.Random(seed)
        now = clock()
        # Random timestamps (late arrivals, ties on hour boundaries, future ones), redeliveries, random batches.
        await seed_random_logs(state, now, rng, count=400)
        expected = await searched(session)
        assert len(expected) == 6
        assert any(log_id != error_id for log_id, error_id in expected.values())  # the two pointers differ
        assert await pointed(session, now) == expected

    async def test_a_late_log_with_an_older_timestamp_does_not_move_the_pointer(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        now = clock()
        async with state.session_factory() as writer, writer.begin():
            await record_logs(writer, [("d", LogRecord(level="ERROR", message="new", timestamp=now))], now=now)
        async with state.session_factory() as writer, writer.begin():
            late = LogRecord(level="ERROR", message="late", timestamp=now - timedelta(minutes=5))
            await record_logs(writer, [("d", late)], now=now)
        async with state.session_factory() as writer, writer.begin():
            tie = LogRecord(level="INFO", message="same time, later id", timestamp=now)
            await record_logs(writer, [("d", tie)], now=now)
        views = await client_views(session, now=now, hours=24, rules=RULES, with_logs=True)
        assert views[0].latest_log is not None
        assert views[0].latest_error is not None
        assert (views[0].latest_log["message"], views[0].latest_error["message"]) == ("same time, later id", "new")

    async def test_retention_clears_pointers_to_deleted_logs_and_late_logs_take_them(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        now = clock()
        old = now - timedelta(days=3)
        async with state.session_factory() as writer, writer.begin():
            await record_logs(
                writer,
                [
                    ("gone", LogRecord(level="ERROR", message="old error", timestamp=old)),
                    ("gone", LogRecord(level="INFO", message="old info", timestamp=old + timedelta(minutes=1))),
                    ("mixed", LogRecord(level="ERROR", message="old error", timestamp=old)),
                    ("mixed", LogRecord(level="WARN", message="recent", timestamp=now - timedelta(hours=1))),
                ],
                now=now,
            )
        assert await delete_expired_logs(state, batch_size=1) == 3
        assert await pointed(session, now) == await searched(session)
        assert set(await pointed(session, now)) == {"mixed"}
        # A log older than the one that was cleared still becomes the newest.
        async with state.session_factory() as writer, writer.begin():
            late = LogRecord(level="ERROR", message="late", timestamp=old - timedelta(hours=1))
            await record_logs(writer, [("gone", late)], now=now)
        session.expire_all()
        ids = await searched(session)
        assert ids["gone"][0] == ids["gone"][1] is not None
        assert await pointed(session, now) == ids

    async def test_one_client_reads_the_same_pointer(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        rng = random.Random(5)
        now = clock()
        await seed_random_logs(state, now, rng, count=120)
        expected = await searched(session)
        uuid = sorted(expected)[2]
        views = await client_views(session, now=now, hours=24, rules=RULES, with_logs=True, client_uuid=uuid)
        assert [(view.client.uuid, view.latest_log and view.latest_log["id"]) for view in views] == [
            (uuid, expected[uuid][0])
        ]
