"""Every topic and payload form of SPEC §6.1, over a real broker, on both backends."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx

from app.metrics import REGISTRY
from app.state import AppState
from tests.conftest import Clock
from tests.mqtt.conftest import (
    Publisher,
    Service,
    eventually,
    get_client,
    logs_of,
    screenshots_of,
    wait_for_log,
)
from tests.services.test_screenshots import files_in, make_image

UUID = "9f1c2d3e-0000-4000-8000-00000000abcd"
OVERVIEW = "/api/client-logs/monitoring-overview"
CAPTURED = "2026-03-09T20:59:30+00:00"


def counted(kind: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("infoscreen_mqtt_messages_total", {"kind": kind, "outcome": outcome}) or 0.0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def overview_entry(http: httpx.AsyncClient, headers: dict[str, str], client_uuid: str) -> dict[str, object]:
    response = await http.get(OVERVIEW, headers=headers)
    assert response.status_code == 200, response.text
    entries = [entry for entry in response.json()["clients"] if entry["uuid"] == client_uuid]
    assert len(entries) == 1
    return dict(entries[0])


async def wait_for_screenshots(state: AppState, client_uuid: str, count: int) -> None:
    async def stored() -> bool:
        return len(await screenshots_of(state, client_uuid)) >= count

    await eventually(stored, what=f"{count} screenshots of {client_uuid}")


class TestHeartbeat:
    async def test_empty_heartbeat_registers_the_display_alive(
        self, backend: str, state: AppState, clock: Clock, service: Service, publisher: Publisher
    ) -> None:
        await publisher.publish(f"{UUID}/heartbeat")

        async def alive() -> bool:
            client = await get_client(state, UUID)
            return client is not None and client.last_alive == clock()

        await eventually(alive, what="heartbeat stored")
        client = await get_client(state, UUID)
        assert client is not None
        assert client.is_active
        assert client.registration_time == clock()

    async def test_fields_update_only_what_is_sent(
        self, backend: str, state: AppState, clock: Clock, service: Service, publisher: Publisher
    ) -> None:
        first = {"hostname": "lobby", "ip": "10.0.0.12", "model": "rpi4", "current_event_id": 7}
        await publisher.publish(f"{UUID}/heartbeat", json.dumps(first))
        await publisher.publish(f"{UUID}/heartbeat", json.dumps({"process_status": "running", "process_pid": 41}))
        await publisher.publish(f"{UUID}/heartbeat", b"")
        await publisher.publish(f"{UUID}/logs/info", "sentinel")
        await wait_for_log(state, UUID, "sentinel")

        client = await get_client(state, UUID)
        assert client is not None
        assert (client.hostname, client.ip, client.model, client.current_event_id) == ("lobby", "10.0.0.12", "rpi4", 7)
        assert (client.process_status, client.process_pid) == ("running", 41)
        assert client.last_alive == clock()


class TestHealth:
    async def test_health_makes_a_black_screen_critical(
        self,
        backend: str,
        state: AppState,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        service: Service,
        publisher: Publisher,
    ) -> None:
        health = {"process_status": "running", "screen_health_status": "black", "current_process": "chromium"}
        await publisher.publish(f"{UUID}/health", json.dumps(health))
        await publisher.publish(f"{UUID}/logs/debug", "sentinel")
        await wait_for_log(state, UUID, "sentinel")

        entry = await overview_entry(client, superadmin, UUID)
        assert entry["screenHealthStatus"] == "BLACK"
        assert entry["currentProcess"] == "chromium"
        assert entry["isAlive"] is True
        assert entry["status"] == "critical"


class TestLogs:
    async def test_json_and_plain_string_logs_of_every_level(
        self, backend: str, state: AppState, clock: Clock, service: Service, publisher: Publisher
    ) -> None:
        await publisher.publish(
            f"{UUID}/logs/ERROR",
            json.dumps(
                {"message": "player crashed", "context": {"pid": 412}, "timestamp": CAPTURED, "message_id": "m-1"}
            ),
        )
        await publisher.publish(f"{UUID}/logs/warning", json.dumps({"message": "slow network"}))
        await publisher.publish(f"{UUID}/logs/Warn", "disk 90% full")
        await publisher.publish(f"{UUID}/logs/info", "started")
        await publisher.publish(f"{UUID}/logs/debug", "{not json, a plain string")
        await wait_for_log(state, UUID, "{not json, a plain string")

        entries = await logs_of(state, UUID)
        assert [(entry.level, entry.message) for entry in entries] == [
            ("ERROR", "player crashed"),
            ("WARN", "slow network"),
            ("WARN", "disk 90% full"),
            ("INFO", "started"),
            ("DEBUG", "{not json, a plain string"),
        ]
        assert entries[0].timestamp == datetime(2026, 3, 9, 20, 59, 30, tzinfo=UTC)
        assert json.loads(entries[0].context or "null") == {"pid": 412}
        assert entries[0].message_id == "m-1"
        # A log without its own time is stamped at arrival (server clock).
        assert entries[1].timestamp == clock()

    async def test_a_repeated_message_id_is_stored_once(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        for _ in range(3):
            await publisher.publish(f"{UUID}/logs/error", json.dumps({"message": "once", "message_id": "dup-1"}))
        await publisher.publish(f"{UUID}/logs/error", json.dumps({"message": "twice"}))
        await publisher.publish(f"{UUID}/logs/error", json.dumps({"message": "twice"}))
        await publisher.publish(f"{UUID}/logs/info", "sentinel")
        await wait_for_log(state, UUID, "sentinel")

        messages = [entry.message for entry in await logs_of(state, UUID)]
        assert messages.count("once") == 1
        # Logs without a message_id are never merged.
        assert messages.count("twice") == 2

    async def test_logs_do_not_mark_the_display_alive(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        await publisher.publish(f"{UUID}/logs/info", "replayed after an outage")
        await wait_for_log(state, UUID, "replayed after an outage")

        client = await get_client(state, UUID)
        assert client is not None
        assert client.last_alive is None


class TestScreenshots:
    async def test_json_screenshot_with_type_and_capture_time(
        self, backend: str, state: AppState, clock: Clock, service: Service, publisher: Publisher
    ) -> None:
        image = make_image("JPEG")
        payload = {"image": b64(image), "screenshot_type": "event_start", "timestamp": CAPTURED}
        await publisher.publish(f"{UUID}/screenshot", json.dumps(payload))
        await wait_for_screenshots(state, UUID, 1)

        [shot] = await screenshots_of(state, UUID)
        assert (shot.screenshot_type, shot.format, shot.size) == ("event_start", "jpeg", len(image))
        assert shot.captured_at == datetime(2026, 3, 9, 20, 59, 30, tzinfo=UTC)
        assert shot.received_at == clock()
        assert (state.settings.screenshots_dir / shot.filename).read_bytes() == image
        client = await get_client(state, UUID)
        assert client is not None
        assert client.last_priority_screenshot_type == "event_start"
        assert client.last_alive == clock()

    async def test_raw_jpeg_and_png_payloads_are_periodic(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        await publisher.publish(f"{UUID}/screenshot", make_image("JPEG"))
        await publisher.publish(f"{UUID}/screenshot", make_image("PNG"))
        await wait_for_screenshots(state, UUID, 2)

        shots = await screenshots_of(state, UUID)
        assert [(shot.screenshot_type, shot.format) for shot in shots] == [("periodic", "jpeg"), ("periodic", "png")]

    async def test_missing_type_is_periodic_and_an_unknown_type_is_stored_as_periodic_and_counted(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        before = counted("screenshot", "stored_unknown_type_as_periodic")
        await publisher.publish(f"{UUID}/screenshot", json.dumps({"image": b64(make_image("PNG"))}))
        await publisher.publish(
            f"{UUID}/screenshot", json.dumps({"image": b64(make_image("JPEG")), "screenshot_type": "sunset"})
        )
        await wait_for_screenshots(state, UUID, 2)

        assert [shot.screenshot_type for shot in await screenshots_of(state, UUID)] == ["periodic", "periodic"]
        assert counted("screenshot", "stored_unknown_type_as_periodic") == before + 1


class TestDashboard:
    async def test_dashboard_stores_the_screenshot_and_the_health(
        self,
        backend: str,
        state: AppState,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        service: Service,
        publisher: Publisher,
    ) -> None:
        image = make_image("PNG", color=(1, 2, 3))
        payload = {
            "screenshot": {"data": b64(image), "screenshot_type": "event_stop", "timestamp": CAPTURED},
            "health": {"process_status": "crashed", "screen_health_status": "FROZEN"},
        }
        await publisher.publish(f"{UUID}/dashboard", json.dumps(payload))
        await wait_for_screenshots(state, UUID, 1)

        [shot] = await screenshots_of(state, UUID)
        assert (shot.screenshot_type, shot.size) == ("event_stop", len(image))
        entry = await overview_entry(client, superadmin, UUID)
        assert (entry["processStatus"], entry["screenHealthStatus"], entry["status"]) == (
            "crashed",
            "FROZEN",
            "critical",
        )
        assert entry["priorityScreenshotType"] == "event_stop"
        assert entry["hasActivePriorityScreenshot"] is True
        served = await client.get(f"/screenshots/{UUID}/priority", headers=superadmin)
        assert served.status_code == 200
        assert served.content == image

    async def test_screenshot_type_may_stand_at_the_top_level(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        payload = {"screenshot": {"data": b64(make_image("JPEG"))}, "screenshot_type": "event_start"}
        await publisher.publish(f"{UUID}/dashboard", json.dumps(payload))
        await wait_for_screenshots(state, UUID, 1)

        [shot] = await screenshots_of(state, UUID)
        assert shot.screenshot_type == "event_start"
        assert len(files_in(state.settings.screenshots_dir)) == 1


class TestStatus:
    async def test_offline_makes_the_display_offline_until_its_next_heartbeat(
        self,
        backend: str,
        state: AppState,
        clock: Clock,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        service: Service,
        publisher: Publisher,
    ) -> None:
        await publisher.publish(f"{UUID}/heartbeat")
        await publisher.publish(f"{UUID}/status", "online")
        await publisher.publish(f"{UUID}/logs/info", "one")
        await wait_for_log(state, UUID, "one")
        assert (await overview_entry(client, superadmin, UUID))["isAlive"] is True

        clock.advance(5)
        await publisher.publish(f"{UUID}/status", "offline")
        await publisher.publish(f"{UUID}/logs/info", "two")
        await wait_for_log(state, UUID, "two")
        entry = await overview_entry(client, superadmin, UUID)
        assert (entry["isAlive"], entry["status"]) == (False, "offline")

        clock.advance(5)
        await publisher.publish(f"{UUID}/heartbeat")
        await publisher.publish(f"{UUID}/logs/info", "three")
        await wait_for_log(state, UUID, "three")
        entry = await overview_entry(client, superadmin, UUID)
        assert (entry["isAlive"], entry["status"]) == (True, "healthy")

    async def test_online_registers_the_display_but_is_no_heartbeat(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        await publisher.publish(f"{UUID}/status", "online")
        await eventually(lambda: _exists(state, UUID), what="display registered")

        client = await get_client(state, UUID)
        assert client is not None
        assert client.last_alive is None


async def _exists(state: AppState, client_uuid: str) -> bool:
    return await get_client(state, client_uuid) is not None
