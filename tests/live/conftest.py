"""The service as users run it: `python -m app serve` (uvicorn) on a free port, over a real socket.

`httpx.ASGITransport` waits for the whole ASGI call, work done after the response included, so it
cannot see an answer sent before its commit. These fixtures start the real server in its own
process, on SQLite or on a PostgreSQL database of its own, and talk to it over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, SUPERADMIN_SECRET, require_service
from tests.mqtt.conftest import free_port

START_DEADLINE_SECONDS = 60.0
# Small, so that a test reaches the pruning of the screenshot history in a few uploads.
HISTORY_PER_CLIENT = 2


@dataclass
class LiveServer:
    """One `python -m app serve` process; `url` is where it listens."""

    backend: str
    database_url: str
    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    # Settings of this server beyond the defaults below (e.g. MQTT on, a short priority TTL).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def screenshots_dir(self) -> Path:
        return self.data_dir / "screenshots"

    @property
    def asyncpg_url(self) -> str:
        """The database as a plain asyncpg DSN (PostgreSQL only), for arranging faults."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def start(self) -> None:
        assert self.process is None
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DATA_DIR": str(self.data_dir),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "MQTT_ENABLED": "false",
            "INITIAL_SUPERADMIN_TOKEN": SUPERADMIN_SECRET,
            "LOG_LEVEL": "WARNING",
            "SCREENSHOT_HISTORY_PER_CLIENT": str(HISTORY_PER_CLIENT),
            **self.extra_env,
        }
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"], env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start-up:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not get ready in time:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def running_server(backend: str, directory: Path, *, extra_env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A started server on `backend` with a database of its own (dropped afterwards), data under `directory`."""
    database_name = f"monitor_live_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{directory / 'data' / 'monitor.db'}"
    else:
        try:
            asyncio.run(_admin(f'CREATE DATABASE "{database_name}"'))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            require_service(f"PostgreSQL is not reachable on {POSTGRES_ADMIN_URL}: {exc}")
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        database_url = f"{base}/{database_name}"
    server = LiveServer(
        backend=backend,
        database_url=database_url,
        data_dir=directory / "data",
        port=free_port(),
        log_path=directory / "server.log",
        extra_env=extra_env or {},
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if backend == "postgresql":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)'))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real server on one backend (its own database), started once per test module."""
    backend = str(request.param)
    with running_server(backend, tmp_path_factory.mktemp(f"live-{backend}")) as server:
        yield server


@pytest.fixture
async def live(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the live server, as the superadmin; room for 32 concurrent requests."""
    # Idle connections expire on the client first: uvicorn closes a keep-alive connection after 5 s, and a
    # request sent on it just then gets "Server disconnected without sending a response".
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
        limits=limits,
        # Generous: on a loaded 2-core machine 32 concurrent requests queue up; a miss is a wrong answer, not slowness.
        timeout=120,
    ) as http:
        yield http
