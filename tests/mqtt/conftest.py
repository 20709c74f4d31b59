"""A real Mosquitto per test, publishers, and the ingestion service on the test app's database.

The broker is `/usr/sbin/mosquitto` (override with MOSQUITTO_BIN) on a free port, with its own
config and persistence directory in `tmp_path`, so a restart keeps what it queued. The service is
the production `MqttIngest` with a short reconnect backoff; each test has its own topic prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.models import Client, ClientLog, Screenshot
from app.services.mqtt import FaultHook, MqttIngest
from app.state import AppState, MqttState
from tests.conftest import require_service

MOSQUITTO = os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DEADLINE_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Broker:
    """One mosquitto process; `restart()` keeps the port and the persistence file."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.config = directory / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"{user}"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 10000\n"
            f"log_dest file {directory}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )

    def start(self) -> None:
        assert self.process is None
        with (self.directory / "mosquitto.stderr").open("ab") as output:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.directory / 'mosquitto.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not listen in time")

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file on the way out."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not Path(MOSQUITTO).exists():
        require_service(f"mosquitto is not installed ({MOSQUITTO})")
    directory = tmp_path / "broker"
    directory.mkdir()
    running = Broker(directory, free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings_overrides(broker: Broker, prefix: str) -> dict[str, Any]:
    """The app's own MQTT task stays off: tests start `MqttIngest` services explicitly."""
    return {
        "MQTT_ENABLED": False,
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": broker.port,
        "MQTT_TOPIC_PREFIX": prefix,
        "MQTT_CLIENT_ID": f"monitor-{prefix}",
    }


class Service:
    """One ingestion service instance (its own task and connection state) on the app's database."""

    def __init__(self, state: AppState, **options: Any) -> None:
        overrides = options.pop("settings", {})
        self.mqtt_state = MqttState(enabled=True)
        self.ingest = MqttIngest(
            settings=state.settings.model_copy(update=overrides),
            session_factory=state.session_factory,
            clock=state.now,
            mqtt_state=self.mqtt_state,
            backoff_initial=options.pop("backoff_initial", 0.05),
            backoff_max=options.pop("backoff_max", 0.2),
            **options,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self, *, wait_connected: bool = True) -> Service:
        self.task = asyncio.create_task(self.ingest.run())
        if wait_connected:
            await eventually(lambda: self.mqtt_state.connected, what="service connected")
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        assert not self.mqtt_state.connected


ServiceFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def service_factory(state: AppState) -> AsyncIterator[ServiceFactory]:
    """Start services: `await service_factory(fault_hook=..., settings={...}, wait_connected=...)`."""
    started: list[Service] = []

    async def start(*, wait_connected: bool = True, fault_hook: FaultHook | None = None, **options: Any) -> Service:
        service = Service(state, fault_hook=fault_hook, **options)
        started.append(service)
        return await service.start(wait_connected=wait_connected)

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
async def service(service_factory: ServiceFactory) -> Service:
    return await service_factory()


class Publisher:
    """A display-side MQTT v5 client publishing QoS 1 under the test prefix (publish returns on PUBACK)."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.broker = broker
        self.prefix = prefix
        self.client: aiomqtt.Client | None = None

    async def connect(self) -> None:
        self.client = aiomqtt.Client(
            "127.0.0.1",
            self.broker.port,
            identifier=f"display-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=10,
        )
        await self.client.__aenter__()

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self.client.__aexit__(None, None, None)
            self.client = None

    async def publish(self, suffix: str, payload: bytes | str = b"", *, qos: int = 1) -> None:
        """Publish to `{prefix}/{suffix}`, or to an absolute topic when `suffix` starts with `/`."""
        assert self.client is not None
        topic = suffix[1:] if suffix.startswith("/") else f"{self.prefix}/{suffix}"
        await self.client.publish(topic, payload, qos=qos)


@pytest.fixture
async def publisher(broker: Broker, prefix: str) -> AsyncIterator[Publisher]:
    display = Publisher(broker, prefix)
    await display.connect()
    yield display
    await display.close()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], *, what: str, within: float = DEADLINE_SECONDS
) -> None:
    """Poll until `condition` holds, or fail after `within` seconds (never a fixed sleep)."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


async def count_logs(state: AppState, **filters: Any) -> int:
    async with state.session_factory() as session:
        query = select(func.count()).select_from(ClientLog)
        for name, value in filters.items():
            query = query.where(col(getattr(ClientLog, name)) == value)
        return int((await session.execute(query)).scalar_one())


async def message_ids(state: AppState) -> list[str]:
    async with state.session_factory() as session:
        rows = await session.execute(select(col(ClientLog.message_id)))
        return [str(value) for value in rows.scalars().all()]


async def get_client(state: AppState, client_uuid: str) -> Client | None:
    async with state.session_factory() as session:
        return await session.get(Client, client_uuid)


async def screenshots_of(state: AppState, client_uuid: str) -> list[Screenshot]:
    async with state.session_factory() as session:
        rows = await session.execute(
            select(Screenshot).where(col(Screenshot.client_uuid) == client_uuid).order_by(col(Screenshot.id))
        )
        return list(rows.scalars().all())


async def logs_of(state: AppState, client_uuid: str) -> list[ClientLog]:
    async with state.session_factory() as session:
        rows = await session.execute(
            select(ClientLog).where(col(ClientLog.client_uuid) == client_uuid).order_by(col(ClientLog.id))
        )
        return list(rows.scalars().all())


async def wait_for_log(state: AppState, client_uuid: str, message: str) -> None:
    """A sentinel: once it is stored, everything published before it on the same connection was handled."""

    async def stored() -> bool:
        return any(entry.message == message for entry in await logs_of(state, client_uuid))

    await eventually(stored, what=f"log {message!r} of {client_uuid} stored")
