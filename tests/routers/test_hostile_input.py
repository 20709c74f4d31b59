"""Nothing a display sends can break what operators read (SPEC §5), over HTTP, on SQLite and PostgreSQL.

Stored values that no longer pass ingest (rows from before the bounds) are written straight into the
database and every read endpoint must still answer 200 with valid JSON.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from app.models import ClientLog
from app.state import AppState
from tests.conftest import Clock, TokenMaker
from tests.helpers import log, post_logs

pytestmark = pytest.mark.usefixtures("backend")

INVALID_TIMESTAMP = {"error": "Invalid timestamp format. Use ISO 8601"}
TRUNCATED = {"truncated": True}
CALM_CONTEXT = {"retry_count": 2, "source": {"name": "player", "tags": ["a", "ü"]}}


def nested(depth: int) -> dict[str, Any]:
    """`{"a": {"a": ... {"a": 1}}}` with `depth` levels of objects."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


def nested_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture
async def admin(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("admin")


async def read_everything(http: httpx.AsyncClient, headers: dict[str, str], client_uuid: str) -> dict[str, Any]:
    """Every read endpoint that shows logs or clients: each must answer 200 with valid JSON."""
    paths = {
        "overview": "/api/client-logs/monitoring-overview",
        "recent_errors": "/api/client-logs/recent-errors",
        "summary": "/api/client-logs/summary",
        "logs": f"/api/client-logs/{client_uuid}/logs",
        "test": "/api/client-logs/test",
        "clients": "/api/clients",
        "client": f"/api/clients/{client_uuid}",
    }
    bodies = {}
    for name, path in paths.items():
        response = await http.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        bodies[name] = json.loads(response.content)  # strict: NaN or Infinity would not parse as JSON here
    return bodies


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


class TestStoredContextAlwaysSerializes:
    @pytest.mark.parametrize(
        ("stored", "read"),
        [
            (nested_text(33), TRUNCATED),
            (nested_text(250), TRUNCATED),  # the report: orjson's "Recursion limit reached" on every read
            (nested_text(5000), TRUNCATED),  # beyond what orjson and the standard library decode
            ('{"n":NaN,"i":Infinity}', {"n": None, "i": None}),
            ('{"big":123456789012345678901234567890123456789}', {"big": 1.2345678901234568e38}),
            ("[1, 2]", {"raw": "[1, 2]"}),
            ("not json {", {"raw": "not json {"}),
        ],
        ids=["depth-33", "depth-250", "depth-5000", "nan", "huge-int", "array", "text"],
    )
    async def test_every_read_answers_and_the_other_clients_are_intact(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        stored: str,
        read: dict[str, Any],
    ) -> None:
        await post_logs(client, superadmin, "calm", [log("error", "calm error", clock(), context=CALM_CONTEXT)])
        await post_logs(client, superadmin, "hostile", [log("error", "hostile", clock() + timedelta(seconds=1))])
        async with state.session_factory() as session, session.begin():
            await session.execute(
                update(ClientLog).where(col(ClientLog.client_uuid) == "hostile").values(context=stored)
            )

        for reader in ("calm", "hostile"):
            bodies = await read_everything(client, superadmin, reader)
            for response_body in bodies.values():
                _strict_json(json.dumps(response_body))
        overview = {entry["uuid"]: entry for entry in bodies["overview"]["clients"]}
        assert overview["hostile"]["latestLog"]["context"] == read
        assert overview["hostile"]["latestError"]["context"] == read
        assert overview["calm"]["latestError"]["context"] == CALM_CONTEXT
        errors = {entry["client_uuid"]: entry["context"] for entry in bodies["recent_errors"]["errors"]}
        assert errors == {"hostile": read, "calm": CALM_CONTEXT}
        assert [entry["context"] for entry in bodies["logs"]["logs"]] == [read]
        assert [entry["message"] for entry in bodies["test"]["recent_5"]] == ["hostile", "calm error"]
        assert bodies["summary"]["summary"]["calm"]["counts"]["ERROR"] == 1


class TestContextDepthAtIngest:
    async def test_a_context_deeper_than_32_levels_is_stored_truncated(
        self, client: httpx.AsyncClient, admin: dict[str, str], state: AppState
    ) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "deep", context=nested(33))])
        await post_logs(client, admin, "disp-1", [log("info", "just fits", context=nested(32))])
        async with state.session_factory() as session:
            rows = (await session.execute(select(col(ClientLog.message), col(ClientLog.context)))).all()
        stored = {str(message): str(context) for message, context in rows}
        assert json.loads(stored["deep"]) == TRUNCATED
        assert json.loads(stored["just fits"]) == nested(32)
        response = await client.get("/api/client-logs/disp-1/logs", headers=admin)
        contexts = {entry["message"]: entry["context"] for entry in response.json()["logs"]}
        assert contexts == {"deep": TRUNCATED, "just fits": nested(32)}

    async def test_nan_and_huge_numbers_in_a_context_are_stored_as_json(
        self, client: httpx.AsyncClient, admin: dict[str, str], state: AppState
    ) -> None:
        body = '{"level": "info", "message": "odd", "context": {"n": NaN, "i": 1e400, "big": ' + "9" * 30 + "}}"
        response = await client.post(
            "/api/clients/disp-1/logs", content=body, headers={**admin, "Content-Type": "application/json"}
        )
        assert response.status_code == 202, response.text
        async with state.session_factory() as session:
            [text] = (await session.execute(select(col(ClientLog.context)))).scalars().all()
        assert text is not None
        assert _strict_json(text) == {"n": None, "i": None, "big": 1e30}


class TestTimestampBounds:
    @pytest.mark.parametrize(
        "since",
        [
            "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
            "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
            "9999-12-31T23:45:00Z",  # inside Python, but the window's bucket arithmetic would overflow
            "",
            " ",
            "0",
        ],
    )
    async def test_since_outside_what_is_stored_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], since: str
    ) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "x")])
        response = await client.get("/api/client-logs/disp-1/logs", params={"since": since}, headers=admin)
        assert response.status_code == 400
        assert response.json() == INVALID_TIMESTAMP

    @pytest.mark.parametrize(
        "timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z", 0, 1.5, True]
    )
    async def test_a_log_timestamp_outside_what_is_stored_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], state: AppState, timestamp: Any
    ) -> None:
        entry = {"level": "info", "message": "x", "timestamp": timestamp}
        for body in (entry, [log("info", "good"), entry]):
            response = await client.post("/api/clients/disp-1/logs", json=body, headers=admin)
            assert response.status_code == 400
            assert response.json() == INVALID_TIMESTAMP
        async with state.session_factory() as session:
            assert (await session.execute(select(ClientLog))).first() is None

    async def test_the_earliest_accepted_time_is_stored_and_read_back(
        self, client: httpx.AsyncClient, admin: dict[str, str], make_token: TokenMaker
    ) -> None:
        await post_logs(client, admin, "disp-1", [{"level": "error", "message": "old", "timestamp": "0001-01-02"}])
        response = await client.get(
            "/api/client-logs/disp-1/logs", params={"since": "0001-01-02T00:00:00Z"}, headers=admin
        )
        assert [entry["timestamp"] for entry in response.json()["logs"]] == ["0001-01-02T00:00:00+00:00"]
        await read_everything(client, await make_token("superadmin"), "disp-1")


class TestFutureTimestamps:
    async def test_a_log_far_ahead_is_stored_at_arrival_with_the_display_time_kept(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        arrival = clock()
        await post_logs(
            client,
            superadmin,
            "disp-1",
            [log("error", "from the future", context={"k": 1}, timestamp="9999-12-29T00:00:00Z")],
        )
        clock.advance(60)
        await post_logs(client, superadmin, "disp-1", [log("error", "a minute later")])

        bodies = await read_everything(client, superadmin, "disp-1")
        entries = bodies["logs"]["logs"]
        assert [entry["message"] for entry in entries] == ["a minute later", "from the future"]
        assert entries[1]["timestamp"] == arrival.isoformat()
        assert entries[1]["context"] == {"k": 1, "display_timestamp": "9999-12-29T00:00:00+00:00"}
        [overview] = bodies["overview"]["clients"]
        assert overview["latestError"]["message"] == "a minute later"
        assert bodies["recent_errors"]["errors"][0]["message"] == "a minute later"

    async def test_a_log_up_to_10_minutes_ahead_keeps_its_time(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        ahead = clock() + timedelta(minutes=10)
        await post_logs(client, superadmin, "disp-1", [log("info", "skewed", ahead)])
        [entry] = (await client.get("/api/client-logs/disp-1/logs", headers=superadmin)).json()["logs"]
        assert entry["timestamp"] == ahead.isoformat()
        assert entry["context"] == {}


class TestStrictValues:
    @pytest.mark.parametrize(
        "body",
        [
            {"process_pid": False},
            {"process_pid": 1.0},
            {"process_pid": "12"},
            {"current_event_id": True},
            {"hostname": 5},
        ],
    )
    @pytest.mark.parametrize("kind", ["heartbeat", "health"])
    async def test_loose_ingest_values_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], kind: str, body: dict[str, Any]
    ) -> None:
        if kind == "health" and "hostname" in body:
            body = {"current_process": 5}
        response = await client.post(f"/api/clients/disp-1/{kind}", json=body, headers=superadmin)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
        assert (await client.get("/api/clients/disp-1", headers=superadmin)).status_code == 404

    @pytest.mark.parametrize(
        "change", [{"is_active": 0}, {"is_active": "yes"}, {"is_active": 1}, {"group_id": 1.0}, {"group_id": True}]
    )
    async def test_loose_client_update_values_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], change: dict[str, Any]
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("info", "x")])
        assert (await client.post("/api/client-groups", json={"name": "g"}, headers=superadmin)).status_code == 201
        response = await client.patch("/api/clients/disp-1", json=change, headers=superadmin)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
        unchanged = (await client.get("/api/clients/disp-1", headers=superadmin)).json()
        assert (unchanged["is_active"], unchanged["group_id"]) == (True, None)

    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/api/client-logs/summary", {"hours": "1.0"}),
            ("/api/client-logs/monitoring-overview", {"hours": "1.0"}),
            ("/api/client-logs/monitoring-overview", {"hours": "1_0"}),
            ("/api/client-logs/recent-errors", {"limit": "1.0"}),
            ("/api/client-logs/recent-errors", {"limit": " 1"}),
            ("/api/client-logs/disp-1/logs", {"limit": "1.0"}),
            ("/api/client-logs/disp-1/logs", {"limit": "true"}),
            ("/api/client-logs/disp-1/logs", {"since": ""}),
        ],
    )
    async def test_loose_query_values_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], path: str, params: dict[str, str]
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("info", "x")])
        response = await client.get(path, params=params, headers=superadmin)
        assert response.status_code == 400, response.text
        assert "error" in response.json()

    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/api/client-logs/summary", {"hours": "1"}),
            ("/api/client-logs/monitoring-overview", {"hours": "99999999999999999999999"}),
            ("/api/client-logs/recent-errors", {"limit": "007"}),
            ("/api/client-logs/disp-1/logs", {"limit": "1", "since": "2026-03-09T20:00:00Z"}),
        ],
    )
    async def test_integers_are_still_integers(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], path: str, params: dict[str, str]
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("info", "x")])
        response = await client.get(path, params=params, headers=superadmin)
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("PATCH", "/api/client-groups/1.0"),
            ("DELETE", "/api/client-groups/1.0"),
            ("GET", "/screenshots/disp-1/history/1.0"),
        ],
    )
    async def test_path_ids_are_integers(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], method: str, path: str
    ) -> None:
        assert (await client.post("/api/client-groups", json={"name": "g"}, headers=superadmin)).status_code == 201
        response = await client.request(method, path, json={"name": "h"}, headers=superadmin)
        assert response.status_code == 400, response.text
