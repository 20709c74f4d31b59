"""`/api/client-logs` (SPEC §9) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.models import ClientLog
from app.state import AppState
from tests.conftest import Clock, TokenMaker
from tests.helpers import UTC_SUFFIX, heartbeat, log, post_logs, set_client

pytestmark = pytest.mark.usefixtures("backend")

INVALID_TIMESTAMP = {"error": "Invalid timestamp format. Use ISO 8601"}


@pytest.fixture
async def admin(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("admin")


class TestLoggingTestEndpoint:
    async def test_anonymous_gets_counts_but_no_recent_logs(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        await post_logs(
            client,
            superadmin,
            "disp-1",
            [log("error", "e1"), log("warn", "w1"), log("warning", "w2"), log("info", "i1"), log("debug", "d1")],
        )
        response = await client.get("/api/client-logs/test")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "infrastructure": "working",
            "total_logs": 5,
            "counts": {"ERROR": 1, "WARN": 2, "INFO": 1},
            "recent_5": [],
        }

    async def test_empty_database_counts_zero(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/api/client-logs/test")).json()
        assert body["total_logs"] == 0
        assert body["counts"] == {"ERROR": 0, "WARN": 0, "INFO": 0}

    async def test_admin_gets_the_five_newest_logs(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        base = clock() - timedelta(hours=1)
        entries = [log("info", f"m{i}", base + timedelta(minutes=i)) for i in range(7)]
        await post_logs(client, admin, "disp-1", entries)
        body = (await client.get("/api/client-logs/test", headers=admin)).json()
        assert [entry["message"] for entry in body["recent_5"]] == ["m6", "m5", "m4", "m3", "m2"]
        first = body["recent_5"][0]
        assert set(first) == {"client_uuid", "level", "message", "timestamp"}
        assert first["client_uuid"] == "disp-1"
        assert first["level"] == "INFO"
        assert first["timestamp"] == (base + timedelta(minutes=6)).isoformat()
        assert first["timestamp"].endswith(UTC_SUFFIX)
        assert body["total_logs"] == 7

    @pytest.mark.parametrize("role", ["device", "user", "editor"])
    async def test_lower_roles_are_anonymous(
        self, client: httpx.AsyncClient, make_token: TokenMaker, superadmin: dict[str, str], role: str
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("error", "boom")])
        response = await client.get("/api/client-logs/test", headers=await make_token(role))
        assert response.status_code == 200
        assert response.json()["recent_5"] == []

    async def test_unknown_token_is_anonymous_not_401(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        await post_logs(client, superadmin, "disp-1", [log("error", "boom")])
        response = await client.get("/api/client-logs/test", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 200
        assert response.json()["recent_5"] == []
        assert response.json()["total_logs"] == 1


class TestClientLogs:
    async def test_logs_newest_first_with_entry_shape(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        base = clock() - timedelta(hours=2)
        await post_logs(
            client,
            admin,
            "disp-1",
            [
                log("info", "old", base),
                log("error", "new", base + timedelta(minutes=30), context={"retry_count": 2}),
                log("warn", "middle", base + timedelta(minutes=10)),
            ],
        )
        response = await client.get("/api/client-logs/disp-1/logs", headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert body["client_uuid"] == "disp-1"
        assert body["count"] == 3
        assert body["limit"] == 50
        assert [entry["message"] for entry in body["logs"]] == ["new", "middle", "old"]
        newest = body["logs"][0]
        assert set(newest) == {"id", "timestamp", "level", "message", "context"}
        assert newest["level"] == "ERROR"
        assert newest["context"] == {"retry_count": 2}
        assert newest["timestamp"] == (base + timedelta(minutes=30)).isoformat()
        assert newest["timestamp"].endswith(UTC_SUFFIX)

    async def test_same_timestamp_is_ordered_newest_insert_first(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        moment = clock() - timedelta(minutes=5)
        await post_logs(client, admin, "disp-1", [log("info", f"m{i}", moment) for i in range(3)])
        body = (await client.get("/api/client-logs/disp-1/logs", headers=admin)).json()
        assert [entry["message"] for entry in body["logs"]] == ["m2", "m1", "m0"]

    async def test_only_this_clients_logs(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "mine")])
        await post_logs(client, admin, "disp-2", [log("info", "theirs")])
        body = (await client.get("/api/client-logs/disp-1/logs", headers=admin)).json()
        assert [entry["message"] for entry in body["logs"]] == ["mine"]

    async def test_context_is_empty_object_when_none_was_sent(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "plain")])
        body = (await client.get("/api/client-logs/disp-1/logs", headers=admin)).json()
        assert body["logs"][0]["context"] == {}

    @pytest.mark.parametrize("stored", ["not json at all", "[1, 2]", '"a string"'])
    async def test_stored_non_object_context_comes_back_raw(
        self, client: httpx.AsyncClient, admin: dict[str, str], state: AppState, stored: str
    ) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "legacy")])
        async with state.session_factory() as session, session.begin():
            await session.execute(update(ClientLog).values(context=stored))
        body = (await client.get("/api/client-logs/disp-1/logs", headers=admin)).json()
        assert body["logs"][0]["context"] == {"raw": stored}

    @pytest.mark.parametrize("level", ["error", "ERROR", "Error", "eRrOr"])
    async def test_level_filter_is_case_insensitive(
        self, client: httpx.AsyncClient, admin: dict[str, str], level: str
    ) -> None:
        await post_logs(client, admin, "disp-1", [log("error", "e"), log("warn", "w"), log("info", "i")])
        body = (await client.get("/api/client-logs/disp-1/logs", params={"level": level}, headers=admin)).json()
        assert [(entry["level"], entry["message"]) for entry in body["logs"]] == [("ERROR", "e")]

    @pytest.mark.parametrize("level", ["WARN", "INFO", "DEBUG"])
    async def test_each_level_filters(self, client: httpx.AsyncClient, admin: dict[str, str], level: str) -> None:
        await post_logs(client, admin, "disp-1", [log(name, name) for name in ("error", "warn", "info", "debug")])
        body = (await client.get("/api/client-logs/disp-1/logs", params={"level": level}, headers=admin)).json()
        assert [entry["level"] for entry in body["logs"]] == [level]

    @pytest.mark.parametrize("level", ["WARNING", "warning", "fatal", ""])
    async def test_unknown_level_is_400_with_the_callers_spelling(
        self, client: httpx.AsyncClient, admin: dict[str, str], level: str
    ) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "x")])
        response = await client.get("/api/client-logs/disp-1/logs", params={"level": level}, headers=admin)
        assert response.status_code == 400
        assert response.json() == {"error": f"Invalid level: {level}. Must be ERROR, WARN, INFO, or DEBUG"}

    async def test_limit_defaults_to_50(self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock) -> None:
        base = clock() - timedelta(hours=1)
        await post_logs(client, admin, "disp-1", [log("info", f"m{i}", base + timedelta(seconds=i)) for i in range(60)])
        body = (await client.get("/api/client-logs/disp-1/logs", headers=admin)).json()
        assert body["count"] == 50
        assert body["limit"] == 50
        assert body["logs"][0]["message"] == "m59"

    async def test_limit_is_clamped_to_500(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await post_logs(client, admin, "disp-1", [log("debug", f"m{i}") for i in range(510)])
        body = (await client.get("/api/client-logs/disp-1/logs", params={"limit": 100000}, headers=admin)).json()
        assert body["limit"] == 500
        assert body["count"] == 500

    async def test_small_limit(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await post_logs(client, admin, "disp-1", [log("info", f"m{i}") for i in range(5)])
        body = (await client.get("/api/client-logs/disp-1/logs", params={"limit": 2}, headers=admin)).json()
        assert body["count"] == 2
        assert body["limit"] == 2

    @pytest.mark.parametrize("limit", ["0", "-1", "x", "1.5", ""])
    async def test_bad_limit_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], limit: str) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "x")])
        response = await client.get("/api/client-logs/disp-1/logs", params={"limit": limit}, headers=admin)
        assert response.status_code == 400
        assert "error" in response.json()

    @pytest.mark.parametrize(
        "since",
        ["2026-03-09T20:00:00Z", "2026-03-09T20:00:00", "2026-03-09T21:00:00+01:00", "2026-03-09T15:00:00-05:00"],
    )
    async def test_since_is_inclusive_in_every_spelling(
        self, client: httpx.AsyncClient, admin: dict[str, str], since: str
    ) -> None:
        boundary = datetime(2026, 3, 9, 20, 0, 0, tzinfo=UTC)
        await post_logs(
            client,
            admin,
            "disp-1",
            [
                log("info", "before", boundary - timedelta(seconds=1)),
                log("info", "at", boundary),
                log("info", "after", boundary + timedelta(seconds=1)),
            ],
        )
        response = await client.get("/api/client-logs/disp-1/logs", params={"since": since}, headers=admin)
        assert response.status_code == 200
        assert [entry["message"] for entry in response.json()["logs"]] == ["after", "at"]

    async def test_since_is_exact_to_the_microsecond(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        moment = datetime(2026, 3, 9, 20, 0, 0, 123456, tzinfo=UTC)
        await post_logs(client, admin, "disp-1", [log("info", "at", moment)])
        for since, expected in (("2026-03-09T20:00:00.123456Z", 1), ("2026-03-09T20:00:00.123457Z", 0)):
            body = (await client.get("/api/client-logs/disp-1/logs", params={"since": since}, headers=admin)).json()
            assert body["count"] == expected, since
        body = (await client.get("/api/client-logs/disp-1/logs", headers=admin)).json()
        assert body["logs"][0]["timestamp"] == "2026-03-09T20:00:00.123456+00:00"

    async def test_since_combines_with_level_and_limit(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        boundary = datetime(2026, 3, 9, 20, 0, 0, tzinfo=UTC)
        await post_logs(
            client,
            admin,
            "disp-1",
            [log("error", f"e{i}", boundary + timedelta(minutes=i - 2)) for i in range(5)]
            + [log("info", "i", boundary)],
        )
        params = {"since": "2026-03-09T20:00:00Z", "level": "error", "limit": "2"}
        body = (await client.get("/api/client-logs/disp-1/logs", params=params, headers=admin)).json()
        assert [entry["message"] for entry in body["logs"]] == ["e4", "e3"]

    @pytest.mark.parametrize("since", ["yesterday", "2026-13-01T00:00:00", "2026-03-09T25:00:00Z", "12/03/2026"])
    async def test_bad_since_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], since: str) -> None:
        await post_logs(client, admin, "disp-1", [log("info", "x")])
        response = await client.get("/api/client-logs/disp-1/logs", params={"since": since}, headers=admin)
        assert response.status_code == 400
        assert response.json() == INVALID_TIMESTAMP

    async def test_unknown_client_is_404(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        response = await client.get("/api/client-logs/nobody/logs", headers=admin)
        assert response.status_code == 404
        assert response.json() == {"error": "Client not found"}

    async def test_known_client_without_logs_is_empty(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await heartbeat(client, admin, "quiet")
        body = (await client.get("/api/client-logs/quiet/logs", headers=admin)).json()
        assert body == {"client_uuid": "quiet", "logs": [], "count": 0, "limit": 50, "next_cursor": None}

    async def test_known_client_with_no_matching_log_is_empty_not_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        await post_logs(client, admin, "chatty", [log("info", "only info")])
        response = await client.get("/api/client-logs/chatty/logs", params={"level": "error"}, headers=admin)
        assert response.status_code == 200
        assert response.json() == {"client_uuid": "chatty", "logs": [], "count": 0, "limit": 50, "next_cursor": None}

    @pytest.mark.parametrize("bad", ["bad.uuid", "-leading-dash", "a" * 65, "sp%20ace", "%C3%A9t%C3%A9"])
    async def test_bad_uuid_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], bad: str) -> None:
        response = await client.get(f"/api/client-logs/{bad}/logs", headers=admin)
        assert response.status_code == 400
        assert response.json() == {"error": "Invalid client uuid"}


class TestSummary:
    async def test_counts_per_client_and_level_over_24h_by_default(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await heartbeat(client, admin, "disp-1", {"hostname": "lobby"})
        await client.patch("/api/clients/disp-1", json={"description": "Lobby screen"}, headers=admin)
        await post_logs(
            client,
            admin,
            "disp-1",
            [
                log("error", "e", now - timedelta(hours=1)),
                log("error", "e", now - timedelta(hours=23)),
                log("warn", "w", now - timedelta(minutes=5)),
                log("debug", "d", now),
                log("error", "too old", now - timedelta(hours=25)),
            ],
        )
        await post_logs(client, admin, "disp-2", [log("info", "i", now - timedelta(hours=2))])
        response = await client.get("/api/client-logs/summary", headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert body["period_hours"] == 24
        assert body["since"] == (now - timedelta(hours=24)).isoformat()
        assert body["timestamp"] == now.isoformat()
        assert body["summary"] == {
            "disp-1": {
                "counts": {"ERROR": 2, "WARN": 1, "INFO": 0, "DEBUG": 1},
                "info": {"hostname": "lobby", "description": "Lobby screen"},
            },
            "disp-2": {
                "counts": {"ERROR": 0, "WARN": 0, "INFO": 1, "DEBUG": 0},
                "info": {"hostname": None, "description": None},
            },
        }

    async def test_only_clients_with_logs_in_the_window(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await heartbeat(client, admin, "silent")
        await post_logs(client, admin, "old-logs", [log("error", "e", now - timedelta(hours=3))])
        await post_logs(client, admin, "recent", [log("error", "e", now - timedelta(minutes=30))])
        body = (await client.get("/api/client-logs/summary", params={"hours": 1}, headers=admin)).json()
        assert list(body["summary"]) == ["recent"]
        assert body["period_hours"] == 1

    async def test_window_is_inclusive_and_exact_off_the_hour(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        now = clock.advance(37 * 60 + 13)  # 21:37:13, so the window starts mid-hour
        since = now - timedelta(hours=2)
        await post_logs(
            client,
            admin,
            "disp-1",
            [
                log("error", "just before", since - timedelta(microseconds=1)),
                log("error", "at", since),
                log("error", "same hour", since + timedelta(minutes=10)),
                log("error", "later", now - timedelta(minutes=1)),
            ],
        )
        body = (await client.get("/api/client-logs/summary", params={"hours": 2}, headers=admin)).json()
        assert body["summary"]["disp-1"]["counts"]["ERROR"] == 3
        assert body["since"] == since.isoformat()

    async def test_hours_are_clamped_to_168(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await post_logs(
            client,
            admin,
            "disp-1",
            [log("warn", "in", now - timedelta(hours=167)), log("warn", "out", now - timedelta(hours=169))],
        )
        body = (await client.get("/api/client-logs/summary", params={"hours": 1000}, headers=admin)).json()
        assert body["period_hours"] == 168
        assert body["summary"]["disp-1"]["counts"]["WARN"] == 1

    @pytest.mark.parametrize("hours", ["0", "-1", "x", "2.5"])
    async def test_bad_hours_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], hours: str) -> None:
        response = await client.get("/api/client-logs/summary", params={"hours": hours}, headers=admin)
        assert response.status_code == 400
        assert "error" in response.json()

    async def test_empty_summary(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        body = (await client.get("/api/client-logs/summary", headers=admin)).json()
        assert body["summary"] == {}


class TestRecentErrors:
    async def test_newest_errors_across_clients_only_errors(
        self, client: httpx.AsyncClient, admin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await post_logs(
            client,
            admin,
            "disp-1",
            [log("error", "a", now - timedelta(minutes=3), context={"k": 1}), log("warn", "w", now)],
        )
        await post_logs(client, admin, "disp-2", [log("error", "b", now - timedelta(minutes=1))])
        response = await client.get("/api/client-logs/recent-errors", headers=admin)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 2
        assert [(entry["client_uuid"], entry["message"]) for entry in body["errors"]] == [
            ("disp-2", "b"),
            ("disp-1", "a"),
        ]
        assert set(body["errors"][1]) == {"id", "timestamp", "level", "message", "context", "client_uuid"}
        assert body["errors"][1]["context"] == {"k": 1}
        assert body["errors"][1]["timestamp"].endswith(UTC_SUFFIX)

    async def test_default_limit_is_20(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await post_logs(client, admin, "disp-1", [log("error", f"e{i}") for i in range(25)])
        body = (await client.get("/api/client-logs/recent-errors", headers=admin)).json()
        assert body["count"] == 20

    async def test_limit_is_clamped_to_100(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await post_logs(client, admin, "disp-1", [log("error", f"e{i}") for i in range(105)])
        body = (await client.get("/api/client-logs/recent-errors", params={"limit": 5000}, headers=admin)).json()
        assert body["count"] == 100

    async def test_small_limit(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        await post_logs(client, admin, "disp-1", [log("error", f"e{i}") for i in range(5)])
        body = (await client.get("/api/client-logs/recent-errors", params={"limit": 3}, headers=admin)).json()
        assert body["count"] == 3

    @pytest.mark.parametrize("limit", ["0", "-5", "many"])
    async def test_bad_limit_is_400(self, client: httpx.AsyncClient, admin: dict[str, str], limit: str) -> None:
        response = await client.get("/api/client-logs/recent-errors", params={"limit": limit}, headers=admin)
        assert response.status_code == 400


OVERVIEW_CLIENT_FIELDS = {
    "uuid",
    "hostname",
    "description",
    "ip",
    "model",
    "groupId",
    "groupName",
    "registrationTime",
    "lastAlive",
    "isAlive",
    "status",
    "statusReasons",
    "currentEventId",
    "currentProcess",
    "processStatus",
    "processPid",
    "screenHealthStatus",
    "detectedScreenHealth",
    "detectedScreenHealthReason",
    "lastScreenshotAnalyzed",
    "lastScreenshotHash",
    "latestScreenshotType",
    "priorityScreenshotType",
    "priorityScreenshotReceivedAt",
    "priorityScreenshotHash",
    "hasActivePriorityScreenshot",
    "screenshotUrl",
    "logCounts24h",
    "latestLog",
    "latestError",
}
OVERVIEW = "/api/client-logs/monitoring-overview"


async def overview(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await http.get(OVERVIEW, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_uuid(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["uuid"]: entry for entry in body["clients"]}


class TestOverviewShape:
    async def test_every_field_in_camel_case(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await heartbeat(
            client,
            superadmin,
            "disp-1",
            {
                "hostname": "lobby",
                "ip": "10.0.0.5",
                "model": "Pi 5",
                "current_event_id": 42,
                "current_process": "chromium",
                "process_status": "running",
                "process_pid": 1234,
            },
        )
        body = await overview(client, superadmin)
        assert set(body) == {"summary", "periodHours", "gracePeriodSeconds", "since", "timestamp", "clients"}
        assert body["periodHours"] == 24
        assert body["gracePeriodSeconds"] == 170
        assert body["since"] == (now - timedelta(hours=24)).isoformat()
        assert body["timestamp"] == now.isoformat()
        entry = body["clients"][0]
        assert set(entry) == OVERVIEW_CLIENT_FIELDS
        assert entry == {
            "uuid": "disp-1",
            "hostname": "lobby",
            "description": None,
            "ip": "10.0.0.5",
            "model": "Pi 5",
            "groupId": None,
            "groupName": None,
            "registrationTime": now.isoformat(),
            "lastAlive": now.isoformat(),
            "isAlive": True,
            "status": "healthy",
            "statusReasons": [],
            "currentEventId": 42,
            "currentProcess": "chromium",
            "processStatus": "running",
            "processPid": 1234,
            "screenHealthStatus": None,
            "detectedScreenHealth": None,
            "detectedScreenHealthReason": None,
            "lastScreenshotAnalyzed": None,
            "lastScreenshotHash": None,
            "latestScreenshotType": "periodic",
            "priorityScreenshotType": None,
            "priorityScreenshotReceivedAt": None,
            "priorityScreenshotHash": None,
            "hasActivePriorityScreenshot": False,
            "screenshotUrl": "/screenshots/disp-1",
            "logCounts24h": {"error": 0, "warn": 0, "info": 0, "debug": 0},
            "latestLog": None,
            "latestError": None,
        }
        assert entry["lastAlive"].endswith(UTC_SUFFIX)

    async def test_empty_fleet(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        body = await overview(client, superadmin)
        assert body["clients"] == []
        assert body["summary"] == {
            "totalClients": 0,
            "onlineClients": 0,
            "offlineClients": 0,
            "healthyClients": 0,
            "warningClients": 0,
            "criticalClients": 0,
            "errorLogs": 0,
            "warnLogs": 0,
            "activePriorityScreenshots": 0,
        }

    async def test_group_fields(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        group = (await client.post("/api/client-groups", json={"name": "Hall"}, headers=superadmin)).json()
        await heartbeat(client, superadmin, "disp-1")
        await client.patch("/api/clients/disp-1", json={"group_id": group["id"]}, headers=superadmin)
        entry = (await overview(client, superadmin))["clients"][0]
        assert entry["groupId"] == group["id"]
        assert entry["groupName"] == "Hall"

    async def test_screenshot_columns(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        analyzed = datetime(2026, 3, 9, 20, 59, 0, tzinfo=UTC)
        await heartbeat(client, superadmin, "disp-1")
        await set_client(
            state,
            "disp-1",
            latest_screenshot_type="event_stop",
            last_screenshot_analyzed=analyzed,
            last_screenshot_hash="ab" * 32,
            screen_health_status="OK",
        )
        entry = (await overview(client, superadmin))["clients"][0]
        assert entry["latestScreenshotType"] == "event_stop"
        assert entry["lastScreenshotAnalyzed"] == analyzed.isoformat()
        assert entry["lastScreenshotHash"] == "ab" * 32
        assert entry["screenHealthStatus"] == "OK"

    async def test_log_context_keys_are_not_camel_cased(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        context = {"retry_count": 3, "error_details": {"exit_code": 139, "signal_name": "SIGSEGV"}}
        await post_logs(client, superadmin, "disp-1", [log("error", "crash", clock(), context=context)])
        entry = (await overview(client, superadmin))["clients"][0]
        assert entry["latestLog"]["context"] == context
        assert entry["latestError"] == entry["latestLog"]
        assert set(entry["latestError"]) == {"id", "timestamp", "level", "message", "context"}
        assert entry["latestError"]["timestamp"] == clock().isoformat()

    @pytest.mark.parametrize("hours", ["0", "-3", "a", "1e3"])
    async def test_bad_hours_is_400(self, client: httpx.AsyncClient, superadmin: dict[str, str], hours: str) -> None:
        response = await client.get(OVERVIEW, params={"hours": hours}, headers=superadmin)
        assert response.status_code == 400

    async def test_hours_are_clamped_to_168(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        body = await overview(client, superadmin, hours=999)
        assert body["periodHours"] == 168

    @pytest.mark.parametrize("role", ["device", "user", "editor", "admin"])
    async def test_below_superadmin_is_403(self, client: httpx.AsyncClient, make_token: TokenMaker, role: str) -> None:
        response = await client.get(OVERVIEW, headers=await make_token(role))
        assert response.status_code == 403


class TestOverviewDevGrace:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"ENV": "development"}

    async def test_grace_period_is_the_dev_one(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        clock.advance(175)
        body = await overview(client, superadmin)
        assert body["gracePeriodSeconds"] == 180
        assert body["clients"][0]["isAlive"] is True
        clock.advance(6)
        assert (await overview(client, superadmin))["clients"][0]["isAlive"] is False


class TestOverviewWindows:
    async def test_log_counts_follow_the_requested_window(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await post_logs(
            client,
            superadmin,
            "disp-1",
            [
                log("error", "e2h", now - timedelta(hours=2)),
                log("warn", "w30h", now - timedelta(hours=30)),
                log("info", "i10m", now - timedelta(minutes=10)),
                log("debug", "d100h", now - timedelta(hours=100)),
            ],
        )
        counts = {
            hours: (await overview(client, superadmin, hours=hours))["clients"][0]["logCounts24h"]
            for hours in (1, 24, 48, 168)
        }
        assert counts[1] == {"error": 0, "warn": 0, "info": 1, "debug": 0}
        assert counts[24] == {"error": 1, "warn": 0, "info": 1, "debug": 0}
        assert counts[48] == {"error": 1, "warn": 1, "info": 1, "debug": 0}
        assert counts[168] == {"error": 1, "warn": 1, "info": 1, "debug": 1}

    async def test_latest_log_and_error_are_of_all_time(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await post_logs(
            client,
            superadmin,
            "disp-1",
            [
                log("error", "old error", now - timedelta(days=20)),
                log("error", "older error", now - timedelta(days=21)),
                log("info", "old info", now - timedelta(days=10)),
            ],
        )
        entry = (await overview(client, superadmin, hours=1))["clients"][0]
        assert entry["logCounts24h"] == {"error": 0, "warn": 0, "info": 0, "debug": 0}
        assert entry["latestLog"]["message"] == "old info"
        assert entry["latestError"]["message"] == "old error"
        assert entry["latestError"]["level"] == "ERROR"

    async def test_latest_log_ignores_insert_order(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await post_logs(client, superadmin, "disp-1", [log("warn", "newest", now - timedelta(minutes=1))])
        await post_logs(client, superadmin, "disp-1", [log("error", "replayed", now - timedelta(hours=1))])
        entry = (await overview(client, superadmin))["clients"][0]
        assert entry["latestLog"]["message"] == "newest"
        assert entry["latestError"]["message"] == "replayed"

    async def test_latest_log_at_a_tied_timestamp_is_the_one_logs_lists_first(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        moment = clock() - timedelta(minutes=1)
        entries = [log("error", f"e{i}", moment) for i in range(4)] + [log("info", f"i{i}", moment) for i in range(4)]
        await post_logs(client, superadmin, "disp-1", entries)
        await post_logs(client, superadmin, "disp-1", [log("error", "e-last", moment), log("info", "i-last", moment)])
        entry = (await overview(client, superadmin))["clients"][0]
        listed = (await client.get("/api/client-logs/disp-1/logs", headers=superadmin)).json()["logs"]
        errors = (
            await client.get("/api/client-logs/disp-1/logs", params={"level": "error"}, headers=superadmin)
        ).json()["logs"]
        assert entry["latestLog"] == listed[0]
        assert entry["latestLog"]["message"] == "i-last"
        assert entry["latestError"] == errors[0]
        assert entry["latestError"]["message"] == "e-last"

    async def test_error_outside_window_does_not_make_critical(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        now = clock()
        await heartbeat(client, superadmin, "disp-1")
        await post_logs(client, superadmin, "disp-1", [log("error", "e", now - timedelta(hours=2))])
        assert (await overview(client, superadmin, hours=1))["clients"][0]["status"] == "healthy"
        assert (await overview(client, superadmin, hours=3))["clients"][0]["status"] == "critical"


class TestOverviewStatusAndSummary:
    async def test_statuses_and_summary_sums(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, state: AppState
    ) -> None:
        now = clock()
        await heartbeat(client, superadmin, "healthy-1", {"process_status": "running"})
        await heartbeat(client, superadmin, "crashed", {"process_status": "crashed"})
        await heartbeat(client, superadmin, "starting", {"process_status": "starting"})
        await heartbeat(client, superadmin, "black")
        await set_client(state, "black", screen_health_status="BLACK")
        await heartbeat(client, superadmin, "errors")
        await post_logs(client, superadmin, "errors", [log("error", "e", now), log("error", "e", now)])
        await heartbeat(client, superadmin, "warns")
        await post_logs(client, superadmin, "warns", [log("warn", "w", now)])
        await post_logs(client, superadmin, "never-alive", [log("error", "e", now), log("warn", "w", now)])
        await heartbeat(client, superadmin, "retired")
        await client.patch("/api/clients/retired", json={"is_active": False}, headers=superadmin)
        await heartbeat(client, superadmin, "announced")
        await set_client(state, "announced", offline_announced_at=now + timedelta(seconds=1))
        clock.advance(1)

        body = await overview(client, superadmin)
        statuses = {uuid: entry["status"] for uuid, entry in by_uuid(body).items()}
        assert statuses == {
            "healthy-1": "healthy",
            "crashed": "critical",
            "starting": "warning",
            "black": "critical",
            "errors": "critical",
            "warns": "warning",
            "never-alive": "offline",
            "retired": "offline",
            "announced": "offline",
        }
        assert {uuid: entry["statusReasons"] for uuid, entry in by_uuid(body).items()} == {
            "healthy-1": [],
            "crashed": ["process_crashed"],
            "starting": ["process_starting"],
            "black": ["screen_black"],
            "errors": ["error_logs"],
            "warns": ["warn_logs"],
            "never-alive": ["heartbeat_late"],
            "retired": ["deactivated"],
            "announced": ["last_will"],
        }
        assert {uuid: entry["isAlive"] for uuid, entry in by_uuid(body).items()} == {
            uuid: status != "offline" for uuid, status in statuses.items()
        }
        assert body["summary"] == {
            "totalClients": 9,
            "onlineClients": 6,
            "offlineClients": 3,
            "healthyClients": 1,
            "warningClients": 2,
            "criticalClients": 3,
            "errorLogs": 3,
            "warnLogs": 2,
            "activePriorityScreenshots": 0,
        }

    async def test_goes_offline_after_grace_and_back_with_heartbeat(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        clock.advance(170)
        assert (await overview(client, superadmin))["clients"][0]["isAlive"] is True
        clock.advance(1)
        entry = (await overview(client, superadmin))["clients"][0]
        assert (entry["isAlive"], entry["status"]) == (False, "offline")
        await heartbeat(client, superadmin, "disp-1")
        assert (await overview(client, superadmin))["clients"][0]["status"] == "healthy"

    async def test_heartbeat_after_offline_announcement_is_alive_again(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, state: AppState
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        await set_client(state, "disp-1", offline_announced_at=clock.advance(5))
        assert (await overview(client, superadmin))["clients"][0]["isAlive"] is False
        clock.advance(5)
        await heartbeat(client, superadmin, "disp-1")
        assert (await overview(client, superadmin))["clients"][0]["isAlive"] is True


class TestOverviewPriorityScreenshot:
    async def test_active_priority_screenshot_until_ttl(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, state: AppState
    ) -> None:
        received = clock()
        await heartbeat(client, superadmin, "disp-1")
        await set_client(
            state,
            "disp-1",
            latest_screenshot_type="event_start",
            last_priority_screenshot_type="event_start",
            last_priority_received_at=received,
            last_priority_screenshot_hash="cd" * 32,
        )
        clock.advance(120)
        body = await overview(client, superadmin)
        entry = body["clients"][0]
        assert entry["priorityScreenshotType"] == "event_start"
        assert entry["priorityScreenshotReceivedAt"] == received.isoformat()
        assert entry["priorityScreenshotHash"] == "cd" * 32
        assert entry["hasActivePriorityScreenshot"] is True
        assert entry["screenshotUrl"] == "/screenshots/disp-1/priority"
        assert body["summary"]["activePriorityScreenshots"] == 1

        clock.advance(1)
        body = await overview(client, superadmin)
        entry = body["clients"][0]
        assert entry["hasActivePriorityScreenshot"] is False
        assert entry["screenshotUrl"] == "/screenshots/disp-1"
        assert entry["priorityScreenshotType"] == "event_start"
        assert body["summary"]["activePriorityScreenshots"] == 0

    async def test_counts_every_active_priority_screenshot(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, state: AppState
    ) -> None:
        for uuid, age in (("a", 10), ("b", 60), ("c", 500)):
            await heartbeat(client, superadmin, uuid)
            await set_client(
                state,
                uuid,
                last_priority_screenshot_type="event_stop",
                last_priority_received_at=clock() - timedelta(seconds=age),
            )
        body = await overview(client, superadmin)
        assert body["summary"]["activePriorityScreenshots"] == 2
        assert {uuid: e["hasActivePriorityScreenshot"] for uuid, e in by_uuid(body).items()} == {
            "a": True,
            "b": True,
            "c": False,
        }


class TestOverviewPriorityTtlSetting:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"PRIORITY_SCREENSHOT_TTL_SECONDS": 30}

    async def test_ttl_comes_from_settings(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], clock: Clock, state: AppState
    ) -> None:
        await heartbeat(client, superadmin, "disp-1")
        await set_client(
            state, "disp-1", last_priority_screenshot_type="event_start", last_priority_received_at=clock()
        )
        clock.advance(31)
        assert (await overview(client, superadmin))["clients"][0]["hasActivePriorityScreenshot"] is False


class TestOverviewOrdering:
    async def test_group_description_hostname_uuid_case_insensitive_nulls_last(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        groups = {}
        for name in ("Beta", "alpha"):
            response = await client.post("/api/client-groups", json={"name": name}, headers=superadmin)
            groups[name] = response.json()["id"]
        layout: dict[str, tuple[str | None, str | None, str | None]] = {
            "u-a": (None, None, None),
            "U-b": (None, None, None),
            "x1": ("Beta", "apple", None),
            "x2": ("alpha", None, "zed"),
            "x3": ("alpha", "Zebra", None),
            "x4": ("alpha", "banana", None),
            "x5": (None, "Aardvark", None),
            "x6": (None, None, "Host-b"),
            "x7": (None, None, "host-A"),
        }
        for uuid, (group, description, hostname) in layout.items():
            await heartbeat(client, superadmin, uuid, {"hostname": hostname} if hostname else None)
            patch: dict[str, Any] = {}
            if group:
                patch["group_id"] = groups[group]
            if description:
                patch["description"] = description
            if patch:
                response = await client.patch(f"/api/clients/{uuid}", json=patch, headers=superadmin)
                assert response.status_code == 200
        expected = ["x4", "x3", "x2", "x1", "x5", "x7", "x6", "u-a", "U-b"]
        body = await overview(client, superadmin)
        assert [entry["uuid"] for entry in body["clients"]] == expected
        listed = (await client.get("/api/clients", headers=superadmin)).json()
        assert [entry["uuid"] for entry in listed["clients"]] == expected
