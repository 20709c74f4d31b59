"""Client and group management shapes (snake_case)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator
from pydantic.json_schema import SkipJsonSchema

from app.models import (
    DetectedScreenReason,
    DisplayStatus,
    PriorityScreenshotType,
    ProcessStatus,
    ScreenAnalysis,
    ScreenHealthStatus,
    ScreenshotType,
    StatusReason,
)
from app.schemas.common import NO_NUL_PATTERN


class ClientRead(BaseModel):
    uuid: str
    hostname: str | None
    description: str | None
    ip: str | None
    model: str | None
    group_id: int | None
    group_name: str | None
    registration_time: datetime | None
    last_alive: datetime | None
    is_active: bool
    is_alive: bool
    status: DisplayStatus = Field(description="Over the last 24 hours.")
    status_reasons: list[StatusReason] = Field(
        description="Why the display has its status (none when healthy).", examples=[["heartbeat_late"]]
    )
    current_event_id: int | None
    current_process: str | None
    process_status: ProcessStatus | None
    process_pid: int | None
    screen_health_status: ScreenHealthStatus | None = Field(
        description="What the display reports: OK, BLACK, FROZEN or UNKNOWN."
    )
    detected_screen_health: ScreenAnalysis | None = Field(
        description="What the service sees in the display's latest analysed screenshot: OK, BLACK or FROZEN "
        "(null until one is analysed); BLACK or FROZEN makes the display critical like a reported one."
    )
    detected_screen_health_reason: DetectedScreenReason | None = Field(
        description="`screen_black` or `screen_frozen` when detected, else null.", examples=["screen_black"]
    )
    last_screenshot_analyzed: datetime | None
    last_screenshot_hash: str | None
    latest_screenshot_type: ScreenshotType | None
    last_priority_screenshot_type: PriorityScreenshotType | None
    last_priority_received_at: datetime | None
    last_priority_screenshot_hash: str | None


_UPTIME = "Share of the time not offline (0 to 1) since the evaluator first saw the display; null before that."


class ClientDetail(ClientRead):
    """One client, with its uptime over 24 hours, 7 days and 30 days."""

    uptime_24h: float | None = Field(description=_UPTIME, examples=[0.998])
    uptime_7d: float | None = Field(description=_UPTIME)
    uptime_30d: float | None = Field(description=_UPTIME)


class ClientList(BaseModel):
    clients: list[ClientRead]
    count: int


class ClientUpdate(BaseModel):
    """Any of these; `group_id: null` ungroups the client."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"description": "Lobby", "group_id": 1}]})

    description: StrictStr | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)
    group_id: StrictInt | None = Field(default=None, ge=1, lt=2**31)
    # Absent means "unchanged"; null is refused (400), not stored (the column is NOT NULL).
    is_active: StrictBool | SkipJsonSchema[None] = None

    @field_validator("is_active")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("is_active must be true or false")
        return value


class GroupRead(BaseModel):
    id: int
    name: str
    client_count: int


class GroupList(BaseModel):
    groups: list[GroupRead]


class GroupWrite(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Main building"}]})

    name: StrictStr = Field(min_length=1, max_length=100, pattern=NO_NUL_PATTERN)
