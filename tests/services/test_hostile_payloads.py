"""Hostile MQTT payloads through the pure parser (no broker), and the JSON values that always serialize."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from app import json_values
from app.config import Settings
from app.services.mqtt_topics import LogLine, Parsed, Rejected, ScreenshotUpload, parse_message
from tests.helpers import png_bytes

NOW = datetime(2026, 3, 9, 21, 0, tzinfo=UTC)
UUID = "display-1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, MQTT_ENABLED=False, DATA_DIR=tmp_path)


def parse(settings: Settings, suffix: str, payload: bytes | str) -> Parsed | Rejected:
    data = payload.encode() if isinstance(payload, str) else payload
    return parse_message(f"infoscreen/{UUID}/{suffix}", data, settings=settings, received_at=NOW)


def nested_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def only_log(result: Parsed | Rejected) -> LogLine:
    assert isinstance(result, Parsed), result
    [action] = result.actions
    assert isinstance(action, LogLine)
    return action


class TestTimestamps:
    @pytest.mark.parametrize(
        "timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z", "", 0, True]
    )
    def test_a_log_timestamp_outside_what_is_stored_is_rejected_with_its_reason(
        self, settings: Settings, timestamp: Any
    ) -> None:
        result = parse(settings, "logs/error", json.dumps({"message": "x", "timestamp": timestamp}))
        assert result == Rejected("logs", "invalid_timestamp")

    @pytest.mark.parametrize(("suffix", "kind"), [("screenshot", "screenshot"), ("dashboard", "dashboard")])
    def test_a_screenshot_timestamp_outside_what_is_stored_is_rejected(
        self, settings: Settings, suffix: str, kind: str
    ) -> None:
        image = base64.b64encode(png_bytes()).decode()
        shot = {"timestamp": "0001-01-01T00:00:00+01:00"}
        body = {"image": image, **shot} if kind == "screenshot" else {"screenshot": {"data": image, **shot}}
        assert parse(settings, suffix, json.dumps(body)) == Rejected(kind, "invalid_timestamp")

    def test_a_capture_time_far_ahead_becomes_the_arrival_time(self, settings: Settings) -> None:
        image = base64.b64encode(png_bytes()).decode()
        sane = (NOW + timedelta(minutes=10)).isoformat()
        for sent, kept in (("9999-12-29T00:00:00Z", NOW), (sane, NOW + timedelta(minutes=10))):
            result = parse(settings, "screenshot", json.dumps({"image": image, "timestamp": sent}))
            assert isinstance(result, Parsed)
            [action] = result.actions
            assert isinstance(action, ScreenshotUpload)
            assert action.captured_at == kept


class TestContexts:
    def test_a_context_deeper_than_32_levels_is_truncated(self, settings: Settings) -> None:
        deep = '{"message": "x", "context": ' + nested_text(250) + "}"
        assert only_log(parse(settings, "logs/error", deep)).record.context == {"truncated": True}
        fits = '{"message": "x", "context": ' + nested_text(32) + "}"
        assert only_log(parse(settings, "logs/error", fits)).record.context == json.loads(nested_text(32))

    def test_json_nested_beyond_the_decoder_is_bad_json_or_plain_text(self, settings: Settings) -> None:
        text = nested_text(100_000)
        assert parse(settings, "heartbeat", text) == Rejected("heartbeat", "bad_json")
        assert parse(settings, "health", text) == Rejected("health", "bad_json")
        # A log whose text does not decode is a plain-text message (cut to 8192 characters).
        assert only_log(parse(settings, "logs/info", text)).record.message == text[:8192]

    def test_values_no_encoder_takes_are_made_storable(self, settings: Settings) -> None:
        payload = '{"message": "a\\ud800b", "context": {"s\\udc00": "\\ud83d", "n": NaN, "big": ' + "9" * 40 + "}}"
        record = only_log(parse(settings, "logs/info", payload)).record
        assert record.message == "a\ufffdb"
        assert record.context == {"s\ufffd": "\ufffd", "n": pytest.approx(float("nan"), nan_ok=True), "big": 1e40}
        assert orjson.loads(orjson.dumps(record.context)) == {"s\ufffd": "\ufffd", "n": None, "big": 1e40}


class TestStrictValues:
    @pytest.mark.parametrize(
        ("suffix", "body"),
        [
            ("heartbeat", {"process_pid": False}),
            ("heartbeat", {"current_event_id": 1.0}),
            ("health", {"process_pid": "1"}),
            ("logs/info", {"message": 5}),
            ("logs/info", {"message": "x", "message_id": 5}),
        ],
    )
    def test_loose_values_are_rejected(self, settings: Settings, suffix: str, body: dict[str, Any]) -> None:
        result = parse(settings, suffix, json.dumps(body))
        assert isinstance(result, Rejected)
        assert result.reason == "invalid_payload"


class TestJsonValues:
    def test_dumps_never_fails(self) -> None:
        deep: Any = 1
        for _ in range(1000):
            deep = [deep]
        payload = {
            "deep": deep,
            "big": 2**80,
            "huge": 10**400,
            "text": "a\ud800",
            3: "non-str key",
            "nan": float("nan"),
        }
        decoded = json.loads(json_values.dumps(payload))
        assert decoded["big"] == float(2**80)
        assert decoded["huge"] is None
        assert decoded["text"] == "a\ufffd"
        assert decoded["3"] == "non-str key"
        assert decoded["nan"] is None
        assert json_values.nests_deeper_than(decoded["deep"], 250) is False

    def test_ordinary_values_are_left_alone(self) -> None:
        value = {"a": [1, 2.5, None, True, "ü"], "b": {"c": -(2**63), "d": 2**64 - 1}}
        assert json_values.dumps(value) == orjson.dumps(value)
        assert json_values.bounded_context(value) == value

    @pytest.mark.parametrize(("depth", "deeper"), [(0, False), (1, False), (32, False), (33, True)])
    def test_depth_counts_levels_of_containers(self, depth: int, deeper: bool) -> None:
        value: Any = "leaf"
        for index in range(depth):
            value = {"k": value} if index % 2 else [value]
        assert json_values.nests_deeper_than(value, 32) is deeper

    def test_a_context_larger_than_16_kib_is_truncated(self) -> None:
        assert json_values.bounded_context({"k": "x" * 16 * 1024}) == {"truncated": True}
        fits = {"k": "x" * (16 * 1024 - len('{"k":""}'))}
        assert json_values.bounded_context(fits) == fits
