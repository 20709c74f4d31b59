"""Bad input never stops the ingestion task: dropped, logged once, counted, acknowledged; poison isolated."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlmodel import col

from app.models import Client
from app.services.mqtt import BEFORE_COMMIT, DROP_LOG_INTERVAL_SECONDS, DroppedMessageLog, Received
from app.services.mqtt_topics import LogLine, Parsed
from app.state import AppState
from tests.mqtt.conftest import Publisher, ServiceFactory, logs_of, wait_for_log
from tests.mqtt.test_topics import counted
from tests.services.test_screenshots import files_in, make_image, make_noise_png

UUID = "display-1"
MAX_BYTES = 2000


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "MAX_SCREENSHOT_BYTES": MAX_BYTES}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def storm() -> list[tuple[str, bytes | str, str, str]]:
    """(topic suffix, payload, kind, reason) of messages that can never become valid."""
    big_png = make_noise_png(40)
    assert len(big_png) > MAX_BYTES
    return [
        (f"{UUID}/heartbeat", b"{not json", "heartbeat", "bad_json"),
        (f"{UUID}/heartbeat", b"[1, 2]", "heartbeat", "bad_json"),
        (f"{UUID}/health", json.dumps({"process_status": "exploded"}), "health", "invalid_payload"),
        (f"{UUID}/screenshot", json.dumps({"image": "!!! not base64 !!!"}), "screenshot", "bad_base64"),
        (f"{UUID}/screenshot", json.dumps({"image": b64(b"GIF89a" + bytes(40))}), "screenshot", "not_an_image"),
        (f"{UUID}/screenshot", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "screenshot", "not_an_image"),
        (f"{UUID}/screenshot", b"\xff\xd8\xff<script>alert(1)</script>", "screenshot", "not_an_image"),
        (f"{UUID}/screenshot", make_image("JPEG")[:-40], "screenshot", "not_an_image"),
        (f"{UUID}/screenshot", json.dumps({"image": b64(make_image("PNG")[:-20])}), "screenshot", "not_an_image"),
        (
            f"{UUID}/dashboard",
            json.dumps({"screenshot": {"data": b64(make_image("PNG") + b"<html>")}}),
            "dashboard",
            "not_an_image",
        ),
        (f"{UUID}/screenshot", big_png, "screenshot", "too_large"),
        (f"{UUID}/screenshot", json.dumps({"image": b64(big_png)}), "screenshot", "too_large"),
        (f"{UUID}/dashboard", json.dumps({"screenshot": {"data": b64(big_png)}}), "dashboard", "too_large"),
        (f"{UUID}/dashboard", json.dumps({"screenshot": {}}), "dashboard", "invalid_payload"),
        ("../screenshot", make_image("JPEG"), "screenshot", "bad_uuid"),
        ("../heartbeat", b"", "heartbeat", "bad_uuid"),
        (f"{'a' * 65}/heartbeat", b"", "heartbeat", "bad_uuid"),
        (f"{'a' * 65}/logs/error", b"overlong uuid", "logs", "bad_uuid"),
        (f"{UUID}/firmware", b"1.2.3", "unknown", "unknown_topic"),
        (f"{UUID}/logs", b"no level", "logs", "unknown_topic"),
        (f"{UUID}/logs/critical", b"no such level", "logs", "unknown_level"),
        (f"{UUID}/logs/info", b"\xff\xfe not utf-8", "logs", "bad_encoding"),
        (f"{UUID}/logs/info", json.dumps({"message_id": "no-message"}), "logs", "invalid_payload"),
        (f"{UUID}/logs/info", json.dumps({"message": "x", "message_id": "m" * 65}), "logs", "invalid_payload"),
        (f"{UUID}/status", b"maybe", "status", "unknown_status"),
    ]


class TestMalformedStorm:
    async def test_every_bad_message_is_dropped_counted_and_a_valid_one_still_lands(
        self,
        backend: str,
        state: AppState,
        service_factory: ServiceFactory,
        publisher: Publisher,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        await service_factory()
        messages = storm()
        expected: dict[tuple[str, str], int] = {}
        for _, _, kind, reason in messages:
            expected[(kind, reason)] = expected.get((kind, reason), 0) + 1
        before = {key: counted(*key) for key in expected}

        with caplog.at_level(logging.WARNING, logger="app.services.mqtt"):
            for suffix, payload, _, _ in messages:
                await publisher.publish(suffix, payload)
            await publisher.publish(f"{UUID}/logs/error", "still alive")
            await wait_for_log(state, UUID, "still alive")

        for key, amount in expected.items():
            assert counted(*key) == before[key] + amount, key
        dropped = [record for record in caplog.records if record.getMessage().startswith("dropped MQTT message")]
        # The first message of each reason is logged at once, with its topic; the rest are summed up later.
        assert len(dropped) == len({reason for _, _, _, reason in messages})
        assert all(state.settings.MQTT_TOPIC_PREFIX in record.getMessage() for record in dropped)
        async with state.session_factory() as session:
            uuids = (await session.execute(select(col(Client.uuid)))).scalars().all()
        assert list(uuids) == [UUID]  # a dropped message registers nothing
        assert [entry.message for entry in await logs_of(state, UUID)] == ["still alive"]
        # No stray file: nothing written for a refused screenshot, no temporary left behind.
        assert files_in(state.settings.screenshots_dir) == set()
        assert not (state.settings.DATA_DIR / "heartbeat").exists()


FLOOD = 500


class TestMalformedFlood:
    async def test_a_flood_is_counted_exactly_and_logged_in_a_handful_of_lines(
        self,
        backend: str,
        state: AppState,
        service_factory: ServiceFactory,
        publisher: Publisher,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monotonic = FakeMonotonic()
        await service_factory(dropped_log=DroppedMessageLog(clock=monotonic))
        before = (counted("heartbeat", "bad_json"), counted("status", "unknown_status"))
        with caplog.at_level(logging.WARNING, logger="app.services.mqtt"):
            for number in range(FLOOD):
                if number % 2:
                    await publisher.publish(f"{UUID}/heartbeat", b"{not json %d" % number)
                else:
                    await publisher.publish(f"{UUID}/status", b"sideways")
            await publisher.publish(f"{UUID}/logs/error", "still alive")
            await wait_for_log(state, UUID, "still alive")
            during = [record.getMessage() for record in caplog.records if "dropped" in record.getMessage()]
            # The interval passes: the next batch reports what was held back, one line per reason.
            monotonic.now += DROP_LOG_INTERVAL_SECONDS
            await publisher.publish(f"{UUID}/logs/error", "later")
            await wait_for_log(state, UUID, "later")

        assert (counted("heartbeat", "bad_json"), counted("status", "unknown_status")) == (
            before[0] + FLOOD // 2,
            before[1] + FLOOD // 2,
        )
        assert len(during) == 2, during  # the first of each reason, at once
        lines = [record.getMessage() for record in caplog.records if "dropped" in record.getMessage()]
        assert len(lines) == 4, lines
        assert any(line.startswith(f"dropped {FLOOD // 2 - 1} MQTT messages (bad_json)") for line in lines), lines
        assert any(line.startswith(f"dropped {FLOOD // 2 - 1} MQTT messages (unknown_status)") for line in lines)
        assert all(state.settings.MQTT_TOPIC_PREFIX in line for line in lines)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _has_log(items: Sequence[Received], message: str) -> bool:
    return any(
        isinstance(item.result, Parsed)
        and any(isinstance(action, LogLine) and action.record.message == message for action in item.result.actions)
        for item in items
    )


class TestFailedWrites:
    async def test_a_poison_message_is_isolated_and_the_rest_of_its_batch_lands(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        async def poison(stage: str, items: Sequence[Received]) -> None:
            if stage == BEFORE_COMMIT and _has_log(items, "poison"):
                raise ValueError("this message breaks the transaction")

        before = counted("logs", "store_failed")
        await service_factory(fault_hook=poison, batch_window=0.2)
        for message in ("good-1", "poison", "good-2"):
            await publisher.publish(f"{UUID}/logs/info", message)
        await publisher.publish(f"{UUID}/logs/info", "sentinel")
        await wait_for_log(state, UUID, "sentinel")

        assert [entry.message for entry in await logs_of(state, UUID)] == ["good-1", "good-2", "sentinel"]
        assert counted("logs", "store_failed") == before + 1

    async def test_a_transient_database_error_is_retried_until_it_commits(
        self, backend: str, state: AppState, service_factory: ServiceFactory, publisher: Publisher
    ) -> None:
        failures: list[str] = []

        async def flaky(stage: str, items: Sequence[Received]) -> None:
            if stage == BEFORE_COMMIT and len(failures) < 2:
                failures.append(stage)
                raise OperationalError("INSERT ...", {}, ConnectionResetError("connection reset"))

        await service_factory(fault_hook=flaky)
        await publisher.publish(f"{UUID}/logs/warn", json.dumps({"message": "kept", "message_id": "k-1"}))
        await wait_for_log(state, UUID, "kept")

        assert len(failures) == 2
        assert [entry.message for entry in await logs_of(state, UUID)] == ["kept"]
