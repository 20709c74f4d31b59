"""Live updates in the browser: the event stream patches the open page, and comes back after a restart."""

from __future__ import annotations

import base64
import json
import time
import uuid

import aiomqtt
import httpx
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from playwright.async_api import Page, expect

from app.simulate import render_jpeg
from tests.browser.conftest import log_in, wait_for_mqtt
from tests.browser.fleet import put_fleet, school_fleet
from tests.live.conftest import LiveServer
from tests.mqtt.conftest import Broker

# SPEC §11: a change shows on an open dashboard within 2 seconds.
WITHIN_MS = 2000


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def tile(client_uuid: str) -> str:
    return f'.tile[data-client-uuid="{client_uuid}"]'


async def open_live_dashboard(page: Page, server: LiveServer) -> None:
    await log_in(page, server)
    await expect(page.locator("body[data-loaded=true]")).to_be_attached()
    await expect(page.locator("#connection")).to_have_attribute("data-connection", "live")


async def publish_event_start(broker: Broker, prefix: str, display: str) -> None:
    image = base64.b64encode(render_jpeg([display, "EVENT"], color=(200, 120, 0))).decode()
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as link:
        await link.publish(
            f"{prefix}/{display}/screenshot", json.dumps({"image": image, "screenshot_type": "event_start"}), qos=1
        )


class TestStream:
    async def test_event_start_over_mqtt_shows_first_within_two_seconds(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient, mqtt_broker: Broker, topic_prefix: str
    ) -> None:
        fleet = school_fleet(unique("stream"))
        await put_fleet(api, fleet)
        display = fleet[-1].uuid
        await open_live_dashboard(page, dashboard_server)
        await expect(page.locator(tile(display))).to_have_attribute("data-priority", "inactive")
        started = time.monotonic()
        await publish_event_start(mqtt_broker, topic_prefix, display)
        first = page.locator(".tile").first
        await expect(first).to_have_attribute("data-client-uuid", display, timeout=WITHIN_MS)
        await expect(first).to_have_attribute("data-priority", "active", timeout=WITHIN_MS)
        await expect(first.locator("[data-screenshot-type]")).to_have_attribute(
            "data-screenshot-type", "event_start", timeout=WITHIN_MS
        )
        assert time.monotonic() - started < 2 + 1  # the publish's own round trip included

    async def test_last_will_turns_the_tile_offline_without_a_reload(
        self, page: Page, dashboard_server: LiveServer, mqtt_broker: Broker, topic_prefix: str
    ) -> None:
        display = unique("will")
        link = aiomqtt.Client(
            "127.0.0.1",
            mqtt_broker.port,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(f"{topic_prefix}/{display}/status", b"offline", qos=1),
        )
        async with link:
            await link.publish(f"{topic_prefix}/{display}/heartbeat", json.dumps({"hostname": display}), qos=1)
            await open_live_dashboard(page, dashboard_server)
            await expect(page.locator(tile(display))).to_have_attribute("data-status", "healthy")
            # A disconnect "with will message" (MQTT v5 reason 4): the broker publishes the display's will.
            link._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))  # noqa: SLF001
            await expect(page.locator(tile(display))).to_have_attribute("data-status", "offline", timeout=WITHIN_MS)
            await expect(page.locator(tile(display)).locator(".reasons")).to_contain_text("last will")


class TestRestart:
    async def test_the_stream_resumes_after_the_server_restarts(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient, mqtt_broker: Broker, topic_prefix: str
    ) -> None:
        fleet = school_fleet(unique("restart"))
        await put_fleet(api, fleet)
        await open_live_dashboard(page, dashboard_server)
        dashboard_server.stop()
        await expect(page.locator("#connection")).to_have_attribute("data-connection", "lost", timeout=10_000)
        await expect(page.locator("#connection")).to_contain_text("retrying")
        dashboard_server.start()
        wait_for_mqtt(dashboard_server)
        await expect(page.locator("#connection")).to_have_attribute("data-connection", "live", timeout=15_000)
        display = fleet[-1].uuid
        await publish_event_start(mqtt_broker, topic_prefix, display)
        await expect(page.locator(".tile").first).to_have_attribute("data-client-uuid", display, timeout=WITHIN_MS)
