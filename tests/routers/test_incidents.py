"""Status history, uptime and incidents over the API (SPEC §12), on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.services.evaluator import StatusEvaluator
from app.state import AppState
from tests.conftest import Clock, TokenMaker
from tests.helpers import heartbeat

pytestmark = pytest.mark.usefixtures("backend")

GRACE = 60
CONFIRM = 30


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"HEARTBEAT_GRACE_PERIOD_PROD": GRACE, "STATUS_CONFIRM_SECONDS": CONFIRM, "RECOVERY_HEARTBEATS": 2}


@pytest.fixture
async def evaluator(state: AppState) -> AsyncIterator[StatusEvaluator]:
    evaluator = StatusEvaluator(state)
    yield evaluator
    await evaluator.release()


@pytest.fixture
async def device(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("device")


async def outage(
    client: httpx.AsyncClient,
    device: dict[str, str],
    evaluator: StatusEvaluator,
    clock: Clock,
    uuid: str,
    *,
    keep_alive: tuple[str, ...] = (),
) -> None:
    """Seen healthy, then silent past the grace period and the confirm time: one incident opened.

    The displays of `keep_alive` send a heartbeat before every pass meanwhile.
    """
    await heartbeat(client, device, uuid)
    for seconds in (0, GRACE + 1, CONFIRM):
        clock.advance(seconds)
        for other in keep_alive:
            await heartbeat(client, device, other)
        await evaluator.run_pass()


async def recovery(
    client: httpx.AsyncClient, device: dict[str, str], evaluator: StatusEvaluator, clock: Clock, uuid: str
) -> None:
    for _ in range(2):
        clock.advance(10)
        await heartbeat(client, device, uuid)
        await evaluator.run_pass()


class TestStatusHistory:
    async def test_transitions_with_reasons_and_the_uptime(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        device: dict[str, str],
        evaluator: StatusEvaluator,
        clock: Clock,
    ) -> None:
        start = clock()
        await outage(client, device, evaluator, clock, "disp-1")
        await recovery(client, device, evaluator, clock, "disp-1")
        clock.advance(3600 - (clock() - start).total_seconds())
        response = await client.get("/api/clients/disp-1/status-history", headers=superadmin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["hours"] == 24
        assert [(t["from"], t["to"], t["reasons"]) for t in body["transitions"]] == [
            ("healthy", "offline", ["heartbeat_late"]),
            ("offline", "healthy", []),
        ]
        assert set(body["transitions"][0]) == {
            "from",
            "to",
            "at",
            "reasons",
            "screenshot_hash",
            "priority_screenshot_hash",
        }
        # Offline from grace + 1 s (first seen offline) to the second heartbeat: 61 s .. 111 s of one hour.
        detail = (await client.get("/api/clients/disp-1", headers=superadmin)).json()
        assert detail["uptime_24h"] == pytest.approx(1 - 50 / 3600)
        assert detail["uptime_7d"] == detail["uptime_30d"] == detail["uptime_24h"]
        # A window that ends before the outage holds none of it.
        clock.advance(2 * 3600)
        later = await client.get("/api/clients/disp-1/status-history?hours=1", headers=superadmin)
        assert later.json()["transitions"] == []

    async def test_a_display_never_evaluated_has_no_uptime_and_an_unknown_one_is_404(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], device: dict[str, str]
    ) -> None:
        await heartbeat(client, device, "fresh")
        detail = (await client.get("/api/clients/fresh", headers=superadmin)).json()
        assert (detail["uptime_24h"], detail["uptime_7d"], detail["uptime_30d"]) == (None, None, None)
        history = await client.get("/api/clients/fresh/status-history", headers=superadmin)
        assert history.json()["transitions"] == []
        missing = await client.get("/api/clients/nobody/status-history", headers=superadmin)
        assert (missing.status_code, missing.json()) == (404, {"error": "Client not found"})

    @pytest.mark.parametrize("query", ["hours=0", "hours=x", "hours=1.5"])
    async def test_bad_hours_are_400(self, client: httpx.AsyncClient, superadmin: dict[str, str], query: str) -> None:
        response = await client.get(f"/api/clients/disp-1/status-history?{query}", headers=superadmin)
        assert response.status_code == 400
        assert "error" in response.json()

    async def test_users_may_not_read_it(self, client: httpx.AsyncClient, make_token: TokenMaker) -> None:
        user = await make_token("user")
        response = await client.get("/api/clients/disp-1/status-history", headers=user)
        assert response.status_code == 403


class TestIncidents:
    async def test_list_filter_and_acknowledge(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        device: dict[str, str],
        make_token: TokenMaker,
        evaluator: StatusEvaluator,
        clock: Clock,
    ) -> None:
        group = await client.post("/api/client-groups", json={"name": "Lobby"}, headers=superadmin)
        group_id = group.json()["id"]
        await heartbeat(client, device, "lobby-1")
        patched = await client.patch("/api/clients/lobby-1", json={"group_id": group_id}, headers=superadmin)
        assert patched.status_code == 200
        await outage(client, device, evaluator, clock, "lobby-1")
        await recovery(client, device, evaluator, clock, "lobby-1")
        closed_at = clock()
        clock.advance(10)
        await outage(client, device, evaluator, clock, "other-1", keep_alive=("lobby-1",))

        listed = (await client.get("/api/incidents", headers=superadmin)).json()
        assert [(i["client_uuid"], i["open"]) for i in listed["incidents"]] == [("other-1", True), ("lobby-1", False)]
        assert listed["count"] == 2
        lobby = listed["incidents"][1]
        assert (lobby["group_id"], lobby["status"], lobby["reasons"]) == (group_id, "offline", ["heartbeat_late"])
        assert lobby["closed_at"] == closed_at.isoformat()

        async def uuids(query: str) -> list[str]:
            response = await client.get(f"/api/incidents?{query}", headers=superadmin)
            assert response.status_code == 200, response.text
            return [incident["client_uuid"] for incident in response.json()["incidents"]]

        assert await uuids("open=true") == ["other-1"]
        assert await uuids("open=false") == ["lobby-1"]
        assert await uuids(f"group_id={group_id}") == ["lobby-1"]
        assert await uuids("client_uuid=lobby-1") == ["lobby-1"]
        assert await uuids("client_uuid=other-1&open=true") == ["other-1"]
        assert await uuids("client_uuid=nobody") == []
        assert await uuids(f"since={closed_at.isoformat().replace('+00:00', 'Z')}") == ["other-1", "lobby-1"]
        after = clock().replace(microsecond=0).isoformat().replace("+00:00", "Z")
        assert await uuids(f"since={after}") == ["other-1"]
        assert await uuids("limit=1") == ["other-1"]

        admin = await make_token("admin", name="on-call")
        incident_id = listed["incidents"][0]["id"]
        acked = await client.post(f"/api/incidents/{incident_id}/ack", headers=admin)
        assert acked.status_code == 200, acked.text
        assert (acked.json()["acknowledged_by"], acked.json()["acknowledged_at"]) == ("on-call", clock().isoformat())
        clock.advance(60)
        again = await client.post(f"/api/incidents/{incident_id}/ack", headers=superadmin)
        assert again.json()["acknowledged_by"] == "on-call"
        missing = await client.post("/api/incidents/999999/ack", headers=superadmin)
        assert (missing.status_code, missing.json()) == (404, {"error": "Incident not found"})

    @pytest.mark.parametrize(
        "query", ["open=maybe", "group_id=0", "since=yesterday", "limit=0", "client_uuid=no%20spaces"]
    )
    async def test_bad_filters_are_400(self, client: httpx.AsyncClient, superadmin: dict[str, str], query: str) -> None:
        response = await client.get(f"/api/incidents?{query}", headers=superadmin)
        assert response.status_code == 400
        assert "error" in response.json()

    async def test_admin_only(self, client: httpx.AsyncClient, make_token: TokenMaker) -> None:
        editor = await make_token("editor")
        assert (await client.get("/api/incidents", headers=editor)).status_code == 403
        assert (await client.post("/api/incidents/1/ack", headers=editor)).status_code == 403
        assert (await client.get("/api/incidents")).status_code == 401
