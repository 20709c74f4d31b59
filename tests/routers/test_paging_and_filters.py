"""Paging one client's logs with a cursor, and filtering the client list and the overview (issue 11)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.state import AppState
from tests.conftest import Clock
from tests.helpers import heartbeat, log, post_logs, set_client

pytestmark = pytest.mark.usefixtures("backend")

LOGS = "/api/client-logs/disp-1/logs"


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def pages(http: httpx.AsyncClient, headers: dict[str, str], query: str) -> list[dict[str, Any]]:
    """Every page of a log query, following `next_cursor` until it is null."""
    bodies = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = await http.get(f"{LOGS}?{query}{suffix}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        bodies.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return bodies
        assert len(bodies) < 50, "the cursor does not advance"


class TestLogCursor:
    async def test_pages_cover_every_log_once_in_order_ties_broken_by_id(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        base = clock() - timedelta(hours=1)
        # Three logs share each timestamp, so a page boundary falls inside a tie.
        entries = [log("info", f"m{i}", base + timedelta(minutes=i // 3)) for i in range(11)]
        await post_logs(client, superadmin, "disp-1", entries)
        everything = (await client.get(f"{LOGS}?limit=100", headers=superadmin)).json()
        assert everything["next_cursor"] is None
        assert len(everything["logs"]) == 11

        bodies = await pages(client, superadmin, "limit=4")
        assert [body["count"] for body in bodies] == [4, 4, 3]
        paged = [entry for body in bodies for entry in body["logs"]]
        assert [entry["id"] for entry in paged] == [entry["id"] for entry in everything["logs"]]
        assert len({entry["id"] for entry in paged}) == 11

    async def test_a_full_last_page_has_no_cursor(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("info", f"m{i}", clock()) for i in range(4)])
        bodies = await pages(client, superadmin, "limit=2")
        assert [body["count"] for body in bodies] == [2, 2]

    async def test_cursor_keeps_level_and_since(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        base = clock() - timedelta(hours=5)
        entries = [log("error" if i % 2 else "info", f"m{i}", base + timedelta(minutes=10 * i)) for i in range(20)]
        await post_logs(client, superadmin, "disp-1", entries)
        since = (base + timedelta(minutes=45)).isoformat().replace("+00:00", "Z")
        bodies = await pages(client, superadmin, f"level=error&limit=3&since={since}")
        messages = [entry["message"] for body in bodies for entry in body["logs"]]
        assert messages == [f"m{i}" for i in range(19, 4, -2)]

    @pytest.mark.parametrize(
        "cursor",
        [
            "nonsense",
            "%00",
            "",
            "bm90LWEtY3Vyc29y",  # not-a-cursor
            "MjAyNi0wMS0wMXwx",  # a naive timestamp
            "eA",
            cursor_of("2026-03-09T00:00:00+00:00|99999999999999999999"),  # beyond BIGINT
            cursor_of("0001-01-01T00:00:00+01:00|1"),  # before year 1 in UTC
            cursor_of("2026-03-09T00:00:00+00:00|\u00b2"),  # a digit, but not an ASCII one
        ],
    )
    async def test_a_cursor_we_did_not_give_is_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, cursor: str
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("info", "m", clock())])
        response = await client.get(f"{LOGS}?cursor={cursor}", headers=superadmin)
        assert response.status_code == 400
        assert response.json()["error"] == "Invalid cursor"

    async def test_past_the_oldest_log_is_an_empty_page_and_unknown_client_404(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("info", f"m{i}", clock()) for i in range(2)])
        first = (await client.get(f"{LOGS}?limit=1", headers=superadmin)).json()
        second = (await client.get(f"{LOGS}?limit=1&cursor={first['next_cursor']}", headers=superadmin)).json()
        assert second["count"] == 1
        assert second["next_cursor"] is None
        unknown = await client.get(f"/api/client-logs/nobody/logs?cursor={first['next_cursor']}", headers=superadmin)
        assert unknown.status_code == 404


async def arrange_fleet(http: httpx.AsyncClient, headers: dict[str, str], state: AppState, clock: Clock) -> int:
    """lobby-1 healthy in group Hall, cafe-2 critical in Hall, Office-3 offline and ungrouped."""
    group = await http.post("/api/client-groups", json={"name": "Hall"}, headers=headers)
    group_id = int(group.json()["id"])
    await heartbeat(http, headers, "lobby-1", {"hostname": "infoscreen-LOBBY"})
    await heartbeat(http, headers, "cafe-2", {"hostname": "cafe_100%", "process_status": "crashed"})
    await heartbeat(http, headers, "Office-3", {"hostname": "office"})
    for uuid, description in (("lobby-1", "Main entrance"), ("cafe-2", "Cafeteria")):
        response = await http.patch(
            f"/api/clients/{uuid}", json={"group_id": group_id, "description": description}, headers=headers
        )
        assert response.status_code == 200
    await set_client(state, "Office-3", last_alive=clock() - timedelta(hours=1))
    return group_id


class TestClientFilters:
    @pytest.mark.parametrize("path", ["/api/clients", "/api/client-logs/monitoring-overview"])
    async def test_each_filter_alone_and_together(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock, path: str
    ) -> None:
        group_id = await arrange_fleet(client, superadmin, state, clock)

        async def uuids(query: str) -> list[str]:
            response = await client.get(f"{path}?{query}", headers=superadmin)
            assert response.status_code == 200, response.text
            return [entry["uuid"] for entry in response.json()["clients"]]

        assert sorted(await uuids("")) == ["Office-3", "cafe-2", "lobby-1"]
        assert await uuids(f"group_id={group_id}") == ["cafe-2", "lobby-1"]
        assert await uuids(f"group_id={group_id + 1}") == []
        assert await uuids("status=offline") == ["Office-3"]
        assert await uuids("status=critical") == ["cafe-2"]
        assert await uuids("status=warning") == []
        assert await uuids("q=lobby") == ["lobby-1"]  # hostname, any case
        assert await uuids("q=ENTRANCE") == ["lobby-1"]  # description
        assert await uuids("q=office-") == ["Office-3"]  # uuid
        assert await uuids("q=100%25") == ["cafe-2"]  # a % is a character, not a wildcard
        assert await uuids("q=y_1") == []  # nor is an underscore (it would match lobby-1)
        assert await uuids(f"group_id={group_id}&status=healthy&q=main") == ["lobby-1"]
        assert await uuids(f"group_id={group_id}&status=offline") == []

    async def test_overview_summary_counts_the_clients_that_match(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        group_id = await arrange_fleet(client, superadmin, state, clock)
        await post_logs(client, superadmin, "cafe-2", [log("error", "boom", clock())])
        await post_logs(client, superadmin, "Office-3", [log("error", "boom", clock())])
        everything = (await client.get("/api/client-logs/monitoring-overview", headers=superadmin)).json()
        assert everything["summary"]["totalClients"] == 3
        assert everything["summary"]["errorLogs"] == 2
        body = (
            await client.get(f"/api/client-logs/monitoring-overview?group_id={group_id}", headers=superadmin)
        ).json()
        assert set(body) == set(everything)
        assert body["summary"] == {
            "totalClients": 2,
            "onlineClients": 2,
            "offlineClients": 0,
            "healthyClients": 1,
            "warningClients": 0,
            "criticalClients": 1,
            "errorLogs": 1,
            "warnLogs": 0,
            "activePriorityScreenshots": 0,
        }

    @pytest.mark.parametrize(
        "query", ["status=broken", "status=", "group_id=0", "group_id=x", "q=%00", f"q={'x' * 101}"]
    )
    @pytest.mark.parametrize("path", ["/api/clients", "/api/client-logs/monitoring-overview"])
    async def test_bad_filter_values_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], path: str, query: str
    ) -> None:
        response = await client.get(f"{path}?{query}", headers=superadmin)
        assert response.status_code == 400, response.text
        assert set(response.json()) >= {"error"}
