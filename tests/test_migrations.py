"""Alembic migrations build, from empty, exactly the schema the models describe (both backends)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from app import models  # noqa: F401  (registers the tables)
from app.db import alembic_config, create_engine, run_migrations
from tests.conftest import POSTGRES_ADMIN_URL, require_service

CORE_TABLES = {
    "api_tokens",
    "client_groups",
    "client_logs",
    "clients",
    "log_counts_hourly",
    "log_totals",
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
