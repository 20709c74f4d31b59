"""A body is read only for a caller it may come from (SPEC §5), and the log cap counts before validating.

These tests drive the ASGI app directly with a `receive` that fails the test when the body is
read, so they pin the order of the checks, not a timing. tests/live/test_hostile_bodies.py does the
same over a real socket.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.models import ApiToken
from app.state import AppState
from tests.conftest import SUPERADMIN_SECRET, Clock, StatementCounter, TokenMaker, bearer

pytestmark = pytest.mark.usefixtures("backend")

# Every protected operation that takes a body, with the role it needs.
BODY_ROUTES = [
    ("POST", "/api/clients/disp-1/heartbeat", "device"),
    ("POST", "/api/clients/disp-1/health", "device"),
    ("POST", "/api/clients/disp-1/logs", "device"),
    ("POST", "/api/clients/disp-1/screenshot", "device"),
    ("PATCH", "/api/clients/disp-1", "admin"),
    ("POST", "/api/client-groups", "admin"),
    ("PATCH", "/api/client-groups/1", "admin"),
    ("POST", "/api/tokens", "superadmin"),
]
# Under every size limit: the answer must come from the token check, not from the size check.
ANNOUNCED_BYTES = 4 * 1024 * 1024


class BodyRead(Exception):
    """The app asked for the body."""


async def call_without_reading(
    app: FastAPI, method: str, path: str, headers: dict[str, str], *, chunked: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Call the app with a request that announces a large body; fail if the app asks for any of it."""
    status, response_headers, body, read = await call_announcing_a_body(app, method, path, headers, chunked=chunked)
    assert not read, f"{method} {path} read the body"
    return status, response_headers, body


async def call_announcing_a_body(
    app: FastAPI, method: str, path: str, headers: dict[str, str], *, chunked: bool = False
) -> tuple[int, dict[str, str], bytes, bool]:
    """Call the app with a request that announces a large body it never sends; did the app ask for it?"""
    raw_headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    raw_headers.append((b"content-type", b"application/json"))
    if chunked:
        raw_headers.append((b"transfer-encoding", b"chunked"))
    else:
        raw_headers.append((b"content-length", str(ANNOUNCED_BYTES).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        raise BodyRead(f"{method} {path} read the body")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    response_headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], response_headers, body, read


class TestRefusedBeforeTheBody:
    @pytest.mark.parametrize(("method", "path", "role"), BODY_ROUTES)
    @pytest.mark.parametrize("authorization", [None, "Bearer unknown-secret", "Basic dXNlcjpwYXNz"], ids=str)
    async def test_no_valid_token_is_401_without_reading_the_body(
        self, app: FastAPI, method: str, path: str, role: str, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        status, response_headers, body = await call_without_reading(app, method, path, headers)
        assert status == 401
        assert response_headers["www-authenticate"] == "Bearer"
        assert body == b'{"error":"Not authenticated"}'

    @pytest.mark.parametrize(("method", "path", "role"), BODY_ROUTES)
    async def test_a_revoked_token_is_401_without_reading_the_body(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        method: str,
        path: str,
        role: str,
    ) -> None:
        created = (await client.post("/api/tokens", json={"name": "gone", "role": role}, headers=superadmin)).json()
        assert (await client.delete(f"/api/tokens/{created['id']}", headers=superadmin)).status_code == 204
        status, _, _ = await call_without_reading(app, method, path, bearer(created["token"]))
        assert status == 401

    async def test_a_chunked_body_is_not_read_either(self, app: FastAPI) -> None:
        status, _, _ = await call_without_reading(app, "POST", "/api/clients/disp-1/logs", {}, chunked=True)
        assert status == 401

    @pytest.mark.parametrize(("method", "path", "role"), [route for route in BODY_ROUTES if route[2] != "device"])
    async def test_too_low_a_role_is_403_without_reading_the_body(
        self, app: FastAPI, make_token: TokenMaker, method: str, path: str, role: str
    ) -> None:
        status, _, body = await call_without_reading(app, method, path, await make_token("device"))
        assert status == 403
        assert b"Forbidden" in body

    async def test_with_a_valid_token_the_body_is_read(self, app: FastAPI, superadmin: dict[str, str]) -> None:
        *_, read = await call_announcing_a_body(app, "POST", "/api/clients/disp-1/logs", superadmin)
        assert read

    async def test_malformed_json_from_an_anonymous_caller_is_401_not_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/clients/disp-1/logs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401


class TestOneLookupPerRequest:
    async def test_a_request_with_a_body_looks_its_token_up_once_and_records_its_use(
        self,
        client: httpx.AsyncClient,
        state: AppState,
        make_token: TokenMaker,
        clock: Clock,
        statement_counter: StatementCounter,
    ) -> None:
        headers = await make_token("device", name="display")
        statement_counter.counting = True
        response = await client.post("/api/clients/disp-1/heartbeat", json={"hostname": "h"}, headers=headers)
        statement_counter.counting = False
        assert response.status_code == 204
        lookups = [sql for sql in statement_counter.statements if "FROM api_tokens" in sql]
        assert len(lookups) == 1, statement_counter.statements
        async with state.session_factory() as session:
            token = (await session.execute(select(ApiToken).where(ApiToken.name == "display"))).scalar_one()
        assert token.last_used_at == clock()

    async def test_the_superadmin_secret_still_works_with_a_body(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/client-groups", json={"name": "g"}, headers=bearer(SUPERADMIN_SECRET))
        assert response.status_code == 201


def entries(count: int, entry: Any) -> list[Any]:
    return [entry] * count


class TestLogCapBeforeValidation:
    async def test_1001_invalid_items_are_413_not_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        response = await client.post(
            "/api/clients/disp-1/logs", json=entries(1001, {"level": "nope", "timestamp": []}), headers=superadmin
        )
        assert response.status_code == 413
        assert response.json() == {"error": "Too many log entries: at most 1000 per request"}

    async def test_240000_items_are_413(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        response = await client.post(
            "/api/clients/disp-1/logs", json=entries(240_000, {"level": "info", "message": "x"}), headers=superadmin
        )
        assert response.status_code == 413

    async def test_1000_items_are_accepted_and_1000_invalid_ones_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        valid = await client.post(
            "/api/clients/disp-1/logs", json=entries(1000, {"level": "info", "message": "x"}), headers=superadmin
        )
        assert valid.status_code == 202
        assert valid.json() == {"accepted": 1000}
        invalid = await client.post(
            "/api/clients/disp-1/logs", json=entries(1000, {"level": "nope", "message": "x"}), headers=superadmin
        )
        assert invalid.status_code == 400
