"""HTTP ingest (SPEC §6, §6.2) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.models import Client, ClientLog
from app.state import AppState
from tests.conftest import Clock
from tests.helpers import heartbeat, log

pytestmark = pytest.mark.usefixtures("backend")


async def get_client(state: AppState, client_uuid: str) -> Client | None:
    async with state.session_factory() as session:
        return await session.get(Client, client_uuid)


async def stored_logs(state: AppState, client_uuid: str) -> list[ClientLog]:
    async with state.session_factory() as session:
        query = select(ClientLog).where(col(ClientLog.client_uuid) == client_uuid).order_by(col(ClientLog.id))
        return list((await session.execute(query)).scalars().all())


async def client_count(state: AppState) -> int:
    async with state.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Client)) or 0)


class TestHeartbeat:
    async def test_registers_unknown_client_alive_now(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        response = await client.post("/api/clients/new-disp/heartbeat", headers=superadmin)
        assert response.status_code == 204
        assert response.content == b""
        stored = await get_client(state, "new-disp")
        assert stored is not None
        assert stored.registration_time == clock()
        assert stored.last_alive == clock()
        assert stored.is_active is True

    async def test_fields_present_are_updated(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        body = {
            "hostname": "lobby",
            "ip": "10.0.0.5",
            "model": "Pi 5",
            "current_event_id": 7,
            "current_process": "chromium",
            "process_status": "running",
            "process_pid": 99,
        }
        await heartbeat(client, superadmin, "disp-1", body)
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert {name: getattr(stored, name) for name in body} == body

    async def test_empty_heartbeat_keeps_known_fields_and_moves_last_alive(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        registered = clock()
        await heartbeat(client, superadmin, "disp-1", {"hostname": "lobby", "process_status": "starting"})
        clock.advance(60)
        assert (await client.post("/api/clients/disp-1/heartbeat", headers=superadmin)).status_code == 204
        clock.advance(60)
        await heartbeat(client, superadmin, "disp-1", {})
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert (stored.hostname, stored.process_status) == ("lobby", "starting")
        assert stored.last_alive == clock()
        assert stored.registration_time == registered

    async def test_partial_heartbeat_updates_only_its_fields(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        await heartbeat(client, superadmin, "disp-1", {"hostname": "lobby", "ip": "10.0.0.5"})
        await heartbeat(client, superadmin, "disp-1", {"ip": "10.0.0.6", "unknown_key": "ignored"})
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert (stored.hostname, stored.ip) == ("lobby", "10.0.0.6")

    async def test_heartbeat_does_not_reactivate_retired_client(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        await client.patch("/api/clients/disp-1", json={"is_active": False}, headers=superadmin)
        await heartbeat(client, superadmin, "disp-1", {"hostname": "back"})
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert (stored.is_active, stored.hostname) == (False, "back")

    @pytest.mark.parametrize(
        "body",
        [
            [1],
            "text",
            {"process_status": "exploded"},
            {"process_pid": "many"},
            {"process_pid": 2**53},
            {"hostname": "h" * 256},
            {"hostname": "nul\x00"},
        ],
    )
    async def test_bad_body_is_400_and_registers_nothing(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, body: Any
    ) -> None:
        response = await client.post("/api/clients/disp-1/heartbeat", json=body, headers=superadmin)
        assert response.status_code == 400
        assert "error" in response.json()
        assert await client_count(state) == 0


class TestHealth:
    async def test_updates_health_and_last_alive(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, superadmin, "disp-1", {"hostname": "lobby", "process_status": "running"})
        clock.advance(30)
        response = await client.post(
            "/api/clients/disp-1/health",
            json={"process_status": "crashed", "screen_health_status": "black", "process_pid": 12},
            headers=superadmin,
        )
        assert response.status_code == 204
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert (stored.process_status, stored.screen_health_status, stored.process_pid) == ("crashed", "BLACK", 12)
        assert stored.hostname == "lobby"
        assert stored.last_alive == clock()

    async def test_registers_unknown_client(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        response = await client.post("/api/clients/disp-9/health", json={}, headers=superadmin)
        assert response.status_code == 204
        assert await get_client(state, "disp-9") is not None

    @pytest.mark.parametrize("body", [{"screen_health_status": "PURPLE"}, {"process_status": 3}, [1]])
    async def test_bad_body_is_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, body: Any
    ) -> None:
        response = await client.post("/api/clients/disp-1/health", json=body, headers=superadmin)
        assert response.status_code == 400
        assert await client_count(state) == 0


class TestLogs:
    async def test_one_object(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        response = await client.post(
            "/api/clients/disp-1/logs", json=log("error", "boom", context={"a": 1}), headers=superadmin
        )
        assert response.status_code == 202
        assert response.json() == {"accepted": 1}
        [stored] = await stored_logs(state, "disp-1")
        assert (stored.level, stored.message, json.loads(stored.context or "null")) == ("ERROR", "boom", {"a": 1})
        assert stored.timestamp == clock()

    async def test_array(self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState) -> None:
        entries = [log("info", f"m{i}") for i in range(3)]
        response = await client.post("/api/clients/disp-1/logs", json=entries, headers=superadmin)
        assert response.status_code == 202
        assert response.json() == {"accepted": 3}
        assert [entry.message for entry in await stored_logs(state, "disp-1")] == ["m0", "m1", "m2"]

    async def test_empty_array_accepts_nothing(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        response = await client.post("/api/clients/disp-1/logs", json=[], headers=superadmin)
        assert response.status_code == 202
        assert response.json() == {"accepted": 0}
        assert await client_count(state) == 0

    async def test_1000_items_are_accepted(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        response = await client.post("/api/clients/disp-1/logs", json=[log("debug", "x")] * 1000, headers=superadmin)
        assert response.status_code == 202
        assert response.json() == {"accepted": 1000}

    async def test_more_than_1000_items_is_413_and_stores_nothing(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        response = await client.post("/api/clients/disp-1/logs", json=[log("debug", "x")] * 1001, headers=superadmin)
        assert response.status_code == 413
        assert "error" in response.json()
        assert await client_count(state) == 0

    @pytest.mark.parametrize(
        ("sent", "stored"), [("warning", "WARN"), ("WARNING", "WARN"), ("Warn", "WARN"), ("DeBuG", "DEBUG")]
    )
    async def test_level_aliases_and_case(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, sent: str, stored: str
    ) -> None:
        await client.post("/api/clients/disp-1/logs", json=log(sent, "x"), headers=superadmin)
        assert [entry.level for entry in await stored_logs(state, "disp-1")] == [stored]

    @pytest.mark.parametrize(
        "entry",
        [
            {"level": "fatal", "message": "x"},
            {"message": "no level"},
            {"level": "info"},
            {"level": "info", "message": 5},
            {"level": "info", "message": "x", "context": "not an object"},
            {"level": "info", "message": "x", "timestamp": "not a time"},
            {"level": "info", "message": "x", "message_id": "m" * 65},
            {"level": "info", "message": "x", "message_id": "m\x00"},
        ],
    )
    async def test_bad_entry_is_400_and_stores_nothing(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, entry: dict[str, Any]
    ) -> None:
        response = await client.post("/api/clients/disp-1/logs", json=[log("info", "good"), entry], headers=superadmin)
        assert response.status_code == 400
        assert "error" in response.json()
        assert await client_count(state) == 0

    async def test_long_message_is_cut_to_8192(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        await client.post("/api/clients/disp-1/logs", json=log("info", "é" * 9000), headers=superadmin)
        [stored] = await stored_logs(state, "disp-1")
        assert stored.message == "é" * 8192

    async def test_nul_in_message_is_replaced_and_nul_in_context_kept(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        entry = log("info", "a\x00b", context={"k\x00": "v\x00"})
        response = await client.post("/api/clients/disp-1/logs", json=entry, headers=superadmin)
        assert response.status_code == 202
        [stored] = await stored_logs(state, "disp-1")
        assert stored.message == "a\ufffdb"
        assert json.loads(stored.context or "null") == {"k\x00": "v\x00"}

    async def test_large_context_is_replaced(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        small = {"blob": "x" * (16 * 1024 - 20)}
        large = {"blob": "x" * (16 * 1024)}
        await client.post(
            "/api/clients/disp-1/logs",
            json=[log("info", "small", context=small), log("info", "large", context=large)],
            headers=superadmin,
        )
        stored = {entry.message: json.loads(entry.context or "null") for entry in await stored_logs(state, "disp-1")}
        assert stored == {"small": small, "large": {"truncated": True}}

    async def test_message_id_is_stored_once_but_counted_as_accepted(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        entry = log("error", "once", message_id="m-1")
        first = await client.post("/api/clients/disp-1/logs", json=[entry, entry], headers=superadmin)
        again = await client.post("/api/clients/disp-1/logs", json=entry, headers=superadmin)
        assert first.json() == {"accepted": 2}
        assert again.json() == {"accepted": 1}
        assert [e.message for e in await stored_logs(state, "disp-1")] == ["once"]
        test = (await client.get("/api/client-logs/test")).json()
        assert (test["total_logs"], test["counts"]["ERROR"]) == (1, 1)

    async def test_message_id_is_per_client_and_logs_without_it_are_never_merged(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        await client.post("/api/clients/disp-1/logs", json=log("info", "a", message_id="m-1"), headers=superadmin)
        await client.post("/api/clients/disp-2/logs", json=log("info", "a", message_id="m-1"), headers=superadmin)
        await client.post("/api/clients/disp-1/logs", json=[log("info", "same")] * 2, headers=superadmin)
        assert len(await stored_logs(state, "disp-1")) == 3
        assert len(await stored_logs(state, "disp-2")) == 1

    async def test_logs_register_but_do_not_set_last_alive(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await client.post("/api/clients/disp-1/logs", json=log("info", "x"), headers=superadmin)
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert (stored.registration_time, stored.last_alive, stored.is_active) == (clock(), None, True)
        await heartbeat(client, superadmin, "disp-1")
        clock.advance(100)
        await client.post("/api/clients/disp-1/logs", json=log("info", "y"), headers=superadmin)
        stored = await get_client(state, "disp-1")
        assert stored is not None
        assert stored.last_alive == clock() - timedelta(seconds=100)

    @pytest.mark.parametrize(
        ("sent", "expected"),
        [
            ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
            ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
            ("2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ],
    )
    async def test_timestamp_is_kept_in_utc(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, sent: str, expected: datetime
    ) -> None:
        await client.post(
            "/api/clients/disp-1/logs", json={"level": "info", "message": "x", "timestamp": sent}, headers=superadmin
        )
        [stored] = await stored_logs(state, "disp-1")
        assert stored.timestamp == expected


class TestRejectedRequests:
    @pytest.mark.parametrize("bad", ["bad.uuid", "a" * 65, "-x", "%2E%2E", "a%00b", "sp%20ace"])
    @pytest.mark.parametrize("kind", ["heartbeat", "health", "logs"])
    async def test_bad_uuid_is_400_and_registers_nothing(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, bad: str, kind: str
    ) -> None:
        body: Any = log("info", "x") if kind == "logs" else {}
        response = await client.post(f"/api/clients/{bad}/{kind}", json=body, headers=superadmin)
        assert response.status_code == 400
        assert response.json() == {"error": "Invalid client uuid"}
        assert await client_count(state) == 0

    async def test_64_character_uuid_is_fine(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        response = await client.post(f"/api/clients/{'a' * 64}/heartbeat", headers=superadmin)
        assert response.status_code == 204

    async def test_encoded_slash_traversal_matches_no_route(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        response = await client.post("/api/clients/..%2Fx/heartbeat", headers=superadmin)
        assert response.status_code == 404
        assert response.json() == {"error": "Not found"}
        assert await client_count(state) == 0

    async def test_body_too_large_by_content_length_is_413(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        headers = {**superadmin, "Content-Type": "application/json", "Content-Length": str(64 * 1024 * 1024)}
        response = await client.post("/api/clients/disp-1/logs", content=b"[]", headers=headers)
        assert response.status_code == 413
        assert response.json() == {"error": "Request body too large"}
        assert await client_count(state) == 0

    async def test_streamed_body_too_large_is_413(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        chunk = b" " * (1024 * 1024)

        async def body() -> AsyncIterator[bytes]:
            yield b"["
            for _ in range(40):
                yield chunk
            yield b"]"

        headers = {**superadmin, "Content-Type": "application/json"}
        response = await client.post("/api/clients/disp-1/logs", content=body(), headers=headers)
        assert response.status_code == 413
        assert response.json() == {"error": "Request body too large"}
        assert await client_count(state) == 0

    async def test_malformed_json_is_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        headers = {**superadmin, "Content-Type": "application/json"}
        response = await client.post("/api/clients/disp-1/logs", content=b'{"level": "info",', headers=headers)
        assert response.status_code == 400
        assert response.json()["error"] == "Malformed JSON body"
        assert await client_count(state) == 0
