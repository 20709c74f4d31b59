"""Async engine, session factory and the migrations runner."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Result, bindparam, event, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works: it only has to be the same for every replica migrating one database.
_MIGRATION_LOCK_ID = 7_140_221


def create_engine(database_url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, foreign keys and a busy timeout."""
    if database_url.startswith("sqlite"):
        _ensure_sqlite_dir(database_url)
        engine = create_async_engine(database_url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # JIT compilation and parallel workers off: the service's statements are short and planned over and
    # over. JIT only adds compile time (about 15 ms on the overview's client query once its estimated cost
    # crosses 100,000); starting parallel workers for the window counts costs more than it saves on a few
    # cores shared with the service itself (summary at 2,000 clients: ~17 ms with 2 workers, ~13 ms without).
    # No pre-ping: it costs three round trips (BEGIN, a ping, ROLLBACK) on every checkout. After the
    # database restarts, the first request on a dead connection gets a 503 and invalidates the pool,
    # so the next ones reconnect (the DBAPIError handler in `app/errors.py`).
    return create_async_engine(
        database_url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        connect_args={"server_settings": {"jit": "off", "max_parallel_workers_per_gather": "0"}},
    )


def _ensure_sqlite_dir(database_url: str) -> None:
    path = database_url.split("///", 1)[-1]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def run_migrations(engine: AsyncEngine) -> None:
    """Apply pending Alembic migrations; replicas on PostgreSQL take turns under an advisory lock."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        await connection.run_sync(_upgrade)
    logger.info("database schema is up to date")


def insert_for(dialect: str) -> Any:
    """`INSERT ... ON CONFLICT` builder for a backend by name (PostgreSQL or SQLite)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@functools.cache
def rows_insert(dialect: str, table: Any, columns: tuple[str, ...]) -> Any:
    """`INSERT ... ON CONFLICT` of many rows with these columns, for `execute_many`.

    SQLite: a plain INSERT, executed many times (SQLAlchemy pages the rows into multi-row VALUES).
    PostgreSQL: `INSERT ... SELECT * FROM unnest(:column, ...)`, one array parameter per column, so
    a batch binds a handful of parameters instead of a few per row (that per-row work was most of
    the ingest's time on the Python side). The arrays keep the columns' types, so their elements get
    the same processing as single values (`UTCDateTime` makes every timestamp aware UTC).
    """
    statement = insert_for(dialect)(table)
    if dialect != "postgresql":
        return statement
    arrays = [bindparam(name, type_=ARRAY(table.c[name].type)) for name in columns]
    incoming = func.unnest(*arrays).table_valued(*columns).render_derived(name="incoming")
    return statement.from_select(list(columns), select(*(incoming.c[name] for name in columns)))


async def execute_many(session: AsyncSession, statement: Any, rows: list[dict[str, Any]]) -> Result[Any]:
    """One INSERT for many rows (every row with the same keys) with a statement from `rows_insert`.

    Statements are built once and cached: compiling one per batch was most of the MQTT ingest's time.
    """
    return await execute_rows(await session.connection(), statement, rows)


async def execute_rows(connection: AsyncConnection, statement: Any, rows: list[dict[str, Any]]) -> Result[Any]:
    """`execute_many` on a connection: one statement from `rows_insert` for rows that all have the same keys."""
    parameters: Any = rows
    if connection.dialect.name == "postgresql":
        parameters = {name: [row[name] for row in rows] for name in rows[0]}
    result: Result[Any] = await connection.execute(statement, parameters)
    return result
