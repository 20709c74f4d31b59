"""Status history, uptime and incident shapes (SPEC §12, snake_case)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import DisplayStatus, StatusReason


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
