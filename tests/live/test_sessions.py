"""The dashboard's session cookie over a real socket: its flags as sent, and what it opens (SPEC §11)."""

from __future__ import annotations

import httpx

from app.services.sessions import SESSION_COOKIE
from tests.conftest import SUPERADMIN_SECRET
from tests.live.conftest import LiveServer

OVERVIEW = "/api/client-logs/monitoring-overview"


async def test_login_cookie_flags_and_its_use(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as browser_like:
        refused = await browser_like.post("/login", data={"token": "wrong"})
        assert refused.status_code == 401
        assert "set-cookie" not in refused.headers
        response = await browser_like.post("/login", data={"token": SUPERADMIN_SECRET})
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard"
        [cookie] = response.headers.get_list("set-cookie")
        name_value, *attributes = [part.strip() for part in cookie.split(";")]
        assert name_value.startswith(f"{SESSION_COOKIE}=")
        assert SUPERADMIN_SECRET not in cookie
        flags = {attribute.lower() for attribute in attributes}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags
        assert (await browser_like.get(OVERVIEW)).status_code == 200
        dashboard = await browser_like.get("/dashboard")
        assert dashboard.status_code == 200
        assert "text/html" in dashboard.headers["content-type"]
        forged = await browser_like.post("/api/tokens", json={"name": "x", "role": "user"})
        assert forged.status_code == 403
        assert forged.json() == {"error": "CSRF check failed"}
        session_id = browser_like.cookies[SESSION_COOKIE]
        logout = await browser_like.post("/logout", data={}, headers={"Origin": live_server.url})
        assert logout.status_code == 303
        assert logout.headers["location"] == "/login"
        browser_like.cookies.set(SESSION_COOKIE, session_id)
        assert (await browser_like.get(OVERVIEW)).status_code == 401
