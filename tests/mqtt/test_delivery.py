"""At-least-once without loss: ack after commit, persistent session, broker restarts, shared groups."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Sequence

from app.metrics import REGISTRY
from app.services.mqtt import AFTER_COMMIT, BEFORE_COMMIT, AbortConnection, Received
from app.state import AppState
from tests.mqtt.conftest import (
    Broker,
    Publisher,
    ServiceFactory,
    count_logs,
    eventually,
    logs_of,
    wait_for_log,
)
from tests.mqtt.test_bad_input import _has_log

UUID = "display-7"
logger = logging.getLogger(__name__)


def log_payload(message: str, message_id: str | None = None) -> str:
    body = {"message": message} if message_id is None else {"message": message, "message_id": message_id}
    return json.dumps(body)


class CrashOnce:
    """A fault hook: at `stage`, the first batch holding `message` aborts the connection unacknowledged."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        self.message = message
        self.seen = 0
        self.crashed = False

    async def __call__(self, stage: str, items: Sequence[Received]) -> None:
        if stage != self.stage or not _has_log(items, self.message):
            return
        self.seen += 1
        if not self.crashed:
            self.crashed = True
            raise AbortConnection


class TestAckAfterCommit:
    async def test_a_crash_before_commit_gets_the_message_redelivered_and_stored_once(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        crash = CrashOnce(BEFORE_COMMIT, "in flight")
        await service_factory(fault_hook=crash)
        await publisher.publish(f"{UUID}/logs/error", log_payload("in flight", "f-1"))
        await wait_for_log(state, UUID, "in flight")

        # Had paho acknowledged on receipt, the broker would not deliver it again and it would be lost.
        assert crash.seen == 2
        assert [entry.message for entry in await logs_of(state, UUID)] == ["in flight"]

    async def test_a_crash_after_commit_before_ack_is_stored_once_by_message_id(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        crash = CrashOnce(AFTER_COMMIT, "committed")
        await service_factory(fault_hook=crash)
        await publisher.publish(f"{UUID}/logs/error", log_payload("committed", "c-1"))
        await eventually(lambda: crash.seen == 2, what="redelivery after the crash")
        await publisher.publish(f"{UUID}/logs/info", "sentinel")
        await wait_for_log(state, UUID, "sentinel")

        assert [entry.message for entry in await logs_of(state, UUID)] == ["committed", "sentinel"]
        assert await count_logs(state, level="ERROR") == 1


class TestPersistentSession:
    async def test_logs_published_while_the_service_is_stopped_are_all_stored_once(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        first = await service_factory()
        await first.stop()
        for number in range(500):
            # No message_id: a duplicate would show as an extra row.
            await publisher.publish(f"{UUID}/logs/info", log_payload(f"queued-{number}"))
        await service_factory()

        await eventually(lambda: _count_is(state, 500), what="500 queued logs stored")
        await publisher.publish(f"{UUID}/logs/info", "sentinel")
        await wait_for_log(state, UUID, "sentinel")
        messages = Counter(entry.message for entry in await logs_of(state, UUID))
        assert messages == Counter([f"queued-{number}" for number in range(500)] + ["sentinel"])
        logger.warning("service stopped: published 500, stored %d distinct, %d rows", len(messages) - 1, 500)

    async def test_a_broker_restart_while_messages_flow_loses_nothing(
        self,
        backend: str,
        state: AppState,
        broker: Broker,
        service_factory: ServiceFactory,
        publisher: Publisher,
        prefix: str,
    ) -> None:
        deliveries = Counter[str]()

        async def slow_database(stage: str, items: Sequence[Received]) -> None:
            if stage == BEFORE_COMMIT:
                await asyncio.sleep(0.02)  # a slow database: the broker keeps a backlog for us
            else:
                deliveries.update(item.topic for item in items)

        service = await service_factory(fault_hook=slow_database, receive_maximum=10)
        for number in range(150):
            await publisher.publish(f"{UUID}/logs/info", log_payload(f"before-{number}", f"b-{number}"))
        await eventually(lambda: _count_is(state, 20), what="the flow started")
        stored_at_restart = await count_logs(state)
        assert stored_at_restart < 150  # the restart really happens mid-flow
        await publisher.close()
        broker.restart()
        await eventually(lambda: service.mqtt_state.connected, what="service reconnected")

        after = Publisher(broker, prefix)
        await after.connect()
        try:
            for number in range(50):
                await after.publish(f"{UUID}/logs/info", log_payload(f"after-{number}", f"a-{number}"))
        finally:
            await after.close()

        await eventually(lambda: _count_is(state, 200), what="200 logs stored")
        ids = Counter(entry.message_id for entry in await logs_of(state, UUID))
        expected = {f"b-{number}" for number in range(150)} | {f"a-{number}" for number in range(50)}
        assert set(ids) == expected
        assert max(ids.values()) == 1
        logger.warning(
            "broker restart: published 200, stored %d (lost %d), %d stored before the restart, %d deliveries",
            len(ids),
            200 - len(ids),
            stored_at_restart,
            sum(deliveries.values()),
        )


class TestSharedGroup:
    async def test_two_instances_in_one_group_store_every_message_exactly_once(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher, prefix: str
    ) -> None:
        handled = {"a": 0, "b": 0}

        def counter(name: str) -> object:
            async def hook(stage: str, items: Sequence[Received]) -> None:
                if stage == AFTER_COMMIT:
                    handled[name] += len(items)

            return hook

        for name in handled:
            await service_factory(
                fault_hook=counter(name),
                settings={"MQTT_SHARED_GROUP": "monitors", "MQTT_CLIENT_ID": f"monitor-{prefix}-{name}"},
            )
        for number in range(200):
            # No message_id: the database would not hide a message delivered to both instances.
            await publisher.publish(f"{UUID}/logs/info", log_payload(f"shared-{number}"))

        await eventually(lambda: _count_is(state, 200), what="200 logs stored")
        await eventually(lambda: sum(handled.values()) == 200, what="every message acknowledged")
        messages = Counter(entry.message for entry in await logs_of(state, UUID))
        assert messages == Counter(f"shared-{number}" for number in range(200))
        assert handled["a"] > 0
        assert handled["b"] > 0


async def _count_is(state: AppState, expected: int) -> bool:
    return await count_logs(state) >= expected


class TestBackpressure:
    async def test_a_slow_database_keeps_the_in_memory_buffer_bounded(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        depths: list[float] = []

        async def slow_database(stage: str, items: Sequence[Received]) -> None:
            if stage == BEFORE_COMMIT:
                depths.append(REGISTRY.get_sample_value("infoscreen_ingest_buffer_depth") or 0.0)
                await asyncio.sleep(0.01)

        await service_factory(fault_hook=slow_database, receive_maximum=10)
        for number in range(300):
            await publisher.publish(f"{UUID}/logs/info", log_payload(f"slow-{number}", f"s-{number}"))
        await eventually(lambda: _count_is(state, 300), what="300 logs stored")

        # Received but not yet stored: about one ReceiveMaximum, never the whole backlog, even on a
        # broker that refills its window on every PUBACK (the client stops reading its socket).
        assert max(depths) <= 3 * 10, max(depths)
        assert await count_logs(state) == 300


class TestConnectionState:
    async def test_a_lost_broker_shows_at_once_even_while_a_batch_is_being_stored(
        self, backend: str, state: AppState, broker: Broker, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def stuck_database(stage: str, items: Sequence[Received]) -> None:
            if stage == BEFORE_COMMIT and not release.is_set():
                entered.set()
                await release.wait()

        service = await service_factory(fault_hook=stuck_database)
        await publisher.publish(f"{UUID}/logs/error", log_payload("during the outage", "o-1"))
        await publisher.close()
        await eventually(entered.is_set, what="batch in the database")
        broker.stop()

        await eventually(lambda: not service.mqtt_state.connected, what="connection loss reported")
        release.set()
        broker.start()
        await eventually(lambda: service.mqtt_state.connected, what="reconnected")
        # Committed without an ack (the connection was gone): redelivered first, and stored once.
        after = Publisher(broker, publisher.prefix)
        await after.connect()
        try:
            await after.publish(f"{UUID}/logs/info", "sentinel")
        finally:
            await after.close()
        await wait_for_log(state, UUID, "sentinel")
        assert [entry.message for entry in await logs_of(state, UUID)] == ["during the outage", "sentinel"]
