"""What displays send, over MQTT or HTTP (SPEC §6). Unknown keys are ignored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models import LOG_LEVELS, ProcessStatus, ScreenHealthStatus
from app.schemas.common import NO_NUL_PATTERN

MAX_MESSAGE_CHARS = 8192
# Integers a JSON client holds exactly (IEEE double); bigger ids and pids are refused rather than rounded.
MAX_JSON_INT = 2**53 - 1
MAX_CONTEXT_BYTES = 16 * 1024
MAX_LOGS_PER_REQUEST = 1000
# What `normalize_level` accepts, spelled out for the OpenAPI schema (JSON Schema has no case-insensitive flag).
LEVEL_PATTERN = "^(?:[Ee][Rr][Rr][Oo][Rr]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ii][Nn][Ff][Oo]|[Dd][Ee][Bb][Uu][Gg])$"
LEVEL_ALIASES = {"ERROR": "ERROR", "WARN": "WARN", "WARNING": "WARN", "INFO": "INFO", "DEBUG": "DEBUG"}


def normalize_level(value: str) -> str | None:
    """`error|warn|warning|info|debug` in any case to the stored level, else None."""
    return LEVEL_ALIASES.get(value.strip().upper())


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HeartbeatPayload(_Payload):
    """Any subset of these fields; only the fields present are updated."""

    hostname: str | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    ip: str | None = Field(default=None, max_length=64, pattern=NO_NUL_PATTERN)
    model: str | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    current_event_id: int | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)
    current_process: str | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    process_status: ProcessStatus | None = None
    process_pid: int | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"hostname": "infoscreen-lobby", "ip": "10.0.0.12", "process_status": "running"}]
        },
    )


class HealthPayload(_Payload):
    process_status: ProcessStatus | None = None
    screen_health_status: ScreenHealthStatus | None = None
    current_process: str | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    process_pid: int | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)
    current_event_id: int | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"process_status": "crashed", "screen_health_status": "BLACK"}]},
    )

    @field_validator("screen_health_status", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class LogPayload(_Payload):
    """One log line; on MQTT the level comes from the topic."""

    message: str
    context: dict[str, Any] | None = None
    timestamp: datetime | None = None
    message_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL_PATTERN)

    @field_validator("message")
    @classmethod
    def _cut_message(cls, value: str) -> str:
        # A NUL cannot be stored in PostgreSQL text; the line is kept with U+FFFD in its place.
        return value[:MAX_MESSAGE_CHARS].replace("\x00", "\ufffd")

    @field_validator("context")
    @classmethod
    def _bound_context(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return {"truncated": True} if len(encoded) > MAX_CONTEXT_BYTES else value

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class LogIn(LogPayload):
    """One log line over HTTP: the level travels in the body."""

    level: str = Field(
        examples=["error"],
        description="error, warn, warning, info or debug (any case)",
        json_schema_extra={"pattern": LEVEL_PATTERN},
    )

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"level": "error", "message": "Player crashed", "context": {"pid": 412}, "message_id": "m-1"}]
        },
    )

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = normalize_level(value)
        if level is None:
            raise ValueError(f"Invalid level: {value}. Must be ERROR, WARN, INFO, or DEBUG")
        return level


class LogRecord(BaseModel):
    """A validated log line ready to store."""

    level: str
    message: str
    context: dict[str, Any] | None = None
    timestamp: datetime | None = None
    message_id: str | None = None

    @field_validator("level")
    @classmethod
    def _stored_level(cls, value: str) -> str:
        if value not in LOG_LEVELS:
            raise ValueError(f"unknown level {value}")
        return value


class ScreenshotJson(_Payload):
    """`infoscreen/{uuid}/screenshot` as JSON."""

    image: str
    screenshot_type: str | None = None
    timestamp: datetime | None = None


class DashboardScreenshot(_Payload):
    data: str
    screenshot_type: str | None = None
    timestamp: datetime | None = None


class DashboardPayload(_Payload):
    """`infoscreen/{uuid}/dashboard`: a screenshot and optionally health."""

    screenshot: DashboardScreenshot
    screenshot_type: str | None = None
    health: HealthPayload | None = None
