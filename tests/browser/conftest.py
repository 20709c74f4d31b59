"""The dashboard in a real browser: Debian's chromium driven by Playwright, against the real server.

The server runs as users run it (`python -m app serve`, tests/live's LiveServer) on PostgreSQL, with
MQTT on against a Mosquitto of this module, a short priority TTL, so a priority screenshot's whole
life fits in a test, and the status evaluator confirming a change at its next pass (every second).
Playwright's own browser download is never used: `executable_path` is the system chromium
(installed by `.ci/run` when missing).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import POSTGRES_ADMIN_URL, SUPERADMIN_SECRET, require_service
from tests.live.conftest import LiveServer
from tests.mqtt.conftest import MOSQUITTO, Broker, free_port

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
# Short, so that a priority screenshot ends within a test; long enough to be seen first.
PRIORITY_TTL_SECONDS = 8
READY_SECONDS = 30.0


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not Path(MOSQUITTO).exists():
        require_service(f"mosquitto is not installed ({MOSQUITTO})")
    running = Broker(tmp_path_factory.mktemp("broker"), free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def topic_prefix() -> str:
    return f"browser{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def dashboard_server(
    mqtt_broker: Broker, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The real server on a PostgreSQL database of its own, ingesting from the module's broker."""
    if not Path(CHROMIUM).exists():
        require_service(f"chromium is not installed ({CHROMIUM}): apt-get install -y chromium")
    name = f"monitor_browser_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service(f"PostgreSQL is not reachable on {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    directory = tmp_path_factory.mktemp("browser-server")
    server = LiveServer(
        backend="postgresql",
        database_url=f"{base}/{name}",
        data_dir=directory / "data",
        port=free_port(),
        log_path=directory / "server.log",
        extra_env={
            "MQTT_ENABLED": "true",
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(mqtt_broker.port),
            "MQTT_TOPIC_PREFIX": topic_prefix,
            "MQTT_CLIENT_ID": f"monitor-{topic_prefix}",
            "PRIORITY_SCREENSHOT_TTL_SECONDS": str(PRIORITY_TTL_SECONDS),
            "SCREEN_ANALYSIS_ENABLED": "false",
            # A status change is recorded at the next pass (every second): the drawer's history and incidents.
            "STATUS_CONFIRM_SECONDS": "0",
            "STATUS_EVALUATION_INTERVAL_SECONDS": "1",
        },
    )
    server.start()
    try:
        wait_for_mqtt(server)
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_for_mqtt(server: LiveServer) -> None:
    """Until the service subscribed: a message published before that would be lost (new session)."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/readyz", timeout=2).json().get("mqtt") == "connected":
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server never connected to the broker:\n{server.log_path.read_text()}")


@pytest.fixture
async def api(dashboard_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The API of the server under test, as the superadmin (to arrange data)."""
    async with httpx.AsyncClient(
        base_url=dashboard_server.url, headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"}, timeout=60
    ) as http:
        yield http


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # --no-sandbox: the tests may run as root (CI containers), where chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = await context.new_page()
    yield opened
    await context.close()


async def log_in(page: Page, server: LiveServer, secret: str = SUPERADMIN_SECRET) -> None:
    """Sign in through the form, as an operator does, and wait for the fleet to be drawn."""
    await page.goto(f"{server.url}/login")
    await page.fill('input[name="token"]', secret)
    async with page.expect_navigation():
        await page.click('button[type="submit"]')
