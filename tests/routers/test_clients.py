"""Client and group management (SPEC §9, management) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.models import ClientLog, LatestLog, LogCountHourly, LogCountSixHourly, LogTotal, Screenshot
from app.state import AppState
from tests.conftest import Clock, TokenMaker
from tests.helpers import UTC_SUFFIX, heartbeat, log, post_logs, set_client

pytestmark = pytest.mark.usefixtures("backend")

CLIENT_FIELDS = {
    "uuid",
    "hostname",
    "description",
    "ip",
    "model",
    "group_id",
    "group_name",
    "registration_time",
    "last_alive",
    "is_active",
    "is_alive",
    "status",
    "status_reasons",
    "current_event_id",
    "current_process",
    "process_status",
    "process_pid",
    "screen_health_status",
    "detected_screen_health",
    "detected_screen_health_reason",
    "last_screenshot_analyzed",
    "last_screenshot_hash",
    "latest_screenshot_type",
    "last_priority_screenshot_type",
    "last_priority_received_at",
    "last_priority_screenshot_hash",
}


@pytest.fixture
async def admin(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("admin")


async def create_group(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await http.post("/api/client-groups", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


class TestClientRead:
    async def test_list_has_every_field_and_count(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        await heartbeat(client, admin, "disp-1", {"hostname": "lobby", "process_status": "running"})
        await heartbeat(client, admin, "disp-2")
        response = await client.get("/api/clients", headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 2
        first = body["clients"][0]
        assert set(first) == CLIENT_FIELDS
        assert first["uuid"] == "disp-1"
        assert first["hostname"] == "lobby"
        assert first["is_active"] is True
        assert first["is_alive"] is True
        assert first["status"] == "healthy"
        assert first["last_alive"] == clock().isoformat()
        assert first["registration_time"].endswith(UTC_SUFFIX)

    async def test_every_timestamp_is_utc_with_offset(
        self, client: httpx.AsyncClient, admin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, admin, "disp-1")
        moment = datetime(2026, 3, 9, 20, 30, 15, 250000, tzinfo=UTC)
        await set_client(
            state,
            "disp-1",
            last_screenshot_analyzed=moment,
            last_priority_received_at=moment,
            last_priority_screenshot_type="event_start",
        )
        body = (await client.get("/api/clients/disp-1", headers=admin)).json()
        for name in ("registration_time", "last_alive"):
            assert body[name] == clock().isoformat()
        for name in ("last_screenshot_analyzed", "last_priority_received_at"):
            assert body[name] == "2026-03-09T20:30:15.250000+00:00"

    async def test_empty_list(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        assert (await client.get("/api/clients", headers=admin)).json() == {"clients": [], "count": 0}

    async def test_status_is_over_the_last_24_hours(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await heartbeat(client, admin, "recent-error")
        await post_logs(client, admin, "recent-error", [log("error", "e", now - timedelta(hours=23))])
        await heartbeat(client, admin, "old-error")
        await post_logs(client, admin, "old-error", [log("error", "e", now - timedelta(hours=25))])
        statuses = {c["uuid"]: c["status"] for c in (await client.get("/api/clients", headers=admin)).json()["clients"]}
        assert statuses == {"recent-error": "critical", "old-error": "healthy"}

    async def test_one_client(self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock) -> None:
        await heartbeat(client, admin, "disp-1", {"model": "Pi 4"})
        clock.advance(171)
        response = await client.get("/api/clients/disp-1", headers=admin)
        assert response.status_code == 200
        body = response.json()
        # One client also has its uptime (null until the status evaluator has seen it).
        assert set(body) == CLIENT_FIELDS | {"uptime_24h", "uptime_7d", "uptime_30d"}
        assert body["uptime_24h"] is None
        assert body["model"] == "Pi 4"
        assert (body["is_alive"], body["status"], body["status_reasons"]) == (False, "offline", ["heartbeat_late"])

    async def test_unknown_client_is_404(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        response = await client.get("/api/clients/nobody", headers=admin)
        assert response.status_code == 404
        assert response.json() == {"error": "Client not found"}

    @pytest.mark.parametrize("bad", ["bad.uuid", "a" * 65, "_x"])
    async def test_bad_uuid_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], bad: str) -> None:
        response = await client.get(f"/api/clients/{bad}", headers=admin)
        assert response.status_code == 400
        assert response.json() == {"error": "Invalid client uuid"}


class TestClientUpdate:
    async def test_description(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await heartbeat(client, admin, "disp-1", {"hostname": "lobby"})
        response = await client.patch("/api/clients/disp-1", json={"description": "Lobby"}, headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert body["description"] == "Lobby"
        assert body["hostname"] == "lobby"
        assert (await client.get("/api/clients/disp-1", headers=admin)).json()["description"] == "Lobby"

    async def test_description_null_clears_it(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await heartbeat(client, admin, "disp-1")
        await client.patch("/api/clients/disp-1", json={"description": "Lobby"}, headers=admin)
        body = (await client.patch("/api/clients/disp-1", json={"description": None}, headers=admin)).json()
        assert body["description"] is None

    async def test_group_and_ungroup(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        group = await create_group(client, admin, "Hall")
        await heartbeat(client, admin, "disp-1")
        await client.patch("/api/clients/disp-1", json={"description": "keep me"}, headers=admin)
        body = (await client.patch("/api/clients/disp-1", json={"group_id": group["id"]}, headers=admin)).json()
        assert (body["group_id"], body["group_name"]) == (group["id"], "Hall")
        body = (await client.patch("/api/clients/disp-1", json={"group_id": None}, headers=admin)).json()
        assert (body["group_id"], body["group_name"]) == (None, None)
        assert body["description"] == "keep me"

    async def test_empty_patch_changes_nothing(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        group = await create_group(client, admin, "Hall")
        await heartbeat(client, admin, "disp-1")
        await client.patch("/api/clients/disp-1", json={"group_id": group["id"], "description": "d"}, headers=admin)
        body = (await client.patch("/api/clients/disp-1", json={}, headers=admin)).json()
        assert (body["group_id"], body["description"]) == (group["id"], "d")

    async def test_unknown_group_is_400(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await heartbeat(client, admin, "disp-1")
        response = await client.patch("/api/clients/disp-1", json={"group_id": 9999}, headers=admin)
        assert response.status_code == 400
        assert response.json() == {"error": "Group not found"}

    async def test_deactivate_makes_offline_and_heartbeat_does_not_reactivate(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await heartbeat(client, admin, "disp-1")
        body = (await client.patch("/api/clients/disp-1", json={"is_active": False}, headers=admin)).json()
        assert (body["is_active"], body["is_alive"], body["status"]) == (False, False, "offline")
        await heartbeat(client, admin, "disp-1")
        assert (await client.get("/api/clients/disp-1", headers=admin)).json()["is_active"] is False
        body = (await client.patch("/api/clients/disp-1", json={"is_active": True}, headers=admin)).json()
        assert (body["is_active"], body["is_alive"]) == (True, True)

    @pytest.mark.parametrize(
        "patch",
        [
            {"hostname": "sneaky"},
            {"uuid": "other"},
            {"is_active": "perhaps"},
            {"is_active": None},
            {"group_id": "one"},
            {"description": "x" * 256},
            {"description": "nul\x00"},
        ],
    )
    async def test_bad_or_extra_fields_are_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], patch: dict[str, Any]
    ) -> None:
        await heartbeat(client, admin, "disp-1", {"hostname": "lobby"})
        response = await client.patch("/api/clients/disp-1", json=patch, headers=admin)
        assert response.status_code == 400
        assert "error" in response.json()
        assert (await client.get("/api/clients/disp-1", headers=admin)).json()["hostname"] == "lobby"

    async def test_unknown_client_is_404(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        response = await client.patch("/api/clients/nobody", json={"description": "x"}, headers=admin)
        assert response.status_code == 404
        assert response.json() == {"error": "Client not found"}

    async def test_bad_uuid_is_400(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        response = await client.patch("/api/clients/bad.uuid", json={"description": "x"}, headers=admin)
        assert response.status_code == 400


async def count_rows(state: AppState, model: Any, *where: Any) -> int:
    async with state.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class TestClientDelete:
    async def test_superadmin_deletes_client_logs_counts_and_screenshots(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        now = clock()
        await heartbeat(client, superadmin, "doomed")
        await post_logs(
            client, superadmin, "doomed", [log("error", "e", now), log("warn", "w", now - timedelta(hours=3))]
        )
        await post_logs(client, superadmin, "kept", [log("error", "e", now), log("info", "i", now)])
        state.settings.screenshots_dir.mkdir(parents=True, exist_ok=True)
        image = state.settings.screenshots_dir / "doomed-1.png"
        image.write_bytes(b"\x89PNG fake")
        async with state.session_factory() as session, session.begin():
            session.add(
                Screenshot(
                    client_uuid="doomed",
                    screenshot_type="periodic",
                    received_at=now,
                    hash="0" * 64,
                    size=9,
                    format="png",
                    filename=image.name,
                )
            )
        assert (await client.get("/api/client-logs/test")).json()["total_logs"] == 4

        response = await client.delete("/api/clients/doomed", headers=superadmin)
        assert response.status_code == 204
        assert response.content == b""

        assert (await client.get("/api/clients/doomed", headers=superadmin)).status_code == 404
        assert await count_rows(state, ClientLog, col(ClientLog.client_uuid) == "doomed") == 0
        assert await count_rows(state, LogCountHourly, col(LogCountHourly.client_uuid) == "doomed") == 0
        assert await count_rows(state, LogCountSixHourly, col(LogCountSixHourly.client_uuid) == "doomed") == 0
        assert await count_rows(state, LatestLog, col(LatestLog.client_uuid) == "doomed") == 0
        assert await count_rows(state, LatestLog) == 1  # the other client keeps its pointers
        assert await count_rows(state, Screenshot) == 0
        assert not image.exists()
        test = (await client.get("/api/client-logs/test")).json()
        assert test["total_logs"] == 2
        assert test["counts"] == {"ERROR": 1, "WARN": 0, "INFO": 1}
        async with state.session_factory() as session:
            rows = (await session.execute(select(col(LogTotal.level), col(LogTotal.count)))).all()
        totals = {str(row[0]): int(row[1]) for row in rows}
        assert totals.get("WARN", 0) == 0
        summary = (await client.get("/api/client-logs/summary", headers=superadmin)).json()["summary"]
        assert list(summary) == ["kept"]

    async def test_deleted_client_registers_again_on_next_message(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        await heartbeat(client, superadmin, "disp-1", {"hostname": "old"})
        await client.patch("/api/clients/disp-1", json={"is_active": False}, headers=superadmin)
        assert (await client.delete("/api/clients/disp-1", headers=superadmin)).status_code == 204
        clock.advance(60)
        await heartbeat(client, superadmin, "disp-1")
        body = (await client.get("/api/clients/disp-1", headers=superadmin)).json()
        assert (body["hostname"], body["is_active"], body["registration_time"]) == (None, True, clock().isoformat())

    async def test_admin_may_not_delete(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await heartbeat(client, admin, "disp-1")
        response = await client.delete("/api/clients/disp-1", headers=admin)
        assert response.status_code == 403
        assert (await client.get("/api/clients/disp-1", headers=admin)).status_code == 200

    async def test_unknown_client_is_404(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        response = await client.delete("/api/clients/nobody", headers=superadmin)
        assert response.status_code == 404
        assert response.json() == {"error": "Client not found"}

    async def test_bad_uuid_is_400(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        assert (await client.delete("/api/clients/bad.uuid", headers=superadmin)).status_code == 400


class TestGroups:
    async def test_create_list_with_client_counts(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        hall = await create_group(client, admin, "Hall")
        assert set(hall) == {"id", "name", "client_count"}
        assert (hall["name"], hall["client_count"]) == ("Hall", 0)
        empty = await create_group(client, admin, "attic")
        for uuid in ("a", "b"):
            await heartbeat(client, admin, uuid)
            await client.patch(f"/api/clients/{uuid}", json={"group_id": hall["id"]}, headers=admin)
        response = await client.get("/api/client-groups", headers=admin)
        assert response.status_code == 200
        assert response.json() == {
            "groups": [
                {"id": empty["id"], "name": "attic", "client_count": 0},
                {"id": hall["id"], "name": "Hall", "client_count": 2},
            ]
        }

    async def test_duplicate_name_is_409(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await create_group(client, admin, "Hall")
        response = await client.post("/api/client-groups", json={"name": "Hall"}, headers=admin)
        assert response.status_code == 409
        assert "error" in response.json()
        assert len((await client.get("/api/client-groups", headers=admin)).json()["groups"]) == 1

    async def test_rename(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        group = await create_group(client, admin, "Hall")
        await heartbeat(client, admin, "a")
        await client.patch("/api/clients/a", json={"group_id": group["id"]}, headers=admin)
        response = await client.patch(f"/api/client-groups/{group['id']}", json={"name": "Aula"}, headers=admin)
        assert response.status_code == 200
        assert response.json() == {"id": group["id"], "name": "Aula", "client_count": 1}
        assert (await client.get("/api/clients/a", headers=admin)).json()["group_name"] == "Aula"

    async def test_rename_to_taken_name_is_409_and_keeps_name(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await create_group(client, admin, "Hall")
        other = await create_group(client, admin, "Aula")
        response = await client.patch(f"/api/client-groups/{other['id']}", json={"name": "Hall"}, headers=admin)
        assert response.status_code == 409
        names = sorted(g["name"] for g in (await client.get("/api/client-groups", headers=admin)).json()["groups"])
        assert names == ["Aula", "Hall"]

    async def test_rename_to_own_name_is_fine(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        group = await create_group(client, admin, "Hall")
        response = await client.patch(f"/api/client-groups/{group['id']}", json={"name": "Hall"}, headers=admin)
        assert response.status_code == 200

    async def test_delete_ungroups_clients(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        group = await create_group(client, admin, "Hall")
        await heartbeat(client, admin, "a")
        await client.patch("/api/clients/a", json={"group_id": group["id"]}, headers=admin)
        response = await client.delete(f"/api/client-groups/{group['id']}", headers=admin)
        assert response.status_code == 204
        body = (await client.get("/api/clients/a", headers=admin)).json()
        assert (body["group_id"], body["group_name"]) == (None, None)
        assert (await client.get("/api/client-groups", headers=admin)).json() == {"groups": []}

    @pytest.mark.parametrize("method", ["PATCH", "DELETE"])
    async def test_unknown_group_is_404(self, client: httpx.AsyncClient, admin: dict[str, str], method: str) -> None:
        body = {"name": "x"} if method == "PATCH" else None
        response = await client.request(method, "/api/client-groups/4242", json=body, headers=admin)
        assert response.status_code == 404
        assert response.json() == {"error": "Group not found"}

    @pytest.mark.parametrize("group_id", ["0", "-1", "abc", str(2**40)])
    async def test_bad_group_id_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], group_id: str) -> None:
        response = await client.delete(f"/api/client-groups/{group_id}", headers=admin)
        assert response.status_code == 400

    @pytest.mark.parametrize(
        "body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": 5}, {"name": "a", "x": 1}, {"name": "a\x00"}]
    )
    async def test_bad_body_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], body: Any) -> None:
        response = await client.post("/api/client-groups", json=body, headers=admin)
        assert response.status_code == 400
        assert "error" in response.json()
