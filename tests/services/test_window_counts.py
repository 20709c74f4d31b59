"""The fast window counts (6-hour and hourly rollups + the logs of at most half an hour) equal a brute-force COUNT."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import LOG_LEVELS, ClientLog
from app.schemas.ingest import LogRecord
from app.services.ingest import block_start, record_logs
from app.services.logs import window_counts
from app.state import AppState
from tests.conftest import Clock

pytestmark = pytest.mark.usefixtures("backend")

CLIENTS = [f"disp-{number:02d}" for number in range(6)]


async def seed_random_logs(state: AppState, now: datetime, rng: random.Random, *, count: int) -> None:
    """Random logs over the last 50 hours and up to 2 hours into the future, ingested in random batches.

    Some carry a message_id that is sent again later (a redelivery): the repeat must not count.
    Timestamps fall on and around hour boundaries on purpose.
    """
    entries: list[tuple[str, LogRecord]] = []
    sent_ids: list[tuple[str, LogRecord]] = []
    for number in range(count):
        if rng.random() < 0.15:
            # exactly on an hour boundary, or a microsecond either side of one
            base = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=rng.randrange(-2, 50))
            timestamp = base + timedelta(microseconds=rng.choice((-1, 0, 1)))
        else:
            timestamp = now - timedelta(seconds=rng.uniform(-2 * 3600, 50 * 3600))
        record = LogRecord(
            level=rng.choice(LOG_LEVELS),
            message=f"line {number}",
            timestamp=timestamp,
            message_id=f"m-{number}" if rng.random() < 0.5 else None,
        )
        entry = (rng.choice(CLIENTS), record)
        entries.append(entry)
        if record.message_id is not None and rng.random() < 0.3:
            sent_ids.append(entry)
    entries += sent_ids  # redeliveries, same client and message_id
    rng.shuffle(entries)
    position = 0
    while position < len(entries):
        size = rng.randrange(1, 60)
        async with state.session_factory() as session, session.begin():
            await record_logs(session, entries[position : position + size], now=now)
        position += size


async def brute_force(
    session: AsyncSession, since: datetime, client_uuid: str | None = None
) -> dict[str, Counter[str]]:
    query = select(col(ClientLog.client_uuid), col(ClientLog.level), func.count()).where(
        col(ClientLog.timestamp) >= since
    )
    if client_uuid is not None:
        query = query.where(col(ClientLog.client_uuid) == client_uuid)
    expected: dict[str, Counter[str]] = {}
    for uuid, level, count in (
        await session.execute(query.group_by(col(ClientLog.client_uuid), col(ClientLog.level)))
    ).all():
        expected.setdefault(uuid, Counter())[level] = count
    return expected


def positive(counts: dict[str, dict[str, int]]) -> dict[str, Counter[str]]:
    """Drop zero levels so both sides compare as multisets."""
    return {uuid: +Counter(levels) for uuid, levels in counts.items()}


def random_windows(now: datetime, rng: random.Random) -> list[datetime]:
    hour = now.replace(minute=0, second=0, microsecond=0)
    block = block_start(now, 6)
    windows = [
        hour - timedelta(hours=24),  # on an hour boundary
        hour - timedelta(hours=5, minutes=30),  # exactly half past: the subtracting edge
        hour - timedelta(hours=5, minutes=30, microseconds=-1),  # just after half past: the adding edge
        hour - timedelta(hours=3, microseconds=1),  # a microsecond before an hour
        block - timedelta(hours=12),  # on a 6-hour boundary: 6-hour rows only
        block - timedelta(hours=9),  # half a block: that block whole, 3 hours subtracted
        block - timedelta(hours=8, minutes=40),  # 3 h 20 min into a block: hours added up to the next block
        block - timedelta(hours=11, minutes=50),  # 10 min into a block: logs and hours subtracted
        now + timedelta(hours=1, minutes=7),  # in the future: only future logs count
        now - timedelta(days=10),  # before every log
    ]
    windows += [now - timedelta(seconds=rng.uniform(0, 51 * 3600)) for _ in range(16)]
    return windows


class TestWindowCountsMatchBruteForce:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_random_logs_and_random_windows(
        self, state: AppState, clock: Clock, session: AsyncSession, seed: int
    ) -> None:
        rng = random.Random(seed)
        clock.advance(rng.uniform(0, 3600))  # "now" anywhere inside an hour
        now = clock()
        await seed_random_logs(state, now, rng, count=400)
        for since in random_windows(now, rng):
            expected = await brute_force(session, since)
            assert positive(await window_counts(session, since=since)) == expected, since

    async def test_one_client_filter_matches_brute_force(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        rng = random.Random(7)
        clock.advance(1234.5)
        now = clock()
        await seed_random_logs(state, now, rng, count=300)
        for since in random_windows(now, rng)[:8]:
            for uuid in (CLIENTS[0], CLIENTS[3], "never-logged"):
                expected = await brute_force(session, since, client_uuid=uuid)
                assert positive(await window_counts(session, since=since, client_uuid=uuid)) == expected

    async def test_clients_without_logs_in_the_window_are_left_out(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        now = clock.advance(40 * 60)  # 21:40: the window below starts in the second half of 20:00-21:00
        async with state.session_factory() as writer, writer.begin():
            await record_logs(
                writer,
                [
                    ("old", LogRecord(level="ERROR", message="before", timestamp=now - timedelta(hours=2))),
                    ("edge", LogRecord(level="WARN", message="in", timestamp=now - timedelta(minutes=55))),
                    ("edge", LogRecord(level="INFO", message="out", timestamp=now - timedelta(minutes=65))),
                ],
                now=now,
            )
        since = now - timedelta(hours=1)  # 20:40, second half of its hour: logs after it are added
        assert await window_counts(session, since=since) == {"edge": {"ERROR": 0, "WARN": 1, "INFO": 0, "DEBUG": 0}}
        since = now - timedelta(minutes=70)  # 20:30, first half: the hour is taken whole, earlier logs removed
        assert await window_counts(session, since=since) == {"edge": {"ERROR": 0, "WARN": 1, "INFO": 1, "DEBUG": 0}}
