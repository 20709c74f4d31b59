"""Alembic migrations build, from empty, exactly the schema the models describe (both backends)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from app import models  # noqa: F401  (registers the tables)
from app.db import alembic_config, create_engine, run_migrations
from app.services.ingest import LEVEL_COLUMNS
from tests.conftest import POSTGRES_ADMIN_URL, require_service

CORE_TABLES = {
    "api_tokens",
    "client_groups",
    "client_logs",
    "clients",
    "dashboard_sessions",
    "latest_logs",
    "log_counts_hourly",
    "log_counts_six_hourly",
    "log_totals",
    "mqtt_credentials",
    "screenshots",
}


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
async def empty_engine(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a brand-new, empty database of this backend."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        yield engine
        await engine.dispose()
        return
    name = f"monitor_migrations_{uuid.uuid4().hex[:12]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError):
        require_service("PostgreSQL is not reachable on " + POSTGRES_ADMIN_URL)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_engine(f"{base}/{name}")
    try:
        yield engine
    finally:
        await engine.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
    return list(compare_metadata(context, SQLModel.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade_to_base(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


class TestMigrations:
    async def test_apply_from_empty_and_match_the_models(self, empty_engine: AsyncEngine) -> None:
        async with empty_engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
        await run_migrations(empty_engine)
        async with empty_engine.connect() as connection:
            tables = await connection.run_sync(_tables)
            assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
            assert tables >= CORE_TABLES
            assert await connection.run_sync(_diff) == []

    async def test_applying_twice_is_a_no_op(self, empty_engine: AsyncEngine) -> None:
        await run_migrations(empty_engine)
        async with empty_engine.connect() as connection:
            first = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        await run_migrations(empty_engine)
        async with empty_engine.connect() as connection:
            assert await connection.scalar(text("SELECT version_num FROM alembic_version")) == first
            assert await connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1

    async def test_downgrade_to_base_and_up_again(self, empty_engine: AsyncEngine) -> None:
        await run_migrations(empty_engine)
        async with empty_engine.begin() as connection:
            await connection.run_sync(_downgrade_to_base)
        async with empty_engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        await run_migrations(empty_engine)
        async with empty_engine.connect() as connection:
            assert await connection.run_sync(_diff) == []

    async def test_later_read_tables_are_filled_from_the_logs_already_stored(self, empty_engine: AsyncEngine) -> None:
        """0006 sums the hourly rollup into 6-hour blocks; 0007 points at each client's newest log and error."""
        async with empty_engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0005")
        start = datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
        logs = [  # (id, client, minutes after 04:00, level); ids out of time order on purpose
            (1, "d1", 10, "ERROR"),
            (2, "d1", 130, "INFO"),  # 06:10, the next 6-hour block
            (3, "d1", 130, "WARN"),  # same time, higher id: the newest log of d1
            (4, "d1", 5, "ERROR"),  # older than id 1: not the newest error
            (5, "d2", 700, "DEBUG"),  # 15:40
            (6, "d2", 20, "ERROR"),
        ]
        rows = [
            {"id": log_id, "client_uuid": uuid_, "timestamp": start + timedelta(minutes=minutes), "level": level}
            for log_id, uuid_, minutes, level in logs
        ]
        columns = list(LEVEL_COLUMNS.values())
        hourly: dict[tuple[datetime, str], Counter[str]] = {}
        for row in rows:
            key = (row["timestamp"].replace(minute=0), row["client_uuid"])
            hourly.setdefault(key, Counter())[LEVEL_COLUMNS[row["level"]]] += 1
        async with empty_engine.begin() as connection:
            await connection.execute(
                insert(models.Client.__table__),  # type: ignore[attr-defined]
                [{"uuid": name, "is_active": True} for name in ("d1", "d2", "d3")],
            )
            await connection.execute(
                insert(models.ClientLog.__table__),  # type: ignore[attr-defined]
                [{**row, "message": "m"} for row in rows],
            )
            await connection.execute(
                insert(models.LogCountHourly.__table__),  # type: ignore[attr-defined]
                [
                    {"bucket_start": hour, "client_uuid": client} | {name: counts[name] for name in columns}
                    for (hour, client), counts in hourly.items()
                ],
            )
        await run_migrations(empty_engine)
        async with empty_engine.connect() as connection:
            six = models.LogCountSixHourly.__table__  # type: ignore[attr-defined]
            stored = {
                (row.bucket_start, row.client_uuid): (row.error, row.warn, row.info, row.debug)
                for row in (await connection.execute(select(six))).all()
            }
            latest = models.LatestLog.__table__  # type: ignore[attr-defined]
            pointers = {
                row.client_uuid: (row.log_id, row.error_id, row.log_timestamp)
                for row in (await connection.execute(select(latest))).all()
            }
        six_am, noon = start.replace(hour=6), start.replace(hour=12)
        assert stored == {
            (start.replace(hour=0), "d1"): (2, 0, 0, 0),
            (six_am, "d1"): (0, 1, 1, 0),
            (start.replace(hour=0), "d2"): (1, 0, 0, 0),
            (noon, "d2"): (0, 0, 0, 1),
        }
        assert pointers == {"d1": (3, 1, start + timedelta(minutes=130)), "d2": (5, 6, start + timedelta(minutes=700))}
