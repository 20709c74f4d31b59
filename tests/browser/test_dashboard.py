"""The operator dashboard in chromium against the real server (SPEC §11)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import pytest
from playwright.async_api import Page, expect

from app.simulate import render_jpeg
from tests.browser.conftest import PRIORITY_TTL_SECONDS, log_in
from tests.browser.fleet import put_fleet, school_fleet
from tests.live.conftest import LiveServer
from tests.mqtt.conftest import Broker


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def tile(page: Page, client_uuid: str) -> str:
    return f'.tile[data-client-uuid="{client_uuid}"]'


class TestSession:
    async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(
        self, page: Page, dashboard_server: LiveServer
    ) -> None:
        await page.goto(f"{dashboard_server.url}/dashboard")
        assert page.url == f"{dashboard_server.url}/login"
        await log_in(page, dashboard_server)
        assert page.url == f"{dashboard_server.url}/dashboard"
        [cookie] = await page.context.cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/"
        assert cookie["secure"] is False  # plain http on 127.0.0.1
        assert await page.evaluate("document.cookie") == ""  # out of the scripts' reach
        await expect(page.locator("body[data-loaded=true]")).to_be_attached()
        async with page.expect_navigation():
            await page.click("form.logout button")
        assert page.url == f"{dashboard_server.url}/login"
        assert await page.context.cookies() == []
        await page.goto(f"{dashboard_server.url}/dashboard")
        assert page.url == f"{dashboard_server.url}/login"

    async def test_bad_token_shows_the_form_again(self, page: Page, dashboard_server: LiveServer) -> None:
        await page.goto(f"{dashboard_server.url}/login")
        await page.fill('input[name="token"]', "not-a-token")
        async with page.expect_response(f"{dashboard_server.url}/login") as answer:
            await page.click('button[type="submit"]')
        assert (await answer.value).status == 401
        await expect(page.get_by_role("alert")).to_contain_text("not valid")
        assert "token" not in page.url.split("?", 1)[-1] or "?" not in page.url
        assert await page.context.cookies() == []

    async def test_lower_role_sees_a_page_saying_so(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        created = await api.post("/api/tokens", json={"name": unique("viewer"), "role": "admin"})
        await page.goto(f"{dashboard_server.url}/login")
        await page.fill('input[name="token"]', created.json()["token"])
        async with page.expect_response(f"{dashboard_server.url}/dashboard") as answer:
            await page.click('button[type="submit"]')
        assert (await answer.value).status == 403
        await expect(page.locator("[data-page=forbidden]")).to_contain_text("superadmin")
        await expect(page.locator("[data-page=forbidden]")).to_contain_text("admin")


class TestFleet:
    async def test_tiles_show_status_reason_group_and_counts(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        fleet = school_fleet(unique("tiles"))
        await put_fleet(api, fleet)
        await log_in(page, dashboard_server)
        for display in fleet:
            await expect(page.locator(tile(page, display.uuid))).to_have_attribute(
                "data-status", display.expected_status
            )
        crashed = page.locator(tile(page, fleet[2].uuid))
        await expect(crashed.locator(".status-word")).to_have_text("Critical")
        await expect(crashed.locator(".reasons")).to_contain_text("player crashed")
        await expect(crashed.locator(".reasons")).to_contain_text("errors in 24 h")
        await expect(crashed.locator(".name")).to_have_text("Reception desk")
        await expect(crashed.locator(".group")).to_have_text("Lobby")
        await expect(crashed.locator("[data-screenshot-type]")).to_have_attribute("data-screenshot-type", "periodic")
        await expect(page.locator(tile(page, fleet[5].uuid)).locator(".reasons")).to_contain_text("screen black")
        await expect(page.locator(tile(page, fleet[8].uuid)).locator(".reasons")).to_contain_text("retired")
        summary = (await api.get("/api/client-logs/monitoring-overview")).json()["summary"]
        for key in (
            "totalClients",
            "onlineClients",
            "offlineClients",
            "criticalClients",
            "warningClients",
            "healthyClients",
            "errorLogs",
            "warnLogs",
        ):
            await expect(page.locator(f"[data-summary={key}] .value")).to_have_text(str(summary[key]))

    async def test_filters_by_status_group_and_text(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        prefix = unique("filters")
        fleet = school_fleet(prefix)
        await put_fleet(api, fleet)
        await log_in(page, dashboard_server)
        visible = page.locator(".tile:visible")
        await page.fill("#filter-text", prefix)
        await expect(visible).to_have_count(len(fleet))
        await page.select_option("#filter-status", "critical")
        await expect(visible).to_have_count(2)
        await page.select_option("#filter-status", "")
        await page.select_option("#filter-group", "Library")
        await expect(visible).to_have_count(3)
        await page.fill("#filter-text", f"{prefix} study")
        await expect(visible).to_have_count(1)
        await expect(visible.first).to_have_attribute("data-client-uuid", fleet[4].uuid)
        await page.fill("#filter-text", f"{prefix} nothing-like-this")
        await expect(page.locator("#notice[data-state=filtered]")).to_be_visible()

    async def test_empty_filter_result_and_keyboard_opens_the_drawer(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        fleet = school_fleet(unique("keys"))
        await put_fleet(api, fleet)
        await log_in(page, dashboard_server)
        await page.fill("#filter-text", fleet[0].uuid)
        await page.locator(tile(page, fleet[0].uuid)).focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#drawer")).to_be_visible()
        await expect(page.locator("#drawer-title")).to_have_text(fleet[0].description)
        await page.keyboard.press("Escape")
        await expect(page.locator("#drawer")).to_be_hidden()


async def until(
    check: Callable[[], Awaitable[dict[str, Any] | None]], what: str, seconds: float = 30.0
) -> dict[str, Any]:
    """Poll an async check (returning a JSON answer or None) until it answers, with a deadline."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = await check()
        if answer is not None:
            return answer
        await asyncio.sleep(0.2)
    raise AssertionError(f"never: {what}")


class TestDrawer:
    async def test_uptime_status_history_and_incidents_of_the_display(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        prefix = unique("incident")
        fleet = school_fleet(prefix)
        crashing, calm = fleet[0], fleet[1]  # both healthy when put in
        await put_fleet(api, [crashing, calm])
        base = f"/api/clients/{crashing.uuid}"

        async def tracked() -> dict[str, Any] | None:
            client = (await api.get(base)).json()
            return client if client["uptime_24h"] is not None else None

        await until(tracked, "the evaluator saw the display")
        crashed = await api.post(f"{base}/health", json={"process_status": "crashed"})
        assert crashed.status_code == 204

        async def incident() -> dict[str, Any] | None:
            listed = (await api.get("/api/incidents", params={"client_uuid": crashing.uuid})).json()
            return listed["incidents"][0] if listed["incidents"] else None

        opened = await until(incident, "an incident opened")
        on_call = await api.post("/api/tokens", json={"name": unique("on-call"), "role": "admin"})
        acked = await api.post(
            f"/api/incidents/{opened['id']}/ack", headers={"Authorization": f"Bearer {on_call.json()['token']}"}
        )
        assert acked.status_code == 200, acked.text

        await log_in(page, dashboard_server)
        await page.click(tile(page, crashing.uuid))
        uptime = page.locator('[data-section="uptime"][data-state="loaded"]')
        for window in ("24h", "7d", "30d"):
            await expect(uptime.locator(f'[data-window="{window}"] dd')).to_have_text(re.compile(r"^\d+\.\d %$"))
        # Never offline since first seen.
        await expect(uptime.locator('[data-window="24h"] dd')).to_have_text("100.0 %")
        change = page.locator('[data-section="status-history"] li[data-transition]')
        await expect(change).to_have_count(1)
        await expect(change).to_have_attribute("data-from", "healthy")
        await expect(change).to_have_attribute("data-to", "critical")
        await expect(change).to_contain_text("Healthy → ✖ Critical")
        await expect(change).to_contain_text("player crashed")
        listed = page.locator(f'[data-section="incidents"] li[data-incident-id="{opened["id"]}"]')
        await expect(listed).to_have_attribute("data-open", "true")
        await expect(listed).to_have_attribute("data-acknowledged", "true")
        await expect(listed).to_contain_text("OPEN")
        await expect(listed).to_contain_text(f"acknowledged by {acked.json()['acknowledged_by']}")
        await expect(page.locator('[data-section="incidents"] li[data-incident-id]')).to_have_count(1)

        # Another display: the sections' empty states, not the first display's data.
        await page.keyboard.press("Escape")
        await page.click(tile(page, calm.uuid))
        await expect(page.locator('[data-section="status-history"] [data-state="empty"]')).to_have_text(
            "No transitions recorded yet."
        )
        await expect(page.locator('[data-section="incidents"] [data-state="empty"]')).to_have_text("No incidents.")

    async def test_logs_page_back_by_cursor_and_filter_by_level(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        display = unique("logs")
        assert (await api.post(f"/api/clients/{display}/heartbeat", json={"hostname": display})).status_code == 204
        start = datetime.now(UTC) - timedelta(minutes=10)
        logs = [
            {
                "level": "ERROR" if number % 10 == 0 else "INFO",
                "message": f"line {number:03d}",
                "timestamp": (start + timedelta(seconds=number)).isoformat(),
            }
            for number in range(120)
        ]
        assert (await api.post(f"/api/clients/{display}/logs", json=logs)).status_code == 202
        await log_in(page, dashboard_server)
        await page.click(tile(page, display))
        logs_section = page.locator('[data-section="logs"]')
        await expect(logs_section).to_have_attribute("data-page", "1")
        rows = logs_section.locator("tbody tr")
        await expect(rows).to_have_count(50)
        await expect(rows.first).to_contain_text("line 119")
        await logs_section.locator('[data-action="logs-older"]').click()
        await expect(logs_section).to_have_attribute("data-page", "2")
        await expect(rows.first).to_contain_text("line 069")
        await logs_section.locator('[data-action="logs-older"]').click()
        await expect(logs_section).to_have_attribute("data-page", "3")
        await expect(rows).to_have_count(20)
        await expect(logs_section.locator('[data-action="logs-older"]')).to_be_disabled()
        await logs_section.locator("#log-level").select_option("ERROR")
        await expect(logs_section).to_have_attribute("data-page", "1")
        await expect(rows).to_have_count(12)
        assert set(await logs_section.locator("td.level").all_inner_texts()) == {"ERROR"}
        errors = page.locator('[data-section="errors"] [data-count=error]')
        await expect(errors).to_have_text("12 errors")

    async def test_history_badges_and_the_priority_image_or_its_fallback(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        display = unique("history")
        base = f"/api/clients/{display}"
        for kind in ("periodic", "periodic"):
            shot = render_jpeg([display, kind], color=(30, 60, 120))
            response = await api.post(
                f"{base}/screenshot",
                params={"screenshot_type": kind},
                content=shot,
                headers={"Content-Type": "image/jpeg"},
            )
            assert response.status_code == 202
        await log_in(page, dashboard_server)
        await page.click(tile(page, display))
        caption = page.locator('[data-section="image"] .caption')
        await expect(caption).to_have_attribute("data-shown", "fallback")
        await expect(caption).to_contain_text("latest screenshot instead")
        badges = page.locator('[data-section="history"] [data-screenshot-type]')
        await expect(badges).to_have_count(2)
        shot = render_jpeg([display, "event"], color=(160, 60, 20))
        response = await api.post(
            f"{base}/screenshot",
            params={"screenshot_type": "event_start"},
            content=shot,
            headers={"Content-Type": "image/jpeg"},
        )
        assert response.status_code == 202
        await page.reload()
        await page.click(tile(page, display))
        await expect(caption).to_have_attribute("data-shown", "priority")
        await expect(caption).to_contain_text("event start")
        await expect(badges.first).to_have_attribute("data-screenshot-type", "event_start")


class TestPriority:
    async def test_event_start_over_mqtt_comes_first_highlighted_then_falls_back(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient, mqtt_broker: Broker, topic_prefix: str
    ) -> None:
        fleet = school_fleet(unique("prio"))
        await put_fleet(api, fleet)
        display = fleet[-1].uuid  # last in the overview's order (ungrouped)
        await log_in(page, dashboard_server)
        await expect(page.locator(tile(page, display))).to_have_attribute("data-priority", "inactive")
        image = base64.b64encode(render_jpeg([display, "EVENT 4711"], color=(200, 120, 0))).decode()
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as display_link:
            payload = json.dumps({"image": image, "screenshot_type": "event_start"})
            await display_link.publish(f"{topic_prefix}/{display}/screenshot", payload, qos=1)
        deadline = time.monotonic() + 10
        while not (await api.get(f"/api/clients/{display}")).json().get("last_priority_screenshot_type"):
            assert time.monotonic() < deadline, "the event_start screenshot was never stored"
            await asyncio.sleep(0.05)
        await page.reload()
        first = page.locator(".tile").first
        await expect(first).to_have_attribute("data-client-uuid", display)
        await expect(first).to_have_attribute("data-priority", "active")
        await expect(first.locator("[data-screenshot-type]")).to_have_attribute("data-screenshot-type", "event_start")
        await expect(first.locator(".priority-left")).to_have_text(re.compile(r"\d+ s left"))
        await expect(page.locator("[data-summary=activePriorityScreenshots] .value")).not_to_have_text("0")
        # No reload: the page's own clock ends the TTL and the tile goes back to its place.
        await expect(page.locator(tile(page, display))).to_have_attribute(
            "data-priority", "inactive", timeout=(PRIORITY_TTL_SECONDS + 5) * 1000
        )
        await expect(page.locator(".tile").first).not_to_have_attribute("data-client-uuid", display)
        await expect(page.locator(tile(page, display)).locator(".priority-left")).to_have_text("")


class TestOffline:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_api_docs_render_with_no_request_leaving_the_machine(
        self, page: Page, dashboard_server: LiveServer, path: str
    ) -> None:
        outside: list[str] = []

        async def only_local(route: object) -> None:
            request = route.request  # type: ignore[attr-defined]
            if request.url.startswith(dashboard_server.url) or request.url.startswith(("data:", "blob:")):
                await route.continue_()  # type: ignore[attr-defined]
            else:
                outside.append(request.url)
                await route.abort()  # type: ignore[attr-defined]

        await page.route("**/*", only_local)
        await page.goto(f"{dashboard_server.url}{path}")
        if path == "/docs":
            await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Infoscreen Monitor")
            await expect(page.locator(".opblock").first).to_be_visible()
        else:
            await expect(page.locator("h1").first).to_contain_text("Infoscreen Monitor")
            await expect(page.get_by_text("monitoring overview", exact=False).first).to_be_attached()
        await page.wait_for_load_state("networkidle")
        assert outside == []


class TestStreamDown:
    async def test_polls_the_overview_every_5_s_while_a_priority_screenshot_is_active(
        self, page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient
    ) -> None:
        fleet = school_fleet(unique("polling"))
        await put_fleet(api, fleet)
        overview_requests: list[float] = []
        page.on(
            "request",
            lambda request: (
                overview_requests.append(time.monotonic()) if "monitoring-overview" in request.url else None
            ),
        )
        await page.route("**/api/events*", lambda route: route.abort())
        shot = render_jpeg([fleet[0].uuid, "EVENT"], color=(200, 120, 0))
        response = await api.post(
            f"/api/clients/{fleet[0].uuid}/screenshot",
            params={"screenshot_type": "event_start"},
            content=shot,
            headers={"Content-Type": "image/jpeg"},
        )
        assert response.status_code == 202
        await log_in(page, dashboard_server)
        connection = page.locator("#connection")
        await expect(connection).to_have_attribute("data-connection", "lost")
        await expect(connection).to_contain_text("Stream lost, retrying")
        await expect(page.locator(tile(page, fleet[0].uuid))).to_have_attribute("data-priority", "active")
        # A change the page can only learn from the next poll.
        assert (
            await api.post(f"/api/clients/{fleet[1].uuid}/health", json={"process_status": "crashed"})
        ).status_code == 204
        await expect(page.locator(tile(page, fleet[1].uuid))).to_have_attribute("data-status", "critical", timeout=8000)
        assert len(overview_requests) >= 2
        assert 4.0 <= overview_requests[1] - overview_requests[0] <= 7.0, overview_requests
