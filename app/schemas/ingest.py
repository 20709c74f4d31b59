"""What displays send, over MQTT or HTTP (SPEC §6). Unknown keys are ignored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from app.json_values import bounded_context, storable_text
from app.models import LOG_LEVELS, ProcessStatus, ScreenHealthStatus
from app.schemas.common import NO_NUL_PATTERN, Timestamp

MAX_MESSAGE_CHARS = 8192
# Integers a JSON client holds exactly (IEEE double); bigger ids and pids are refused rather than rounded.
MAX_JSON_INT = 2**53 - 1
MAX_LOGS_PER_REQUEST = 1000
# A display's clock this far ahead of the server's is wrong: its log is stored at arrival (SPEC §5).
MAX_CLOCK_AHEAD = timedelta(minutes=10)
# What `normalize_level` accepts, spelled out for the OpenAPI schema (JSON Schema has no case-insensitive flag).
LEVEL_PATTERN = "^(?:[Ee][Rr][Rr][Oo][Rr]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ii][Nn][Ff][Oo]|[Dd][Ee][Bb][Uu][Gg])$"
LEVEL_ALIASES = {"ERROR": "ERROR", "WARN": "WARN", "WARNING": "WARN", "INFO": "INFO", "DEBUG": "DEBUG"}


def normalize_level(value: str) -> str | None:
    """`error|warn|warning|info|debug` in any case to the stored level, else None."""
    return LEVEL_ALIASES.get(value.strip().upper())


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HeartbeatPayload(_Payload):
    """Any subset of these fields; only the fields present are updated."""

    hostname: StrictStr | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    ip: StrictStr | None = Field(default=None, max_length=64, pattern=NO_NUL_PATTERN)
    model: StrictStr | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    current_event_id: StrictInt | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)
    current_process: StrictStr | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    process_status: ProcessStatus | None = None
    process_pid: StrictInt | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"hostname": "infoscreen-lobby", "ip": "10.0.0.12", "process_status": "running"}]
        },
    )


class HealthPayload(_Payload):
    process_status: ProcessStatus | None = None
    screen_health_status: ScreenHealthStatus | None = None
    current_process: StrictStr | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    process_pid: StrictInt | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)
    current_event_id: StrictInt | None = Field(default=None, ge=-MAX_JSON_INT, le=MAX_JSON_INT)

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

    message: StrictStr
    context: dict[str, Any] | None = None
    timestamp: Timestamp | None = None
    message_id: StrictStr | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL_PATTERN)

    @field_validator("message")
    @classmethod
    def _cut_message(cls, value: str) -> str:
        # Neither a NUL nor a lone surrogate can be stored; the line is kept with U+FFFD in their place.
        return storable_text(value[:MAX_MESSAGE_CHARS].replace("\x00", "\ufffd"))

    @field_validator("context")
    @classmethod
    def _bound_context(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else bounded_context(value)


class LogIn(LogPayload):
    """One log line over HTTP: the level travels in the body."""

    level: StrictStr = Field(
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

    image: StrictStr
    screenshot_type: StrictStr | None = None
    timestamp: Timestamp | None = None


class DashboardScreenshot(_Payload):
    data: StrictStr
    screenshot_type: StrictStr | None = None
    timestamp: Timestamp | None = None


class DashboardPayload(_Payload):
    """`infoscreen/{uuid}/dashboard`: a screenshot and optionally health."""

    screenshot: DashboardScreenshot
    screenshot_type: StrictStr | None = None
    health: HealthPayload | None = None
