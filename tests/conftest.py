"""Shared fixtures: the app on a real SQLite file or a real PostgreSQL database, tokens, a clock.

Data-layer and API tests take the `backend` fixture and so run on both backends. PostgreSQL is
the server on 127.0.0.1:5432 (override with TEST_POSTGRES_URL); each test session creates its
own throwaway database and drops it at the end. Without the server the PostgreSQL variants skip,
except with CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.main import create_app
from app.services.tokens import create_token
from app.state import AppState

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SUPERADMIN_SECRET = "test-superadmin-secret-0123456789abcdef"
TABLES = (
    "maintenance_windows",
    "notifications",
    "webhooks",
    "incidents",
    "status_history",
    "display_states",
    "dashboard_sessions",
    "events",
    "event_ticks",
    "screenshots",
    "log_counts_hourly",
    "log_counts_six_hourly",
    "log_totals",
    "latest_logs",
    "client_logs",
    "clients",
    "client_groups",
    "mqtt_credentials",
    "api_tokens",
)


def require_service(reason: str) -> None:
    """Skip a test whose service is missing, but fail it in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: services are required)")
    pytest.skip(reason)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A database of this test session on the PostgreSQL server, or None when the server is away."""
    name = f"monitor_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        yield None
        print(f"PostgreSQL unavailable: {exc}")  # noqa: T201
        return
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, postgres_database: str | None) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'monitor.db'}"
    if postgres_database is None:
        require_service("PostgreSQL is not reachable on " + POSTGRES_ADMIN_URL)
    assert postgres_database is not None
    return postgres_database


@dataclass
class Clock:
    """A settable clock for the app: tests move time instead of sleeping."""

    current: datetime = field(default_factory=lambda: datetime(2026, 3, 9, 21, 0, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "DATA_DIR": tmp_path / "data",
        "MQTT_ENABLED": False,
        # Off unless a test asks for it: a background verdict must not race other tests' status checks.
        "SCREEN_ANALYSIS_ENABLED": False,
        # Off unless a test asks for it: the evaluator's writes must not race other tests' checks.
        "STATUS_EVALUATION_ENABLED": False,
        "WEBHOOK_DELIVERY_ENABLED": False,
        "INITIAL_SUPERADMIN_TOKEN": SUPERADMIN_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    values.update(settings_overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def _truncate(state: AppState) -> None:
    async with state.engine.begin() as connection:
        if state.engine.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running, on an empty database."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        state: AppState = application.state.monitor
        if state.engine.dialect.name == "postgresql":
            # The session database is shared by the tests: start from empty tables, then re-bootstrap.
            await _truncate(state)
            # The feed started after the previous test's newest event; the ids start again from 1.
            await state.events.start()
            async with state.session_factory() as session, session.begin():
                await create_token(
                    session,
                    name="initial-superadmin",
                    role="superadmin",
                    client_uuid=None,
                    now=clock(),
                    secret=SUPERADMIN_SECRET,
                )
        yield application


@pytest.fixture
def state(app: FastAPI) -> AppState:
    monitor: AppState = app.state.monitor
    return monitor


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def session(state: AppState) -> AsyncIterator[AsyncSession]:
    """A session on the app's database for arranging and checking data; commit explicitly."""
    async with state.session_factory() as db_session:
        yield db_session


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def superadmin() -> dict[str, str]:
    return bearer(SUPERADMIN_SECRET)


class TokenMaker:
    def __init__(self, state: AppState, clock: Clock) -> None:
        self.state = state
        self.clock = clock

    async def __call__(self, role: str, *, client_uuid: str | None = None, name: str | None = None) -> dict[str, str]:
        """Authorization headers for a new token of this role."""
        async with self.state.session_factory() as db_session, db_session.begin():
            _, secret = await create_token(
                db_session, name=name or f"{role}-token", role=role, client_uuid=client_uuid, now=self.clock()
            )
        return bearer(secret)


@pytest.fixture
def make_token(state: AppState, clock: Clock) -> TokenMaker:
    return TokenMaker(state, clock)


BACKGROUND_LOGGING_TOKENS = ("event-feed", "event-ticker")


class StatementCounter:
    """Counts SQL statements sent by the app's engine while `counting` is on."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []
        self.counting = False

    def __call__(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The event feed's and ticker's own statements (background tasks) belong to no request.
        if conn.get_execution_options().get("logging_token") in BACKGROUND_LOGGING_TOKENS:
            return
        if self.counting:
            self.count += 1
            self.statements.append(statement)

    def reset(self) -> None:
        self.count = 0
        self.statements = []


@pytest.fixture
def statement_counter(state: AppState) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    event.listen(state.engine.sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(state.engine.sync_engine, "before_cursor_execute", counter)
