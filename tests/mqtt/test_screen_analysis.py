"""Screen analysis over a real broker (SPEC §14): displays publish, the service sees black and frozen screens."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest

from app.services.screen_analysis_samples import black_scene, bright_slide_scene
from app.state import AppState
from tests.mqtt.conftest import Publisher, ServiceFactory, eventually, get_client, screenshots_of

UUID = "7c0ffee0-0000-4000-8000-00000000cafe"
OVERVIEW = "/api/client-logs/monitoring-overview"
SIZE = (480, 270)


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "SCREEN_ANALYSIS_ENABLED": True}


@pytest.fixture
async def analysing(state: AppState, service_factory: ServiceFactory) -> None:
    """The ingestion service, feeding the app's screen analysis after each commit."""
    await service_factory(analysis=state.analysis)


async def publish_screenshot(publisher: Publisher, image: bytes, screenshot_type: str) -> None:
    payload = {"image": base64.b64encode(image).decode(), "screenshot_type": screenshot_type}
    await publisher.publish(f"{UUID}/screenshot", json.dumps(payload))


async def analyses(state: AppState, count: int) -> list[str | None]:
    """Wait until `count` screenshots are stored and the latest is analysed; their analyses, oldest first.

    Screenshots that arrive in one batch are analysed as one: only the latest (the newest wins).
    """

    async def done() -> bool:
        shots = await screenshots_of(state, UUID)
        return len(shots) >= count and shots[-1].analysis is not None

    await eventually(done, what=f"{count} screenshots of {UUID} analysed")
    return [shot.analysis for shot in await screenshots_of(state, UUID)]


async def overview_entry(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await http.get(OVERVIEW, headers=headers)
    assert response.status_code == 200, response.text
    (entry,) = [row for row in response.json()["clients"] if row["uuid"] == UUID]
    return dict(entry)


@pytest.mark.usefixtures("analysing")
class TestScreenAnalysisOverMqtt:
    async def test_black_frames_make_a_display_reporting_ok_critical(
        self,
        backend: str,
        state: AppState,
        publisher: Publisher,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
    ) -> None:
        health = {"screen_health_status": "OK", "process_status": "running"}
        await publisher.publish(f"{UUID}/health", json.dumps(health))
        rng = np.random.default_rng(11)
        black = black_scene(rng, SIZE)
        for _ in range(3):
            await publish_screenshot(publisher, black.capture(rng), "periodic")

        found = await analyses(state, 3)
        assert found[-1] == "BLACK"
        assert set(found) <= {"BLACK", None}

        async def critical() -> bool:
            return (await overview_entry(client, superadmin))["detectedScreenHealth"] == "BLACK"

        await eventually(critical, what="detected BLACK in the overview")
        entry = await overview_entry(client, superadmin)
        assert entry["screenHealthStatus"] == "OK"
        assert entry["detectedScreenHealthReason"] == "screen_black"
        assert entry["status"] == "critical"
        stored = await get_client(state, UUID)
        assert stored is not None
        assert stored.screen_health_status == "OK"

    async def test_event_start_like_the_screen_before_is_frozen_then_recovers(
        self,
        backend: str,
        state: AppState,
        publisher: Publisher,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
    ) -> None:
        rng = np.random.default_rng(12)
        slide, other = bright_slide_scene(rng, SIZE), bright_slide_scene(rng, SIZE)
        await publisher.publish(f"{UUID}/heartbeat", json.dumps({"current_event_id": 1}))
        await publish_screenshot(publisher, slide.capture(rng), "periodic")
        assert await analyses(state, 1) == ["OK"]

        await publisher.publish(f"{UUID}/heartbeat", json.dumps({"current_event_id": 2}))
        await publish_screenshot(publisher, slide.capture(rng), "event_start")
        assert await analyses(state, 2) == ["OK", "FROZEN"]
        entry = await overview_entry(client, superadmin)
        assert (entry["detectedScreenHealth"], entry["detectedScreenHealthReason"], entry["status"]) == (
            "FROZEN",
            "screen_frozen",
            "critical",
        )
        shots = await screenshots_of(state, UUID)
        assert [shot.event_id for shot in shots] == [1, 2]

        await publish_screenshot(publisher, other.capture(rng), "periodic")
        assert await analyses(state, 3) == ["OK", "FROZEN", "OK"]
        entry = await overview_entry(client, superadmin)
        assert (entry["detectedScreenHealth"], entry["detectedScreenHealthReason"], entry["status"]) == (
            "OK",
            None,
            "healthy",
        )
