"""The lifespan-managed task: start-up never waits for the broker, `/readyz` tells the truth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.state import AppState
from tests.conftest import Clock
from tests.mqtt.conftest import Broker, Publisher, eventually, wait_for_log


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "MQTT_ENABLED": True}


async def readiness(http: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    response = await http.get("/readyz")
    return response.status_code, response.json()


class TestLifespanTask:
    async def test_readyz_follows_the_broker_and_http_keeps_serving(
        self, backend: str, client: httpx.AsyncClient, state: AppState, broker: Broker, publisher: Publisher
    ) -> None:
        async def mqtt_is(expected: str) -> bool:
            status, body = await readiness(client)
            assert (status, body["database"]) == (200, "ok")
            return body["mqtt"] == expected

        await eventually(lambda: mqtt_is("connected"), what="readyz: connected")
        await publisher.publish("display-1/logs/info", "through the lifespan task")
        await wait_for_log(state, "display-1", "through the lifespan task")

        await publisher.close()
        broker.stop()
        await eventually(lambda: mqtt_is("disconnected"), what="readyz: disconnected")
        assert (await client.get("/healthz")).status_code == 200

        broker.start()
        await eventually(lambda: mqtt_is("connected"), what="readyz: connected again")

    async def test_a_broker_that_is_down_never_blocks_start_up(
        self, backend: str, settings: Settings, clock: Clock, broker: Broker
    ) -> None:
        broker.stop()
        application = create_app(settings, clock=clock)
        async with application.router.lifespan_context(application):
            state: AppState = application.state.monitor
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                assert await readiness(http) == (200, {"database": "ok", "mqtt": "disconnected"})
            [task] = [task for task in state.tasks if task.get_name() == "mqtt-ingest"]
            assert not task.done()
        # Shutdown cancels the task and waits for it.
        assert task.cancelled()

    async def test_mqtt_disabled_reports_disabled(self, backend: str, settings: Settings, clock: Clock) -> None:
        application = create_app(settings.model_copy(update={"MQTT_ENABLED": False}), clock=clock)
        async with application.router.lifespan_context(application):
            state: AppState = application.state.monitor
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                assert await readiness(http) == (200, {"database": "ok", "mqtt": "disabled"})
            assert not [task for task in state.tasks if task.get_name() == "mqtt-ingest"]
