"""Screen analysis end to end over HTTP (SPEC §14), on both backends: upload, analyse after commit, status."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from app.models import Event
from app.services.screen_analysis_queue import AnalysisQueue
from app.services.screen_analysis_samples import Scene, black_scene, bright_slide_scene
from app.services.screen_analysis_worker import MAX_REST_S, REST_BACKLOG, ScreenAnalysisWorker, start_screen_analysis
from app.services.screenshots import store_screenshot
from app.state import AppState
from tests.conftest import TokenMaker
from tests.helpers import set_client
from tests.mqtt.conftest import eventually

UUID = "lobby-1"
SIZE = (480, 270)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"SCREEN_ANALYSIS_ENABLED": True}


@pytest.fixture
async def device(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("device", client_uuid=UUID)


def scene(seed: int, *, black: bool = False) -> tuple[Scene, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return (black_scene(rng, SIZE) if black else bright_slide_scene(rng, SIZE)), rng


async def upload(http: httpx.AsyncClient, headers: dict[str, str], image: bytes, screenshot_type: str) -> None:
    response = await http.post(
        f"/api/clients/{UUID}/screenshot",
        params={"screenshot_type": screenshot_type},
        content=image,
        headers={**headers, "Content-Type": "image/jpeg"},
    )
    assert response.status_code == 202, response.text


async def client_entry(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await http.get(f"/api/clients/{UUID}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def history(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.get(f"/api/clients/{UUID}/screenshots", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["screenshots"]
    return items


async def wait_analysed(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> list[dict[str, Any]]:
    """Poll until the newest `count` screenshots carry an analysis; the history, newest first."""

    async def done() -> bool:
        items = await history(http, headers)
        return len(items) >= count and all(item["analysis"] is not None for item in items[:count])

    await eventually(done, what=f"{count} screenshots analysed")
    return await history(http, headers)


async def status_events(state: AppState) -> list[dict[str, Any]]:
    """The data of the stored `status` events, oldest first."""
    events = Event.__table__  # type: ignore[attr-defined]
    query = select(events.c.payload).where(events.c.kind == "status").order_by(events.c.id)
    async with state.session_factory() as session:
        return [json.loads(payload) for payload in (await session.execute(query)).scalars()]


class TestDetectedScreenHealth:
    async def test_black_screen_makes_a_display_reporting_ok_critical(
        self,
        backend: str,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        device: dict[str, str],
        state: AppState,
    ) -> None:
        health = {"screen_health_status": "OK", "process_status": "running"}
        response = await client.post(f"/api/clients/{UUID}/health", json=health, headers=device)
        assert response.status_code == 204
        assert (await client_entry(client, superadmin))["status"] == "healthy"
        black, rng = scene(1, black=True)
        await upload(client, device, black.capture(rng), "periodic")

        items = await wait_analysed(client, superadmin, 1)
        assert items[0]["analysis"] == "BLACK"
        entry = await client_entry(client, superadmin)
        assert entry["screen_health_status"] == "OK"
        assert entry["detected_screen_health"] == "BLACK"
        assert entry["detected_screen_health_reason"] == "screen_black"
        assert entry["status"] == "critical"
        overview = (await client.get("/api/client-logs/monitoring-overview", headers=superadmin)).json()
        (row,) = overview["clients"]
        assert (row["screenHealthStatus"], row["detectedScreenHealth"], row["detectedScreenHealthReason"]) == (
            "OK",
            "BLACK",
            "screen_black",
        )
        assert row["status"] == "critical"
        assert overview["summary"]["criticalClients"] == 1
        # The live feed announced it, with the reason.
        announced = [(data["old"], data["new"], data["reasons"]) for data in await status_events(state)]
        assert announced[-1] == ("healthy", "critical", ["screen_black"])

    async def test_event_start_like_the_previous_screenshot_is_frozen_until_the_screen_changes(
        self, backend: str, client: httpx.AsyncClient, superadmin: dict[str, str], device: dict[str, str]
    ) -> None:
        slide, rng = scene(2)
        await upload(client, device, slide.capture(rng), "periodic")
        assert [item["analysis"] for item in await wait_analysed(client, superadmin, 1)] == ["OK"]

        await upload(client, device, slide.capture(rng), "event_start")
        assert [item["analysis"] for item in await wait_analysed(client, superadmin, 2)] == ["FROZEN", "OK"]
        entry = await client_entry(client, superadmin)
        assert (entry["detected_screen_health"], entry["detected_screen_health_reason"]) == ("FROZEN", "screen_frozen")
        assert entry["status"] == "critical"

        other, rng = scene(3)
        await upload(client, device, other.capture(rng), "periodic")
        assert [item["analysis"] for item in await wait_analysed(client, superadmin, 3)] == ["OK", "FROZEN", "OK"]
        entry = await client_entry(client, superadmin)
        assert (entry["detected_screen_health"], entry["detected_screen_health_reason"]) == ("OK", None)
        assert entry["status"] == "healthy"

    async def test_a_static_slide_is_not_frozen(
        self, backend: str, client: httpx.AsyncClient, superadmin: dict[str, str], device: dict[str, str]
    ) -> None:
        slide, rng = scene(4)
        for count in range(1, 5):
            await upload(client, device, slide.capture(rng), "periodic")
            await wait_analysed(client, superadmin, count)
        assert {item["analysis"] for item in await history(client, superadmin)} == {"OK"}
        assert (await client_entry(client, superadmin))["status"] == "healthy"


class TestRestart:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"SCREEN_ANALYSIS_ENABLED": False}

    async def test_start_up_analyses_each_displays_unanalysed_latest_screenshot(
        self,
        backend: str,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        device: dict[str, str],
        state: AppState,
    ) -> None:
        black, rng = scene(5, black=True)
        await upload(client, device, black.capture(rng), "periodic")
        await upload(client, device, black.capture(rng), "periodic")
        assert [item["analysis"] for item in await history(client, superadmin)] == [None, None]

        await start_screen_analysis(state)

        items = await wait_analysed(client, superadmin, 1)
        # The latest is analysed; an older one skipped meanwhile stays unanalysed.
        assert [item["analysis"] for item in items] == ["BLACK", None]
        assert (await client_entry(client, superadmin))["detected_screen_health"] == "BLACK"

    async def test_an_older_verdict_never_replaces_a_newer_one(
        self,
        backend: str,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        device: dict[str, str],
        state: AppState,
    ) -> None:
        black, rng = scene(6, black=True)
        await upload(client, device, black.capture(rng), "periodic")
        await set_client(
            state, UUID, detected_screen_health="OK", detected_screen_health_reason=None, detected_screenshot_id=10**9
        )
        queue = AnalysisQueue(capacity=10, enabled=True)
        worker = ScreenAnalysisWorker(
            settings=state.settings, session_factory=state.session_factory, clock=state.now, queue=queue
        )
        assert await worker.resume() == 1
        assert await worker.analyse_latest(await queue.take()) == "BLACK"
        assert await worker.analyse_latest(UUID) is None  # already analysed
        assert [item["analysis"] for item in await history(client, superadmin)] == ["BLACK"]
        assert (await client_entry(client, superadmin))["detected_screen_health"] == "OK"

    async def test_backlog_depth_in_metrics(self, backend: str, client: httpx.AsyncClient, state: AppState) -> None:
        state.analysis = AnalysisQueue(capacity=10, enabled=True)
        state.analysis.submit_all(["a", "b", "a"])
        body = (await client.get("/metrics")).text
        assert "infoscreen_screen_analysis_backlog 2.0" in body

    async def test_the_worker_rests_between_analyses_while_many_displays_wait(
        self, backend: str, state: AppState
    ) -> None:
        black, rng = scene(7, black=True)
        displays = [f"wall-{number}" for number in range(REST_BACKLOG + 2)]
        for display in displays:
            async with state.session_factory() as session, session.begin():
                await store_screenshot(
                    session,
                    settings=state.settings,
                    client_uuid=display,
                    image=black.capture(rng),
                    screenshot_type="periodic",
                    captured_at=None,
                    now=state.now(),
                )
        rests: list[float] = []

        async def rest(seconds: float) -> None:
            rests.append(seconds)

        queue = AnalysisQueue(capacity=len(displays), enabled=True)
        worker = ScreenAnalysisWorker(
            settings=state.settings, session_factory=state.session_factory, clock=state.now, queue=queue, rest=rest
        )
        assert await worker.resume() == len(displays)
        task = asyncio.create_task(worker.run())
        try:
            await eventually(lambda: worker.analysed == len(displays), what="every display analysed")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A rest after each analysis that left REST_BACKLOG or more displays waiting (the first two),
        # as long as the analysis took; none after the others.
        assert len(rests) == 2
        assert all(0 < seconds <= MAX_REST_S for seconds in rests)
