"""Bearer tokens and roles (SPEC §4): each role against each endpoint class, on both backends."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.models import ROLES, ApiToken, Client
from app.state import AppState
from tests.conftest import SUPERADMIN_SECRET, Clock, TokenMaker, bearer
from tests.helpers import heartbeat, png_bytes

pytestmark = pytest.mark.usefixtures("backend")

NOT_AUTHENTICATED = {"error": "Not authenticated"}
LOG = {"level": "info", "message": "hello"}

# (method, route path, minimum role or None for public, request kwargs); {uuid} is a known client.
ENDPOINTS: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("GET", "/healthz", None, {}),
    ("GET", "/readyz", None, {}),
    ("GET", "/metrics", None, {}),
    ("GET", "/api/client-logs/test", None, {}),
    ("POST", "/api/clients/{client_uuid}/heartbeat", "device", {}),
    ("POST", "/api/clients/{client_uuid}/health", "device", {"json": {"process_status": "running"}}),
    ("POST", "/api/clients/{client_uuid}/logs", "device", {"json": LOG}),
    (
        "POST",
        "/api/clients/{client_uuid}/screenshot",
        "device",
        {"content": png_bytes(), "headers": {"Content-Type": "image/png"}},
    ),
    ("GET", "/screenshots/{client_uuid}", "user", {}),
    ("GET", "/screenshots/{client_uuid}/priority", "user", {}),
    ("GET", "/screenshots/{client_uuid}/history/{screenshot_id}", "user", {}),
    ("GET", "/api/clients/{client_uuid}/screenshots", "user", {}),
    # Unknown hash: 404 once authorised (a known one is tested in tests/routers/test_thumbnails.py).
    ("GET", "/thumbnails/{screenshot_hash}", "user", {"params": {"w": 160}}),
    ("GET", "/api/client-logs/{client_uuid}/logs", "admin", {}),
    ("GET", "/api/client-logs/summary", "admin", {}),
    ("GET", "/api/client-logs/recent-errors", "admin", {}),
    ("GET", "/api/clients", "admin", {}),
    ("GET", "/api/clients/{client_uuid}", "admin", {}),
    ("PATCH", "/api/clients/{client_uuid}", "admin", {"json": {"description": "x"}}),
    ("GET", "/api/client-groups", "admin", {}),
    ("POST", "/api/client-groups", "admin", {"json": {"name": "g"}}),
    ("PATCH", "/api/client-groups/{group_id}", "admin", {"json": {"name": "h"}}),
    ("DELETE", "/api/client-groups/{group_id}", "admin", {}),
    ("GET", "/api/clients/{client_uuid}/status-history", "admin", {}),
    ("GET", "/api/incidents", "admin", {}),
    ("POST", "/api/incidents/{incident_id}/ack", "admin", {}),
    ("GET", "/api/maintenance-windows", "admin", {}),
    (
        "POST",
        "/api/maintenance-windows",
        "admin",
        {"json": {"group_id": 1, "weekdays": ["sat"], "start_time": "00:00", "end_time": "00:00"}},
    ),
    ("DELETE", "/api/maintenance-windows/{window_id}", "admin", {}),
    ("GET", "/api/client-logs/monitoring-overview", "superadmin", {}),
    # A bad Last-Event-ID is a 400 once authorised: the stream itself never ends, so it is not opened here
    # (tests/services/test_events.py and tests/live/test_event_stream.py read it).
    ("GET", "/api/events", "superadmin", {"headers": {"Last-Event-ID": "not-an-id"}}),
    ("DELETE", "/api/clients/{client_uuid}", "superadmin", {}),
    ("GET", "/api/tokens", "superadmin", {}),
    ("POST", "/api/tokens", "superadmin", {"json": {"name": "t", "role": "user"}}),
    ("DELETE", "/api/tokens/{token_id}", "superadmin", {}),
    ("GET", "/api/webhooks", "superadmin", {}),
    ("POST", "/api/webhooks", "superadmin", {"json": {"url": "http://127.0.0.1:9/", "secret": "s" * 16}}),
    ("GET", "/api/webhooks/{webhook_id}", "superadmin", {}),
    ("PATCH", "/api/webhooks/{webhook_id}", "superadmin", {"json": {"group_id": None}}),
    ("DELETE", "/api/webhooks/{webhook_id}", "superadmin", {}),
]
PROTECTED = [entry for entry in ENDPOINTS if entry[2] is not None]


def endpoint_id(entry: tuple[str, str, str | None, dict[str, Any]]) -> str:
    return f"{entry[0]} {entry[1]}"


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every documented operation (FastAPI includes routers lazily, so read them from the schema)."""
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE")
    }


def concrete(path: str) -> str:
    return (
        path.replace("{client_uuid}", "disp-1")
        .replace("{group_id}", "4242")
        .replace("{token_id}", "4242")
        .replace("{screenshot_id}", "4242")
        .replace("{incident_id}", "4242")
        .replace("{webhook_id}", "4242")
        .replace("{window_id}", "4242")
        .replace("{screenshot_hash}", "0" * 32)
    )


async def call(
    http: httpx.AsyncClient, entry: tuple[str, str, str | None, dict[str, Any]], headers: dict[str, str]
) -> httpx.Response:
    method, path, _, kwargs = entry
    kwargs = dict(kwargs)
    kwargs["headers"] = {**kwargs.get("headers", {}), **headers}
    return await http.request(method, concrete(path), **kwargs)


def skip_unless_routed(app: FastAPI, entry: tuple[str, str, str | None, dict[str, Any]]) -> None:
    if entry[1] == "/metrics":
        if "/metrics" not in app.openapi()["paths"] and not any(
            getattr(route, "path", None) == "/metrics" for route in app.routes
        ):
            pytest.skip("no /metrics route yet")
    elif (entry[0], entry[1]) not in api_routes(app):
        pytest.skip(f"no route {endpoint_id(entry)} yet")


def assert_not_authenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == NOT_AUTHENTICATED


class TestEveryEndpointIsClassified:
    def test_every_route_is_in_the_table(self, app: FastAPI) -> None:
        known = {(method, path) for method, path, _, _ in ENDPOINTS}
        assert api_routes(app) - known == set()


class TestPublicEndpoints:
    @pytest.mark.parametrize("entry", [e for e in ENDPOINTS if e[2] is None], ids=endpoint_id)
    async def test_public_without_token(
        self, app: FastAPI, client: httpx.AsyncClient, entry: tuple[str, str, str | None, dict[str, Any]]
    ) -> None:
        skip_unless_routed(app, entry)
        assert (await call(client, entry, {})).status_code == 200

    @pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
    async def test_docs_without_token(self, client: httpx.AsyncClient, path: str) -> None:
        assert (await client.get(path)).status_code == 200


class TestMissingOrBadToken:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Bearer "},
            {"Authorization": f"Basic {SUPERADMIN_SECRET}"},
            {"Authorization": SUPERADMIN_SECRET},
        ],
        ids=["missing", "unknown", "empty", "basic", "no-scheme"],
    )
    async def test_every_protected_endpoint_is_401(
        self, app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        routed = api_routes(app)
        checked = 0
        for entry in PROTECTED:
            if (entry[0], entry[1]) not in routed:
                continue
            response = await call(client, entry, headers)
            assert response.status_code == 401, (endpoint_id(entry), response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer", endpoint_id(entry)
            assert response.json() == NOT_AUTHENTICATED, endpoint_id(entry)
            checked += 1
        assert checked >= 20


class TestRoles:
    @pytest.mark.parametrize("entry", PROTECTED, ids=endpoint_id)
    async def test_each_role_against_each_endpoint(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        make_token: TokenMaker,
        superadmin: dict[str, str],
        entry: tuple[str, str, str | None, dict[str, Any]],
    ) -> None:
        skip_unless_routed(app, entry)
        minimum = entry[2]
        assert minimum is not None
        outcomes = {}
        for role in ROLES:
            await heartbeat(client, superadmin, "disp-1")
            response = await call(client, entry, await make_token(role))
            outcomes[role] = response.status_code
            if response.status_code == 403:
                assert "error" in response.json()
        allowed = ROLES[ROLES.index(minimum) :]
        assert {role for role, status in outcomes.items() if status == 403} == set(ROLES) - set(allowed), outcomes
        assert all(outcomes[role] not in (401, 403) for role in allowed), outcomes
        assert all(status < 500 for status in outcomes.values()), outcomes


class TestBoundDeviceToken:
    @pytest.mark.parametrize(
        ("kind", "body"), [("heartbeat", None), ("health", {"process_status": "running"}), ("logs", LOG)]
    )
    async def test_ingests_for_its_own_client_only(
        self, client: httpx.AsyncClient, make_token: TokenMaker, state: AppState, kind: str, body: Any
    ) -> None:
        headers = await make_token("device", client_uuid="disp-1")
        own = await client.post(f"/api/clients/disp-1/{kind}", json=body, headers=headers)
        other = await client.post(f"/api/clients/disp-2/{kind}", json=body, headers=headers)
        assert own.status_code in (202, 204)
        assert other.status_code == 403
        assert other.json() == {"error": "Forbidden: this token is bound to another client"}
        async with state.session_factory() as session:
            assert await session.get(Client, "disp-2") is None

    async def test_screenshot_for_its_own_client_only(
        self, client: httpx.AsyncClient, make_token: TokenMaker, state: AppState
    ) -> None:
        headers = {**await make_token("device", client_uuid="disp-1"), "Content-Type": "image/png"}
        own = await client.post("/api/clients/disp-1/screenshot", content=png_bytes(), headers=headers)
        other = await client.post("/api/clients/disp-2/screenshot", content=png_bytes(), headers=headers)
        assert own.status_code == 202, own.text
        assert other.status_code == 403
        async with state.session_factory() as session:
            assert await session.get(Client, "disp-2") is None

    async def test_bound_token_cannot_read(self, client: httpx.AsyncClient, make_token: TokenMaker) -> None:
        headers = await make_token("device", client_uuid="disp-1")
        assert (await client.get("/api/clients/disp-1", headers=headers)).status_code == 403

    async def test_unbound_device_token_ingests_for_anyone(
        self, client: httpx.AsyncClient, make_token: TokenMaker
    ) -> None:
        headers = await make_token("device")
        for uuid in ("disp-1", "disp-2"):
            assert (await client.post(f"/api/clients/{uuid}/heartbeat", headers=headers)).status_code == 204


TOKEN_LIST_FIELDS = {"id", "name", "role", "client_uuid", "created_at", "last_used_at", "revoked"}


class TestTokenManagement:
    async def test_create_shows_the_secret_once(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, state: AppState
    ) -> None:
        response = await client.post(
            "/api/tokens", json={"name": "lobby", "role": "device", "client_uuid": "disp-1"}, headers=superadmin
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "name", "role", "client_uuid", "created_at", "token"}
        assert (body["name"], body["role"], body["client_uuid"]) == ("lobby", "device", "disp-1")
        assert body["created_at"] == clock().isoformat()
        secret = body["token"]
        assert len(secret) >= 43  # URL-safe base64 of >= 32 random bytes
        listed = (await client.get("/api/tokens", headers=superadmin)).text
        assert secret not in listed
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed
        heartbeat_response = await client.post("/api/clients/disp-1/heartbeat", headers=bearer(secret))
        assert heartbeat_response.status_code == 204

    async def test_secrets_are_random(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        secrets = set()
        for number in range(5):
            body = (
                await client.post("/api/tokens", json={"name": f"t{number}", "role": "user"}, headers=superadmin)
            ).json()
            secrets.add(body["token"])
        assert len(secrets) == 5

    async def test_stored_only_as_sha256(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        body = (await client.post("/api/tokens", json={"name": "t", "role": "admin"}, headers=superadmin)).json()
        async with state.session_factory() as session:
            row = (await session.execute(select(ApiToken).where(ApiToken.id == body["id"]))).scalar_one()
        assert row.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
        assert body["token"] not in {str(value) for value in row.model_dump().values()}

    async def test_list_has_no_secret_or_hash(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        await client.post("/api/tokens", json={"name": "reader", "role": "user"}, headers=superadmin)
        response = await client.get("/api/tokens", headers=superadmin)
        assert response.status_code == 200
        tokens = response.json()["tokens"]
        assert [token["name"] for token in tokens] == ["initial-superadmin", "reader"]
        for token in tokens:
            assert set(token) == TOKEN_LIST_FIELDS
        assert tokens[0]["last_used_at"] == clock().isoformat()
        assert tokens[1]["last_used_at"] is None
        assert tokens[1]["revoked"] is False

    async def test_last_used_at_follows_use(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], make_token: TokenMaker, clock: Clock
    ) -> None:
        reader = await make_token("admin", name="reader")
        clock.advance(3600)
        await client.get("/api/clients", headers=reader)
        tokens = (await client.get("/api/tokens", headers=superadmin)).json()["tokens"]
        assert {t["name"]: t["last_used_at"] for t in tokens}["reader"] == clock().isoformat()

    async def test_revoke_then_401(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        body = (await client.post("/api/tokens", json={"name": "t", "role": "admin"}, headers=superadmin)).json()
        headers = bearer(body["token"])
        assert (await client.get("/api/clients", headers=headers)).status_code == 200
        response = await client.delete(f"/api/tokens/{body['id']}", headers=superadmin)
        assert response.status_code == 204
        assert response.content == b""
        assert_not_authenticated(await client.get("/api/clients", headers=headers))
        tokens = (await client.get("/api/tokens", headers=superadmin)).json()["tokens"]
        assert {t["id"]: t["revoked"] for t in tokens}[body["id"]] is True

    async def test_revoked_token_is_anonymous_on_the_test_endpoint(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        await client.post("/api/clients/disp-1/logs", json=LOG, headers=superadmin)
        body = (await client.post("/api/tokens", json={"name": "t", "role": "admin"}, headers=superadmin)).json()
        await client.delete(f"/api/tokens/{body['id']}", headers=superadmin)
        response = await client.get("/api/client-logs/test", headers=bearer(body["token"]))
        assert response.status_code == 200
        assert response.json()["recent_5"] == []

    async def test_revoking_unknown_token_is_404(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        response = await client.delete("/api/tokens/4242", headers=superadmin)
        assert response.status_code == 404
        assert response.json() == {"error": "Token not found"}

    @pytest.mark.parametrize("token_id", ["0", "-1", "abc"])
    async def test_bad_token_id_is_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], token_id: str
    ) -> None:
        assert (await client.delete(f"/api/tokens/{token_id}", headers=superadmin)).status_code == 400

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "t", "role": "root"},
            {"name": "", "role": "user"},
            {"role": "user"},
            {"name": "t"},
            {"name": "t", "role": "device", "client_uuid": "bad.uuid"},
            {"name": "t", "role": "user", "secret": "chosen"},
        ],
    )
    async def test_bad_create_body_is_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], body: dict[str, Any]
    ) -> None:
        response = await client.post("/api/tokens", json=body, headers=superadmin)
        assert response.status_code == 400
        assert "error" in response.json()
        assert len((await client.get("/api/tokens", headers=superadmin)).json()["tokens"]) == 1


class TestLastSuperadmin:
    async def test_revoking_the_last_live_superadmin_is_409(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        response = await client.delete("/api/tokens/1", headers=superadmin)
        assert response.status_code == 409
        assert response.json() == {"error": "Cannot revoke the last live superadmin token"}
        assert (await client.get("/api/tokens", headers=superadmin)).json()["tokens"][0]["revoked"] is False

    async def test_a_superadmin_can_go_while_another_is_live(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        second = (
            await client.post("/api/tokens", json={"name": "s2", "role": "superadmin"}, headers=superadmin)
        ).json()
        assert (await client.delete(f"/api/tokens/{second['id']}", headers=superadmin)).status_code == 204
        # The revoked one no longer counts: the first is the last live one again.
        assert (await client.delete("/api/tokens/1", headers=superadmin)).status_code == 409
        other = (await client.post("/api/tokens", json={"name": "s3", "role": "superadmin"}, headers=superadmin)).json()
        assert (await client.delete("/api/tokens/1", headers=bearer(other["token"]))).status_code == 204
        assert_not_authenticated(await client.get("/api/tokens", headers=superadmin))
        assert (await client.delete(f"/api/tokens/{other['id']}", headers=bearer(other["token"]))).status_code == 409

    async def test_two_revocations_at_once_leave_one_superadmin(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        second = (
            await client.post("/api/tokens", json={"name": "s2", "role": "superadmin"}, headers=superadmin)
        ).json()
        answers = await asyncio.gather(
            client.delete("/api/tokens/1", headers=bearer(second["token"])),
            client.delete(f"/api/tokens/{second['id']}", headers=superadmin),
        )
        # The loser is refused either way: 409 when it got past authentication first, 401 when the winner
        # had already revoked the loser's own token (a revoked token is not authenticated).
        codes = sorted(response.status_code for response in answers)
        assert codes in ([204, 401], [204, 409]), [r.text for r in answers]
        listings = [
            await client.get("/api/tokens", headers=headers) for headers in (superadmin, bearer(second["token"]))
        ]
        (tokens,) = [listing.json()["tokens"] for listing in listings if listing.status_code == 200]
        assert [t["revoked"] for t in tokens if t["role"] == "superadmin"].count(False) == 1

    async def test_revoking_an_already_revoked_superadmin_is_204(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        second = (
            await client.post("/api/tokens", json={"name": "s2", "role": "superadmin"}, headers=superadmin)
        ).json()
        assert (await client.delete(f"/api/tokens/{second['id']}", headers=superadmin)).status_code == 204
        assert (await client.delete(f"/api/tokens/{second['id']}", headers=superadmin)).status_code == 204


class TestBinding:
    @pytest.mark.parametrize("role", ["user", "editor", "admin", "superadmin"])
    async def test_only_device_tokens_can_be_bound(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], role: str
    ) -> None:
        body = {"name": "t", "role": role, "client_uuid": "disp-1"}
        response = await client.post("/api/tokens", json=body, headers=superadmin)
        assert response.status_code == 400
        assert response.json() == {"error": "Only device tokens can be bound to a client_uuid"}
        assert len((await client.get("/api/tokens", headers=superadmin)).json()["tokens"]) == 1

    async def test_a_device_token_can_be_bound(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        body = {"name": "t", "role": "device", "client_uuid": "disp-1"}
        response = await client.post("/api/tokens", json=body, headers=superadmin)
        assert response.status_code == 201
        assert response.json()["client_uuid"] == "disp-1"
