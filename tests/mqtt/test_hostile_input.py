"""Hostile log messages over a real broker (SPEC §5), on both backends: rejected with a clear reason and no
traceback, or stored so that every read still answers."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from app.state import AppState
from tests.conftest import Clock
from tests.mqtt.conftest import Publisher, Service, eventually, logs_of, wait_for_log
from tests.mqtt.test_topics import counted

UUID = "display-1"


def nested_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


class TestHostileLogs:
    async def test_bounded_rejected_or_stored_at_arrival_and_every_read_answers(
        self,
        backend: str,
        state: AppState,
        clock: Clock,
        service: Service,
        publisher: Publisher,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        before = {
            ("logs", "invalid_timestamp"): counted("logs", "invalid_timestamp"),
            ("heartbeat", "invalid_payload"): counted("heartbeat", "invalid_payload"),
            ("logs", "stored"): counted("logs", "stored"),
        }
        with caplog.at_level(logging.INFO):
            await publisher.publish(f"{UUID}/logs/error", '{"message": "deep", "context": ' + nested_text(250) + "}")
            for timestamp in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 0):
                await publisher.publish(f"{UUID}/logs/error", json.dumps({"message": "bad", "timestamp": timestamp}))
            await publisher.publish(
                f"{UUID}/logs/error", json.dumps({"message": "future", "timestamp": "9999-12-29T00:00:00Z"})
            )
            await publisher.publish(f"{UUID}/heartbeat", json.dumps({"process_pid": False}))
            await publisher.publish(f"{UUID}/logs/info", "sentinel")
            await wait_for_log(state, UUID, "sentinel")

        assert counted("logs", "invalid_timestamp") == before[("logs", "invalid_timestamp")] + 3
        assert counted("heartbeat", "invalid_payload") == before[("heartbeat", "invalid_payload")] + 1
        # Stored messages are counted just after their commit, which the sentinel's poll may see first.
        await eventually(
            lambda: counted("logs", "stored") == before[("logs", "stored")] + 3, what="3 stored logs counted"
        )
        assert not [record for record in caplog.records if record.exc_info], "no traceback for bad input"
        stored = {entry.message: entry for entry in await logs_of(state, UUID)}
        assert set(stored) == {"deep", "future", "sentinel"}
        assert json.loads(stored["deep"].context or "") == {"truncated": True}
        assert stored["future"].timestamp == clock()
        assert json.loads(stored["future"].context or "") == {"display_timestamp": "9999-12-29T00:00:00+00:00"}
        assert (await get_client_pid(client, superadmin)) is None

        paths = [
            "/api/client-logs/monitoring-overview",
            "/api/client-logs/recent-errors",
            f"/api/client-logs/{UUID}/logs",
            "/api/client-logs/test",
        ]
        for path in paths:
            response = await client.get(path, headers=superadmin)
            assert response.status_code == 200, (path, response.text)
        [entry] = (await client.get(paths[0], headers=superadmin)).json()["clients"]
        assert entry["latestError"]["message"] in ("deep", "future")  # both at arrival, never year 9999


async def get_client_pid(http: httpx.AsyncClient, headers: dict[str, str]) -> object:
    response = await http.get(f"/api/clients/{UUID}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["process_pid"]
