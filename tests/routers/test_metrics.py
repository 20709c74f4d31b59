"""`GET /metrics` (SPEC §10): Prometheus text with ingest, HTTP, display-status and broker metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlmodel import col

from app.config import Settings
from app.main import create_app
from app.metrics import INGEST_BUFFER_DEPTH, MQTT_MESSAGES, UNMATCHED_ROUTE
from app.models import Client
from app.schemas.ingest import LogRecord
from app.services.ingest import record_logs
from app.services.retention import delete_expired_logs
from app.state import AppState
from tests.conftest import Clock
from tests.helpers import png_bytes


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def duration_count(samples: dict[Any, float], method: str, route: str, status: str) -> float:
    key = (
        "infoscreen_http_request_duration_seconds_count",
        (("method", method), ("route", route), ("status", status)),
    )
    return samples.get(key, 0.0)


class TestExposition:
    async def test_no_token_needed_and_all_families_present(self, backend: str, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert {
            "infoscreen_mqtt_messages",
            "infoscreen_ingest_buffer_depth",
            "infoscreen_http_request_duration_seconds",
            "infoscreen_displays",
            "infoscreen_mqtt_connected",
            "infoscreen_incidents_open",
            "infoscreen_notifications_pending",
            "infoscreen_notifications_oldest_pending_seconds",
        } <= names

    async def test_mqtt_counter_and_buffer_gauge_show_what_ingest_sets(
        self, backend: str, client: httpx.AsyncClient
    ) -> None:
        key = ("infoscreen_mqtt_messages_total", (("kind", "heartbeat"), ("outcome", "stored")))
        before = (await scrape(client)).get(key, 0.0)
        MQTT_MESSAGES.labels(kind="heartbeat", outcome="stored").inc(3)
        INGEST_BUFFER_DEPTH.set(17)
        try:
            samples = await scrape(client)
            assert samples[key] == before + 3
            assert samples[("infoscreen_ingest_buffer_depth", ())] == 17
        finally:
            INGEST_BUFFER_DEPTH.set(0)

    async def test_broker_connection_gauge_tells_disabled_from_down(
        self, backend: str, client: httpx.AsyncClient, state: AppState
    ) -> None:
        assert (await scrape(client))[("infoscreen_mqtt_connected", ())] == -1
        state.mqtt.enabled = True
        state.mqtt.connected = True
        assert (await scrape(client))[("infoscreen_mqtt_connected", ())] == 1
        state.mqtt.connected = False
        assert (await scrape(client))[("infoscreen_mqtt_connected", ())] == 0

    async def test_process_build_and_operations_families_and_no_created_series(
        self, backend: str, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/metrics")
        families = {family.name: family for family in text_string_to_metric_families(response.text)}
        assert {
            "process_resident_memory_bytes",
            "process_cpu_seconds",
            "process_open_fds",
            "process_start_time_seconds",
            "python_info",
            "infoscreen_build_info",
            "infoscreen_ingest_lag_seconds",
            "infoscreen_ingest_batch_commit_seconds",
            "infoscreen_database_errors",
            "infoscreen_mqtt_reconnects",
            "infoscreen_log_lines_stored",
            "infoscreen_screenshot_bytes_stored",
            "infoscreen_retention_deleted_rows",
        } <= set(families)
        [build] = families["infoscreen_build_info"].samples
        assert build.labels["version"]
        assert "_created" not in response.text
        assert families["infoscreen_ingest_lag_seconds"].samples[0].value >= 0

    async def test_several_apps_in_one_process_each_serve_metrics(
        self, backend: str, client: httpx.AsyncClient, settings: Settings, clock: Clock
    ) -> None:
        second = create_app(settings, clock=clock)
        async with (
            second.router.lifespan_context(second),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://second") as other,
        ):
            assert ("infoscreen_mqtt_connected", ()) in await scrape(other)
        assert ("infoscreen_mqtt_connected", ()) in await scrape(client)


class TestDisplaysByStatus:
    async def test_counts_by_status_at_scrape_time(
        self,
        backend: str,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        clock: Clock,
        state: AppState,
    ) -> None:
        for uuid in ("ok-1", "ok-2", "crash-1", "gone-1"):
            response = await client.post(f"/api/clients/{uuid}/heartbeat", headers=superadmin)
            assert response.status_code == 204
        health = await client.post(
            "/api/clients/crash-1/health", json={"process_status": "crashed"}, headers=superadmin
        )
        assert health.status_code == 204
        async with state.session_factory() as session, session.begin():
            await session.execute(
                update(Client)
                .where(col(Client.uuid) == "gone-1")
                .values(last_alive=clock() - timedelta(seconds=2 * state.settings.heartbeat_grace_seconds))
            )

        def by_status(samples: dict[Any, float]) -> dict[str, float]:
            return {labels[0][1]: value for (name, labels), value in samples.items() if name == "infoscreen_displays"}

        assert by_status(await scrape(client)) == {"healthy": 2, "critical": 1, "warning": 0, "offline": 1}
        clock.advance(state.settings.heartbeat_grace_seconds + 1)
        assert by_status(await scrape(client)) == {"healthy": 0, "critical": 0, "warning": 0, "offline": 4}

    async def test_fixed_number_of_statements(
        self, backend: str, client: httpx.AsyncClient, superadmin: dict[str, str], statement_counter: Any
    ) -> None:
        counts = []
        for fleet in (2, 20):
            for index in range(fleet):
                await client.post(f"/api/clients/fleet-{fleet}-{index}/heartbeat", headers=superadmin)
            statement_counter.reset()
            statement_counter.counting = True
            await client.get("/metrics")
            statement_counter.counting = False
            counts.append(statement_counter.count)
        assert counts[0] == counts[1]


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class TestStoredCounters:
    async def test_log_lines_count_what_was_stored_not_repeats(
        self, backend: str, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        before = sample(await scrape(client), "infoscreen_log_lines_stored_total")
        entries = [{"level": "info", "message": "a", "message_id": "m-1"}, {"level": "warn", "message": "b"}]
        for _ in range(2):  # the second time, m-1 is a repeat
            response = await client.post("/api/clients/disp-1/logs", json=entries, headers=superadmin)
            assert response.status_code == 202
        assert sample(await scrape(client), "infoscreen_log_lines_stored_total") == before + 3

    async def test_screenshot_bytes(self, backend: str, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        image = png_bytes()
        before = sample(await scrape(client), "infoscreen_screenshot_bytes_stored_total")
        response = await client.post(
            "/api/clients/disp-1/screenshot", content=image, headers={**superadmin, "Content-Type": "image/png"}
        )
        assert response.status_code == 202
        assert sample(await scrape(client), "infoscreen_screenshot_bytes_stored_total") == before + len(image)

    async def test_nothing_is_counted_for_a_transaction_that_rolls_back(
        self, backend: str, client: httpx.AsyncClient, state: AppState, clock: Clock
    ) -> None:
        before = sample(await scrape(client), "infoscreen_log_lines_stored_total")
        async with state.session_factory() as session:
            await record_logs(session, [("disp-1", LogRecord(level="INFO", message="m"))], now=clock())
            await session.rollback()
        assert sample(await scrape(client), "infoscreen_log_lines_stored_total") == before
        async with state.session_factory() as session, session.begin():
            await record_logs(session, [("disp-1", LogRecord(level="INFO", message="m"))], now=clock())
        assert sample(await scrape(client), "infoscreen_log_lines_stored_total") == before + 1

    async def test_retention_deletions(
        self, backend: str, client: httpx.AsyncClient, state: AppState, clock: Clock
    ) -> None:
        old = clock() - timedelta(days=state.settings.LOG_RETENTION_DAYS + 1)
        async with state.session_factory() as session, session.begin():
            records = [("disp-1", LogRecord(level="INFO", message=f"m{i}", timestamp=old)) for i in range(3)]
            await record_logs(session, records, now=clock())
        before = sample(await scrape(client), "infoscreen_retention_deleted_rows_total", table="client_logs")
        assert await delete_expired_logs(state, batch_size=2) == 3
        after = sample(await scrape(client), "infoscreen_retention_deleted_rows_total", table="client_logs")
        assert after == before + 3


class TestHttpDurations:
    async def test_labelled_by_route_template_not_raw_path(
        self, backend: str, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        before = await scrape(client)
        for uuid in ("a-1", "b-2", "c-3"):
            assert (await client.get(f"/screenshots/{uuid}", headers=superadmin)).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/no/such/path/123")).status_code == 404
        after = await scrape(client)

        def delta(method: str, route: str, status: str) -> float:
            return duration_count(after, method, route, status) - duration_count(before, method, route, status)

        assert delta("GET", "/screenshots/{client_uuid}", "404") == 3
        assert delta("GET", "/healthz", "200") == 1
        assert delta("GET", UNMATCHED_ROUTE, "404") == 1
        routes = {dict(labels).get("route") for (name, labels) in after if name.startswith("infoscreen_http")}
        assert not any(route and ("a-1" in route or "123" in route) for route in routes)
