"""Ingest metrics against a real Mosquitto: batch commit time, log lines stored, ingest lag, reconnects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from app.metrics import REGISTRY
from app.services.mqtt import BEFORE_COMMIT, Received
from app.state import AppState
from tests.mqtt.conftest import Broker, Publisher, ServiceFactory, eventually, wait_for_log

UUID = "display-m"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class TestIngestMetrics:
    async def test_stored_batches_are_timed_and_their_log_lines_counted(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        commits = value("infoscreen_ingest_batch_commit_seconds_count")
        lines = value("infoscreen_log_lines_stored_total")
        await service_factory()
        for number in range(5):
            await publisher.publish(f"{UUID}/logs/info", json.dumps({"message": f"m{number}"}))
        await wait_for_log(state, UUID, "m4")
        await eventually(lambda: value("infoscreen_log_lines_stored_total") == lines + 5, what="5 lines counted")
        assert value("infoscreen_ingest_batch_commit_seconds_count") > commits
        await eventually(lambda: value("infoscreen_ingest_lag_seconds") == 0, what="no lag once stored")

    async def test_lag_grows_while_the_database_holds_a_batch_and_drops_to_zero_after(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        release = asyncio.Event()
        holding = asyncio.Event()

        async def slow_commit(stage: str, items: Sequence[Received]) -> None:
            if stage == BEFORE_COMMIT and not release.is_set():
                holding.set()
                await release.wait()

        await service_factory(fault_hook=slow_commit)
        await publisher.publish(f"{UUID}/logs/warn", json.dumps({"message": "held"}))
        await asyncio.wait_for(holding.wait(), 30)
        first = value("infoscreen_ingest_lag_seconds")
        started = time.monotonic()
        await eventually(lambda: value("infoscreen_ingest_lag_seconds") >= first + 0.2, what="the lag to grow")
        assert value("infoscreen_ingest_lag_seconds") <= first + (time.monotonic() - started) + 0.5
        release.set()
        await wait_for_log(state, UUID, "held")
        await eventually(lambda: value("infoscreen_ingest_lag_seconds") == 0, what="no lag once stored")

    async def test_a_lost_broker_counts_a_reconnect(
        self, backend: str, broker: Broker, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory()
        before = value("infoscreen_mqtt_reconnects_total")
        broker.restart()
        await eventually(lambda: value("infoscreen_mqtt_reconnects_total") > before, what="a reconnect counted")
        await eventually(lambda: service.mqtt_state.connected, what="connected again")
