"""The MQTT topic table of SPEC §6.1: topic + payload -> what to apply, or why it is dropped.

Pure functions, no I/O: every payload is validated here (pydantic models from `app.schemas.ingest`,
uuid, base64, magic bytes, size) before anything touches the database or the disk.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.config import Settings
from app.errors import AppError, PayloadTooLarge
from app.models import SCREENSHOT_TYPES
from app.schemas.common import INVALID_TIMESTAMP_ERROR
from app.schemas.ingest import (
    MAX_CLOCK_AHEAD,
    DashboardPayload,
    HealthPayload,
    HeartbeatPayload,
    LogPayload,
    LogRecord,
    ScreenshotJson,
    normalize_level,
)
from app.services.ingest import valid_uuid
from app.services.screenshots import check_screenshot, detect_image_format

# Topic kinds under `{MQTT_TOPIC_PREFIX}/{uuid}/`; logs carry the level as a fourth level.
HEARTBEAT, HEALTH, LOGS, SCREENSHOT, DASHBOARD, STATUS = (
    "heartbeat",
    "health",
    "logs",
    "screenshot",
    "dashboard",
    "status",
)
KINDS = (HEARTBEAT, HEALTH, LOGS, SCREENSHOT, DASHBOARD, STATUS)
UNKNOWN_KIND = "unknown"


def subscription_filters(prefix: str) -> list[str]:
    """Two non-overlapping filters: every known topic, plus unknown kinds and levels so they are counted."""
    return [f"{prefix}/+/+", f"{prefix}/+/logs/+"]


@dataclass(frozen=True)
class Liveness:
    """A heartbeat or health message (or a dashboard's health): alive at `received_at`, these fields."""

    client_uuid: str
    fields: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class LogLine:
    client_uuid: str
    record: LogRecord


@dataclass(frozen=True)
class ScreenshotUpload:
    client_uuid: str
    image: bytes = field(repr=False)
    screenshot_type: str
    captured_at: datetime | None
    received_at: datetime


@dataclass(frozen=True)
class StatusChange:
    client_uuid: str
    online: bool
    received_at: datetime


Action = Liveness | LogLine | ScreenshotUpload | StatusChange


@dataclass(frozen=True)
class Parsed:
    """A usable message: what to apply, and the outcome to count once it is stored."""

    kind: str
    client_uuid: str
    actions: list[Action]
    outcome: str = "stored"


@dataclass(frozen=True)
class Rejected:
    """A message that can never become valid: dropped, logged once, counted, acknowledged."""

    kind: str
    reason: str


class _Drop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_message(topic: str, payload: bytes, *, settings: Settings, received_at: datetime) -> Parsed | Rejected:
    """What a message on `topic` asks for, or why it is refused."""
    levels = topic.split("/")
    prefix = settings.MQTT_TOPIC_PREFIX.split("/")
    rest = levels[len(prefix) :] if levels[: len(prefix)] == prefix else []
    kind = rest[1] if len(rest) >= 2 and rest[1] in KINDS else UNKNOWN_KIND
    if kind == UNKNOWN_KIND or len(rest) != (3 if kind == LOGS else 2):
        return Rejected(kind, "unknown_topic")
    client_uuid = rest[0]
    if not valid_uuid(client_uuid):
        return Rejected(kind, "bad_uuid")
    try:
        actions, outcome = _PARSERS[kind](client_uuid, rest, payload, settings, received_at)
    except _Drop as drop:
        return Rejected(kind, drop.reason)
    except ValidationError as error:
        if any(detail["type"] == INVALID_TIMESTAMP_ERROR for detail in error.errors()):
            return Rejected(kind, "invalid_timestamp")
        return Rejected(kind, "invalid_payload")
    return Parsed(kind, client_uuid, actions, outcome)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Drop("bad_json") from None
    if not isinstance(value, dict):
        raise _Drop("bad_json")
    return value


def _heartbeat(
    client_uuid: str, _rest: list[str], payload: bytes, _settings: Settings, received_at: datetime
) -> tuple[list[Action], str]:
    if not payload.strip():
        return [Liveness(client_uuid, {}, received_at)], "stored"
    body = HeartbeatPayload.model_validate(_json_object(payload))
    return [Liveness(client_uuid, body.model_dump(exclude_unset=True), received_at)], "stored"


def _health(
    client_uuid: str, _rest: list[str], payload: bytes, _settings: Settings, received_at: datetime
) -> tuple[list[Action], str]:
    body = HealthPayload.model_validate(_json_object(payload))
    return [Liveness(client_uuid, body.model_dump(exclude_unset=True), received_at)], "stored"


def _log(
    client_uuid: str, rest: list[str], payload: bytes, _settings: Settings, received_at: datetime
) -> tuple[list[Action], str]:
    level = normalize_level(rest[2])
    if level is None:
        raise _Drop("unknown_level")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise _Drop("bad_encoding") from None
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else None
    except (ValueError, RecursionError):
        value = None  # a plain string that happens to start with "{" (or nests beyond the decoder)
    if isinstance(value, dict):
        body = LogPayload.model_validate(value)
    elif text.strip():
        body = LogPayload(message=text)
    else:
        raise _Drop("empty")
    record = LogRecord(
        level=level,
        message=body.message,
        context=body.context,
        # Logs without their own time are stamped at arrival, not at the (later) batch commit.
        timestamp=body.timestamp or received_at,
        message_id=body.message_id,
    )
    return [LogLine(client_uuid, record)], "stored"


def _decode_image(data: str, settings: Settings) -> bytes:
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]  # a data URL: `data:image/jpeg;base64,...`
    # Refuse before decoding: base64 is 4/3 of the bytes (+ padding and line breaks).
    if len(data) > settings.MAX_SCREENSHOT_BYTES * 4 // 3 + 1024:
        raise _Drop("too_large")
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _Drop("bad_base64") from None


def _screenshot_action(
    client_uuid: str,
    image: bytes,
    screenshot_type: str | None,
    captured_at: datetime | None,
    settings: Settings,
    received_at: datetime,
) -> tuple[ScreenshotUpload, str]:
    """Over MQTT an unknown type is stored as periodic and counted (there is no one to answer)."""
    outcome = "stored"
    normalized = (screenshot_type or "periodic").strip().lower()
    if normalized not in SCREENSHOT_TYPES:
        normalized, outcome = "periodic", "stored_unknown_type_as_periodic"
    try:
        check_screenshot(settings=settings, image=image, screenshot_type=normalized)
    except PayloadTooLarge:
        raise _Drop("too_large") from None
    except AppError:
        raise _Drop("not_an_image") from None
    if captured_at is not None and captured_at > received_at + MAX_CLOCK_AHEAD:
        captured_at = received_at  # a display clock far ahead: the capture time is its arrival
    return ScreenshotUpload(client_uuid, image, normalized, captured_at, received_at), outcome


def _screenshot(
    client_uuid: str, _rest: list[str], payload: bytes, settings: Settings, received_at: datetime
) -> tuple[list[Action], str]:
    if detect_image_format(payload) is not None:
        action, outcome = _screenshot_action(client_uuid, payload, None, None, settings, received_at)
        return [action], outcome
    if not payload.lstrip().startswith(b"{"):
        raise _Drop("not_an_image")  # neither JPEG/PNG bytes nor a JSON object
    if len(payload) > settings.MAX_SCREENSHOT_BYTES * 4 // 3 + 64 * 1024:
        raise _Drop("too_large")
    body = ScreenshotJson.model_validate(_json_object(payload))
    image = _decode_image(body.image, settings)
    action, outcome = _screenshot_action(
        client_uuid, image, body.screenshot_type, body.timestamp, settings, received_at
    )
    return [action], outcome


def _dashboard(
    client_uuid: str, _rest: list[str], payload: bytes, settings: Settings, received_at: datetime
) -> tuple[list[Action], str]:
    if len(payload) > settings.MAX_SCREENSHOT_BYTES * 4 // 3 + 64 * 1024:
        raise _Drop("too_large")
    body = DashboardPayload.model_validate(_json_object(payload))
    image = _decode_image(body.screenshot.data, settings)
    screenshot_type = body.screenshot.screenshot_type or body.screenshot_type
    shot, outcome = _screenshot_action(
        client_uuid, image, screenshot_type, body.screenshot.timestamp, settings, received_at
    )
    actions: list[Action] = []
    if body.health is not None:
        actions.append(Liveness(client_uuid, body.health.model_dump(exclude_unset=True), received_at))
    actions.append(shot)
    return actions, outcome


def _status(
    client_uuid: str, _rest: list[str], payload: bytes, _settings: Settings, received_at: datetime
) -> tuple[list[Action], str]:
    word = payload.strip().strip(b'"').lower()
    if word not in (b"online", b"offline"):
        raise _Drop("unknown_status")
    return [StatusChange(client_uuid, word == b"online", received_at)], "stored"


_PARSERS = {
    HEARTBEAT: _heartbeat,
    HEALTH: _health,
    LOGS: _log,
    SCREENSHOT: _screenshot,
    DASHBOARD: _dashboard,
    STATUS: _status,
}
