"""The error envelope of SPEC §5: JSON everywhere, 400 for bad input, never 422, no trace in a 500."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.state import AppState
from tests.conftest import POSTGRES_ADMIN_URL
from tests.helpers import heartbeat

pytestmark = pytest.mark.usefixtures("backend")

JSON_BODY_ENDPOINTS = [
    ("POST", "/api/clients/disp-1/heartbeat"),
    ("POST", "/api/clients/disp-1/health"),
    ("POST", "/api/clients/disp-1/logs"),
    ("PATCH", "/api/clients/disp-1"),
    ("POST", "/api/client-groups"),
    ("PATCH", "/api/client-groups/1"),
    ("POST", "/api/tokens"),
]

# Bad query and body values that a validator could turn into a 422.
BAD_INPUTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/client-logs/summary", {"params": {"hours": "soon"}}),
    ("GET", "/api/client-logs/monitoring-overview", {"params": {"hours": "-1"}}),
    ("GET", "/api/client-logs/recent-errors", {"params": {"limit": "[]"}}),
    ("GET", "/api/client-logs/disp-1/logs", {"params": {"limit": "0", "since": "never"}}),
    ("PATCH", "/api/clients/disp-1", {"json": {"is_active": [1]}}),
    ("PATCH", "/api/clients/disp-1", {"json": []}),
    ("PATCH", "/api/client-groups/abc", {"json": {"name": "x"}}),
    ("DELETE", "/api/tokens/1.5", {}),
    ("POST", "/api/client-groups", {"json": {"name": None}}),
    ("POST", "/api/clients/disp-1/logs", {"json": {"level": "info", "message": "x", "timestamp": 12.5e300}}),
    ("POST", "/api/clients/disp-1/heartbeat", {"json": {"process_pid": 2**70}}),
    ("POST", "/api/clients/disp-1/health", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
]


class TestUnknownPathsAndMethods:
    @pytest.mark.parametrize("path", ["/nope", "/api", "/api/clients/disp-1/nothing", "/api/client-logs/x/y/z"])
    async def test_unknown_path_is_404_json(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], path: str
    ) -> None:
        for headers in ({}, superadmin):
            response = await client.get(path, headers=headers)
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"error": "Not found"}

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("DELETE", "/healthz"),
            ("PUT", "/api/clients"),
            ("GET", "/api/clients/disp-1/logs"),
            ("POST", "/api/tokens/1"),
        ],
    )
    async def test_wrong_method_is_405_json(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], method: str, path: str
    ) -> None:
        response = await client.request(method, path, headers=superadmin)
        assert response.status_code == 405
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": "Method not allowed"}
        assert "Allow" in response.headers

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("PUT", "/api/tokens", "GET, POST"),
            ("PUT", "/api/clients/disp-1", "GET, PATCH, DELETE"),
            ("POST", "/api/client-groups/1", "PATCH, DELETE"),
            ("GET", "/api/clients/disp-1/screenshot", "POST"),
            ("DELETE", "/healthz", "GET"),
            ("POST", "/docs", "GET, HEAD"),
        ],
    )
    async def test_allow_lists_every_method_of_the_path(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], method: str, path: str, allow: str
    ) -> None:
        for headers in ({}, superadmin):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 405
            assert response.headers["Allow"] == allow


class TestBadInputIs400:
    @pytest.mark.parametrize(("method", "path"), JSON_BODY_ENDPOINTS)
    @pytest.mark.parametrize("raw", [b"{", b'{"a": }', b"nul", b"\x00"])
    async def test_malformed_json_body_is_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], method: str, path: str, raw: bytes
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        headers = {**superadmin, "Content-Type": "application/json"}
        response = await client.request(method, path, content=raw, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "Malformed JSON body"}

    @pytest.mark.parametrize(("method", "path", "kwargs"), BAD_INPUTS)
    async def test_bad_values_are_400_never_422(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], method: str, path: str, kwargs: dict[str, Any]
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        kwargs = {**kwargs, "headers": {**superadmin, **kwargs.get("headers", {})}}
        response = await client.request(method, path, **kwargs)
        assert response.status_code == 400, response.text
        body = response.json()
        assert isinstance(body["error"], str)
        assert body["error"]

    async def test_validation_error_names_the_field(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        response = await client.get("/api/client-logs/summary", params={"hours": "soon"}, headers=superadmin)
        body = response.json()
        assert "hours" in body["error"]
        assert body["details"][0]["loc"] == ["query", "hours"]


class TestHugeIntegers:
    async def test_huge_hours_are_clamped_not_an_error(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        params = {"hours": "9" * 30}
        for path in ("/api/client-logs/summary", "/api/client-logs/monitoring-overview"):
            response = await client.get(path, params=params, headers=superadmin)
            assert response.status_code == 200, response.text


class TestInternalErrors:
    async def test_500_is_json_without_trace(self, app: FastAPI) -> None:
        async def explode() -> None:
            raise RuntimeError("SELECT secret FROM api_tokens -- Traceback")

        app.add_api_route("/explode", explode)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/explode")
        assert response.status_code == 500
        assert response.json() == {"error": "Internal server error"}
        assert "SELECT" not in response.text
        assert "Traceback" not in response.text


class TestDatabaseConnectionLost:
    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    async def test_one_503_then_the_pool_reconnects(self, client: httpx.AsyncClient, state: AppState) -> None:
        """The server drops every connection of the service (as on a restart): no pre-ping hides it, so
        the first request answers 503 with Retry-After, and the next ones reconnect and succeed."""
        assert (await client.get("/api/client-logs/test")).status_code == 200  # a pooled connection exists
        database = state.engine.url.database
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            ended = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await connection.close()
        assert ended >= 1
        first = await client.get("/api/client-logs/test")
        assert first.status_code == 503
        assert first.json() == {"error": "Database unavailable"}
        assert first.headers["Retry-After"] == "1"
        assert [(await client.get("/api/client-logs/test")).status_code for _ in range(3)] == [200, 200, 200]
