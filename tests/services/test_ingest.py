"""The ingest service stores what it is given the same way on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import ClientLog, LatestLog
from app.schemas.ingest import LogRecord
from app.services.ingest import record_logs
from app.state import AppState
from tests.conftest import Clock

pytestmark = pytest.mark.usefixtures("backend")


class TestTimestamps:
    async def test_a_naive_log_timestamp_is_stored_as_utc(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        """Naive means UTC (SPEC §9), whatever the database session's own time zone."""
        naive = datetime(2026, 3, 9, 12, 30)
        async with state.session_factory() as writer, writer.begin():
            await record_logs(writer, [("d", LogRecord(level="ERROR", message="m", timestamp=naive))], now=clock())
        expected = naive.replace(tzinfo=UTC)
        assert (await session.execute(select(col(ClientLog.timestamp)))).scalars().all() == [expected]
        pointers = (await session.execute(select(LatestLog.log_timestamp, LatestLog.error_timestamp))).one()
        assert tuple(pointers) == (expected, expected)
