"""Login, logout, the session cookie as API auth, CSRF, the dashboard's role rule and the docs pages (SPEC §11)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiToken, DashboardSession
from app.services.sessions import SESSION_COOKIE
from app.services.tokens import hash_secret
from tests.conftest import SUPERADMIN_SECRET, Clock, TokenMaker

OVERVIEW = "/api/client-logs/monitoring-overview"


async def log_in(client: httpx.AsyncClient, secret: str = SUPERADMIN_SECRET) -> httpx.Response:
    return await client.post("/login", data={"token": secret})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


async def session_rows(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(DashboardSession)) or 0)


class TestLogin:
    async def test_form_has_one_token_field_posted_in_the_body(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/login")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert re.findall(r"<input[^>]*>", response.text) == [
            next(tag for tag in re.findall(r"<input[^>]*>", response.text) if 'name="token"' in tag)
        ]
        assert 'method="post"' in response.text

    async def test_valid_token_sets_a_strict_httponly_cookie_and_goes_to_the_dashboard(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        response = await log_in(client)
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        session_id = client.cookies[SESSION_COOKIE]
        stored = (await session.execute(select(DashboardSession))).scalar_one()
        assert stored.session_hash == hash_secret(session_id)
        assert session_id not in {stored.session_hash, stored.csrf_token}

    async def test_cookie_is_secure_over_https(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://monitor.example") as https:
            response = await log_in(https)
        assert response.status_code == 303
        assert "secure" in {part.strip().lower() for part in response.headers["set-cookie"].split(";")}

    @pytest.mark.parametrize("secret", ["not-a-token", "", "   "])
    async def test_bad_token_shows_the_form_again_with_401(
        self, client: httpx.AsyncClient, session: AsyncSession, secret: str
    ) -> None:
        response = await log_in(client, secret)
        assert response.status_code == 401
        assert 'role="alert"' in response.text
        assert 'name="token"' in response.text
        assert "set-cookie" not in response.headers
        assert await session_rows(session) == 0

    async def test_revoked_token_cannot_log_in(
        self, client: httpx.AsyncClient, make_token: TokenMaker, superadmin: dict[str, str]
    ) -> None:
        headers = await make_token("superadmin", name="to-revoke")
        tokens = (await client.get("/api/tokens", headers=superadmin)).json()["tokens"]
        token_id = next(token["id"] for token in tokens if token["name"] == "to-revoke")
        assert (await client.delete(f"/api/tokens/{token_id}", headers=superadmin)).status_code == 204
        response = await log_in(client, headers["Authorization"].removeprefix("Bearer "))
        assert response.status_code == 401

    async def test_token_in_the_query_string_logs_nobody_in(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/login", params={"token": SUPERADMIN_SECRET})
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
        assert SUPERADMIN_SECRET not in response.text

    async def test_login_posted_from_another_site_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/login", data={"token": SUPERADMIN_SECRET}, headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403
        assert response.json() == {"error": "CSRF check failed"}
        assert "set-cookie" not in response.headers


class TestCookieAuth:
    async def test_cookie_authenticates_reads(self, client: httpx.AsyncClient) -> None:
        assert (await client.get(OVERVIEW)).status_code == 401
        await log_in(client)
        response = await client.get(OVERVIEW)
        assert response.status_code == 200
        assert response.json()["summary"]["totalClients"] == 0

    async def test_bearer_header_wins_over_the_cookie(self, client: httpx.AsyncClient) -> None:
        await log_in(client)
        response = await client.get(OVERVIEW, headers={"Authorization": "Bearer wrong-secret"})
        assert response.status_code == 401

    async def test_state_changing_call_without_csrf_token_is_refused(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        assert (await client.post("/api/clients/display-1/heartbeat", headers=superadmin)).status_code == 204
        page = await log_in(client)
        csrf = csrf_of((await client.get(page.headers["location"])).text)
        patch = {"description": "Lobby"}
        refused = await client.patch("/api/clients/display-1", json=patch)
        assert refused.status_code == 403
        assert refused.json() == {"error": "CSRF check failed"}
        wrong = await client.patch("/api/clients/display-1", json=patch, headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        foreign = await client.patch("/api/clients/display-1", json=patch, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        unchanged = await client.get("/api/clients/display-1")
        assert unchanged.json()["description"] is None
        accepted = await client.patch("/api/clients/display-1", json=patch, headers={"X-CSRF-Token": csrf})
        assert accepted.status_code == 200
        assert accepted.json()["description"] == "Lobby"
        same_origin = await client.patch(
            "/api/clients/display-1", json={"description": "Hall"}, headers={"Origin": "http://testserver"}
        )
        assert same_origin.status_code == 200

    async def test_csrf_is_checked_before_a_body_is_read(self, client: httpx.AsyncClient) -> None:
        await log_in(client)
        refused = await client.post("/api/tokens", json={"name": "x", "role": "user"})
        assert refused.status_code == 403
        assert refused.json() == {"error": "CSRF check failed"}
        csrf = csrf_of((await client.get("/dashboard")).text)
        created = await client.post("/api/tokens", json={"name": "x", "role": "user"}, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201

    async def test_revoking_the_token_ends_its_sessions(
        self, client: httpx.AsyncClient, make_token: TokenMaker, superadmin: dict[str, str]
    ) -> None:
        headers = await make_token("superadmin", name="operator")
        await log_in(client, headers["Authorization"].removeprefix("Bearer "))
        assert (await client.get(OVERVIEW)).status_code == 200
        tokens = (await client.get("/api/tokens", headers=superadmin)).json()["tokens"]
        token_id = next(token["id"] for token in tokens if token["name"] == "operator")
        assert (await client.delete(f"/api/tokens/{token_id}", headers=superadmin)).status_code == 204
        assert (await client.get(OVERVIEW)).status_code == 401
        assert (await client.get("/dashboard")).headers["location"] == "/login"

    async def test_deleting_the_token_deletes_its_sessions(
        self, client: httpx.AsyncClient, make_token: TokenMaker, session: AsyncSession
    ) -> None:
        headers = await make_token("superadmin", name="operator")
        await log_in(client, headers["Authorization"].removeprefix("Bearer "))
        assert await session_rows(session) == 1
        await session.execute(delete(ApiToken).where(ApiToken.name == "operator"))  # type: ignore[arg-type]
        await session.commit()
        assert await session_rows(session) == 0
        assert (await client.get(OVERVIEW)).status_code == 401

    async def test_session_expires(self, client: httpx.AsyncClient, clock: Clock, app: FastAPI) -> None:
        await log_in(client)
        assert (await client.get(OVERVIEW)).status_code == 200
        clock.advance(app.state.monitor.settings.SESSION_LIFETIME_HOURS * 3600 + 1)
        assert (await client.get(OVERVIEW)).status_code == 401


class TestLogout:
    async def test_logout_deletes_the_session_and_clears_the_cookie(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await log_in(client)
        session_id = client.cookies[SESSION_COOKIE]
        csrf = csrf_of((await client.get("/dashboard")).text)
        response = await client.post("/logout", data={"csrf_token": csrf})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        cleared = response.headers["set-cookie"]
        assert cleared.startswith(f'{SESSION_COOKIE}=""') or "max-age=0" in cleared.lower()
        assert await session_rows(session) == 0
        # The old cookie, replayed, is worth nothing.
        client.cookies.set(SESSION_COOKIE, session_id)
        replay = await client.get(OVERVIEW)
        assert replay.status_code == 401

    async def test_logout_without_the_csrf_token_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await log_in(client)
        response = await client.post("/logout", data={"csrf_token": "forged"})
        assert response.status_code == 403
        assert await session_rows(session) == 1


class TestDashboard:
    async def test_without_a_session_goes_to_login(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/dashboard")
        assert response.status_code == 303
        assert response.headers["location"] == "/login"

    @pytest.mark.parametrize("role", ["user", "admin"])
    async def test_lower_role_gets_a_page_saying_so(
        self, client: httpx.AsyncClient, make_token: TokenMaker, role: str
    ) -> None:
        headers = await make_token(role)
        assert (await log_in(client, headers["Authorization"].removeprefix("Bearer "))).status_code == 303
        response = await client.get("/dashboard")
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert f"<strong>{role}</strong>" in response.text
        assert "<strong>superadmin</strong>" in response.text

    async def test_superadmin_gets_the_page_with_its_csrf_token(self, client: httpx.AsyncClient) -> None:
        await log_in(client)
        response = await client.get("/dashboard")
        assert response.status_code == 200
        assert len(csrf_of(response.text)) >= 32
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        script = await client.get("/static/dashboard/dashboard.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]

    async def test_pages_are_not_in_the_api_schema(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert not {"/login", "/logout", "/dashboard", "/docs", "/redoc", "/"} & set(paths)


class TestDocsPages:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_docs_load_their_assets_from_the_service(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert assets
        assert all(asset.startswith("/static/vendor/") for asset in assets), assets
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset
