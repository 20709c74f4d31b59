"""`/metrics` keeps answering while the database is down (SPEC §10), on the real server.

The outage is real: the server's PostgreSQL database stops taking connections and its open ones are
ended, as when the database server restarts or is unreachable. (SQLite has no server to lose: an open
file keeps working, so only the PostgreSQL server is taken away.)
"""

from __future__ import annotations

import time

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import POSTGRES_ADMIN_URL
from tests.live.conftest import LiveServer

DEADLINE_SECONDS = 30.0


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        found[family.name] = [(sample.labels, sample.value) for sample in family.samples]
    return found


async def _take_database_away(database: str, *, allow: bool) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
            )
    finally:
        await connection.close()


def database_errors(samples: dict[str, list[tuple[dict[str, str], float]]], source: str) -> float:
    return sum(value for labels, value in samples.get("infoscreen_database_errors", []) if labels["source"] == source)


@pytest.mark.parametrize("live_server", ["postgresql"], indirect=True, scope="module")
async def test_metrics_answer_without_display_counts_while_the_database_is_down(
    live_server: LiveServer, live: httpx.AsyncClient
) -> None:
    assert (await live.post("/api/clients/outage-1/heartbeat")).status_code == 204
    healthy = families((await live.get("/metrics")).text)
    assert sum(value for _, value in healthy["infoscreen_displays"]) == 1
    database = live_server.database_url.rsplit("/", 1)[-1]
    await _take_database_away(database, allow=False)
    try:
        answer = await live.get("/api/clients")
        assert answer.status_code == 503
        assert answer.json() == {"error": "Database unavailable"}
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            response = await live.get("/metrics")
            assert response.status_code == 200
            down = families(response.text)
            if "infoscreen_displays" not in down or time.monotonic() > deadline:
                break
        assert "infoscreen_displays" not in down
        assert {"process_resident_memory_bytes", "infoscreen_build_info", "infoscreen_mqtt_connected"} <= set(down)
        assert down["infoscreen_mqtt_connected"] == [({}, -1.0)]
        assert database_errors(down, "http") >= database_errors(healthy, "http") + 1
        assert database_errors(down, "metrics") >= database_errors(healthy, "metrics") + 1
    finally:
        await _take_database_away(database, allow=True)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while "infoscreen_displays" not in families((await live.get("/metrics")).text):
        assert time.monotonic() < deadline, "the display counts did not come back"
