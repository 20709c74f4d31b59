"""Two real servers on one PostgreSQL database: one evaluates; killed (SIGKILL, no shutdown), the other
takes over within a few seconds (SPEC §12)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from app.services.evaluator import EVALUATOR_LOCK_ID
from tests.live.conftest import LiveServer
from tests.mqtt.conftest import free_port

# The evaluation interval is 5 s by default: a standby tries the lock at each of its passes.
HANDOVER_SECONDS = 10


async def lock_holder(dsn: str) -> int | None:
    """The backend pid holding the evaluator's advisory lock, if any."""
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        holder: int | None = await connection.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted",
            EVALUATOR_LOCK_ID,
        )
        return holder
    finally:
        await connection.close()


async def wait_for_holder(dsn: str, *, other_than: int | None, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        holder = await lock_holder(dsn)
        if holder is not None and holder != other_than:
            return holder
        assert time.monotonic() < deadline, f"no new evaluator within {seconds} s (holder {holder})"
        await asyncio.sleep(0.1)


def standby_of(server: LiveServer) -> LiveServer:
    """A second server on the same database (its own port and data directory)."""
    directory = server.data_dir.parent / "standby"
    directory.mkdir(parents=True, exist_ok=True)
    return LiveServer(
        backend=server.backend,
        database_url=server.database_url,
        data_dir=directory / "data",
        port=free_port(),
        log_path=directory / "server.log",
    )


async def test_a_killed_evaluator_is_replaced_within_seconds(live_server: LiveServer) -> None:
    if live_server.backend != "postgresql":
        pytest.skip("replicas share a PostgreSQL database")
    # The first server evaluates; the standby starts after it, so it can only wait.
    first = await wait_for_holder(live_server.asyncpg_url, other_than=None, seconds=HANDOVER_SECONDS)
    standby = standby_of(live_server)
    standby.start()
    try:
        await asyncio.sleep(1)
        assert await lock_holder(live_server.asyncpg_url) == first
        assert live_server.process is not None
        # SIGKILL: no shutdown code runs; the database notices the dropped connection.
        live_server.process.kill()
        live_server.process.wait()
        live_server.process = None
        started = time.monotonic()
        second = await wait_for_holder(live_server.asyncpg_url, other_than=first, seconds=HANDOVER_SECONDS)
        assert second != first
        assert time.monotonic() - started < HANDOVER_SECONDS
        assert standby.process is not None
        assert standby.process.poll() is None
    finally:
        standby.stop()
