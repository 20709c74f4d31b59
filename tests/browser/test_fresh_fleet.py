"""A server of this module's own: the empty state first, then the README's picture of a real (small) fleet."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from app.simulate import render_jpeg
from tests.browser.conftest import log_in
from tests.browser.fleet import put_fleet, school_fleet
from tests.live.conftest import LiveServer

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


async def test_no_displays_yet(page: Page, dashboard_server: LiveServer) -> None:
    await log_in(page, dashboard_server)
    notice = page.locator("#notice[data-state=empty]")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("No displays yet")
    await expect(page.locator(".tile")).to_have_count(0)
    await expect(page.locator("[data-summary=totalClients] .value")).to_have_text("0")


async def test_a_populated_dashboard(page: Page, dashboard_server: LiveServer, api: httpx.AsyncClient) -> None:
    """Every status, reasons, groups and one event screenshot; written to docs/ with WRITE_DOCS_SCREENSHOT=1."""
    fleet = school_fleet("demo")
    await put_fleet(api, fleet)
    event = fleet[6]
    shot = render_jpeg([event.hostname, "EVENT: Basketball final", "starts now"], color=(200, 120, 0))
    response = await api.post(
        f"/api/clients/{event.uuid}/screenshot",
        params={"screenshot_type": "event_start"},
        content=shot,
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 202
    await log_in(page, dashboard_server)
    await expect(page.locator(".tile")).to_have_count(len(fleet))
    await expect(page.locator(".tile").first).to_have_attribute("data-client-uuid", event.uuid)
    await expect(page.locator("[data-summary=totalClients] .value")).to_have_text(str(len(fleet)))
    await page.wait_for_load_state("networkidle")
    picture = await page.screenshot(full_page=False)
    assert len(picture) > 10_000
    if os.environ.get("WRITE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.write_bytes(picture)
