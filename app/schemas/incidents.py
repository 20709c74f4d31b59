"""Status history, uptime and incident shapes (SPEC §12, snake_case)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from app.models import DisplayStatus, StatusReason
from app.schemas.common import NO_NUL_PATTERN, Timestamp

# An absolute http(s) URL: scheme, host name or address (no brackets), optional port, then anything printable.
URL_PATTERN = r"^https?://[A-Za-z0-9.-]*[A-Za-z0-9](:[0-9]{1,5})?([/?#][^\s]*)?$"
# What a webhook may subscribe to; a `group_alert` stands in for many of one kind.
WebhookEvent = TypeAliasType("WebhookEvent", Literal["incident_opened", "incident_reminder", "incident_recovered"])


class StatusChangeRead(BaseModel):
    """A confirmed change of status, with the screenshots of that moment (kept while the change is listed)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: DisplayStatus | None = Field(alias="from", description="The status before.")
    to: DisplayStatus
    at: datetime = Field(description="When the new status was first seen (it then held the confirm time).")
    reasons: list[StatusReason] = Field(examples=[["heartbeat_late"]])
    screenshot_hash: str | None = Field(description="The display's latest screenshot at that moment.")
    priority_screenshot_hash: str | None = Field(description="Its latest priority screenshot at that moment.")


class StatusHistoryRead(BaseModel):
    client_uuid: str
    hours: int
    since: datetime
    transitions: list[StatusChangeRead] = Field(description="Oldest first; at most the newest 1000.")


class IncidentRead(BaseModel):
    id: int
    client_uuid: str
    hostname: str | None
    description: str | None
    group_id: int | None = Field(description="The display's group when the incident opened.")
    status: DisplayStatus = Field(description="`offline` or `critical`: the status that opened it.")
    reasons: list[StatusReason]
    opened_at: datetime
    closed_at: datetime | None = Field(description="When the display recovered; null while open.")
    open: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="The name of the token that acknowledged it.")
    screenshot_hash: str | None
    priority_screenshot_hash: str | None


class IncidentList(BaseModel):
    incidents: list[IncidentRead]
    count: int


def _every_event() -> list[WebhookEvent]:
    return ["incident_opened", "incident_reminder", "incident_recovered"]


class WebhookCreate(BaseModel):
    """A webhook: where to POST notifications, the secret that signs them, and which ones it gets."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://alerts.example.org/infoscreen", "secret": "a-long-random-secret", "group_id": 3}
            ]
        },
    )

    url: StrictStr = Field(max_length=2000, pattern=URL_PATTERN, description="An absolute http(s) URL.")
    secret: StrictStr = Field(
        min_length=16, max_length=200, pattern=NO_NUL_PATTERN, description="Signs every body (HMAC-SHA256)."
    )
    group_id: StrictInt | None = Field(
        default=None, ge=1, lt=2**31, description="Only displays of this group; null: every display."
    )
    events: list[WebhookEvent] = Field(
        default_factory=_every_event,
        min_length=1,
        description="The kinds it receives (default all); a group alert stands in for its kind.",
    )

    @field_validator("url")
    @classmethod
    def _absolute_http(cls, value: str) -> str:
        return check_url(value)


class WebhookUpdate(BaseModel):
    """Any of these; `group_id: null` removes the group filter."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr | SkipJsonSchema[None] = Field(default=None, max_length=2000, pattern=URL_PATTERN)
    secret: StrictStr | SkipJsonSchema[None] = Field(
        default=None, min_length=16, max_length=200, pattern=NO_NUL_PATTERN
    )
    group_id: StrictInt | None = Field(default=None, ge=1, lt=2**31)
    events: list[WebhookEvent] | SkipJsonSchema[None] = Field(default=None, min_length=1)

    @field_validator("url", "secret", "events")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, not null")
        return value

    @field_validator("url")
    @classmethod
    def _absolute_http(cls, value: str) -> str:
        return check_url(value)


class WebhookRead(BaseModel):
    id: int
    url: str
    group_id: int | None
    events: list[WebhookEvent]
    created_at: datetime


class WebhookList(BaseModel):
    webhooks: list[WebhookRead]


def check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ValueError("must be an absolute http or https URL")
    return value


Weekday = TypeAliasType("Weekday", Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
_HH_MM = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"


class MaintenanceWindowCreate(BaseModel):
    """One display or one group; once (`starts_at` to `ends_at`), or weekly (`weekdays`, `start_time`,
    `end_time` on the wall clock of `MAINTENANCE_TIME_ZONE`, optionally only between `starts_at` and `ends_at`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "group_id": 3,
                    "weekdays": ["mon", "tue", "wed", "thu", "fri"],
                    "start_time": "22:00",
                    "end_time": "06:00",
                },
                {"client_uuid": "lobby-1", "starts_at": "2026-03-10T08:00:00Z", "ends_at": "2026-03-10T12:00:00Z"},
            ]
        },
    )

    client_uuid: StrictStr | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    group_id: StrictInt | None = Field(default=None, ge=1, lt=2**31)
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    weekdays: list[Weekday] | None = Field(default=None, min_length=1, max_length=7)
    start_time: StrictStr | None = Field(default=None, pattern=_HH_MM, description="Local HH:MM.")
    end_time: StrictStr | None = Field(
        default=None, pattern=_HH_MM, description="Local HH:MM; at or before `start_time`: the next day."
    )
    description: StrictStr | None = Field(default=None, max_length=255, pattern=NO_NUL_PATTERN)

    @model_validator(mode="after")
    def _one_target_one_schedule(self) -> MaintenanceWindowCreate:
        if (self.client_uuid is None) == (self.group_id is None):
            raise ValueError("give exactly one of client_uuid and group_id")
        weekly = (self.weekdays, self.start_time, self.end_time)
        if any(part is not None for part in weekly):
            if any(part is None for part in weekly):
                raise ValueError("a weekly window needs weekdays, start_time and end_time")
        elif self.starts_at is None or self.ends_at is None:
            raise ValueError("a one-off window needs starts_at and ends_at")
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class MaintenanceWindowRead(BaseModel):
    id: int
    client_uuid: str | None
    group_id: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    weekdays: list[Weekday] | None
    start_time: str | None
    end_time: str | None
    description: str | None
    time_zone: str = Field(description="The wall clock of `start_time` and `end_time` (MAINTENANCE_TIME_ZONE).")
    active_until: datetime | None = Field(description="When the window now in force ends; null when not in force.")


class MaintenanceWindowList(BaseModel):
    maintenance_windows: list[MaintenanceWindowRead]
