"""Response shapes of `/api/client-logs` (SPEC §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.models import (
    DetectedScreenReason,
    DisplayStatus,
    LogLevel,
    PriorityScreenshotType,
    ProcessStatus,
    ScreenAnalysis,
    ScreenHealthStatus,
    ScreenshotType,
    StatusReason,
)
from app.schemas.common import CAMEL_CASE


class LogEntry(BaseModel):
    id: int
    timestamp: datetime
    level: LogLevel = Field(examples=["ERROR"])
    message: str
    context: dict[str, Any] = Field(examples=[{"source": "player", "retry_count": 1}])


class LogEntryWithClient(LogEntry):
    client_uuid: str


class ClientLogsRead(BaseModel):
    client_uuid: str
    logs: list[LogEntry]
    count: int
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next, older page; null on the last page.", examples=[None]
    )


class LevelCountsRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    ERROR: int
    WARN: int
    INFO: int
    DEBUG: int


class ClientInfo(BaseModel):
    hostname: str | None = None
    description: str | None = None


class ClientSummary(BaseModel):
    counts: LevelCountsRead
    info: ClientInfo


class SummaryRead(BaseModel):
    summary: dict[str, ClientSummary]
    period_hours: int
    since: datetime
    timestamp: datetime


class RecentErrorsRead(BaseModel):
    errors: list[LogEntryWithClient]
    count: int


class TestCounts(BaseModel):
    ERROR: int
    WARN: int
    INFO: int


class RecentLog(BaseModel):
    client_uuid: str
    level: LogLevel
    message: str
    timestamp: datetime


class TestRead(BaseModel):
    status: str = Field(examples=["ok"])
    infrastructure: str = Field(examples=["working"])
    total_logs: int
    counts: TestCounts
    recent_5: list[RecentLog]


class OverviewSummary(BaseModel):
    model_config = CAMEL_CASE

    totalClients: int
    onlineClients: int
    offlineClients: int
    healthyClients: int
    warningClients: int
    criticalClients: int
    errorLogs: int
    warnLogs: int
    activePriorityScreenshots: int


class OverviewLogCounts(BaseModel):
    model_config = CAMEL_CASE

    error: int
    warn: int
    info: int
    debug: int


class OverviewClient(BaseModel):
    model_config = CAMEL_CASE

    uuid: str
    hostname: str | None
    description: str | None
    ip: str | None
    model: str | None
    groupId: int | None
    groupName: str | None
    registrationTime: datetime | None
    lastAlive: datetime | None
    isAlive: bool
    status: DisplayStatus
    statusReasons: list[StatusReason] = Field(
        description="Why the display has its status (none when healthy).", examples=[["process_crashed", "error_logs"]]
    )
    currentEventId: int | None
    currentProcess: str | None
    processStatus: ProcessStatus | None
    processPid: int | None
    screenHealthStatus: ScreenHealthStatus | None = Field(
        description="What the display reports: OK, BLACK, FROZEN or UNKNOWN."
    )
    detectedScreenHealth: ScreenAnalysis | None = Field(
        description="What the service sees in the latest analysed screenshot: OK, BLACK or FROZEN (null until "
        "analysed); BLACK or FROZEN makes the display critical like a reported one."
    )
    detectedScreenHealthReason: DetectedScreenReason | None = Field(
        description="`screen_black` or `screen_frozen` when detected, else null.", examples=["screen_black"]
    )
    lastScreenshotAnalyzed: datetime | None
    lastScreenshotHash: str | None
    latestScreenshotType: ScreenshotType = Field(description="`periodic` when the client sent none.")
    priorityScreenshotType: PriorityScreenshotType | None
    priorityScreenshotReceivedAt: datetime | None
    priorityScreenshotHash: str | None = Field(
        description="The SHA-256 of the latest priority screenshot (for `/thumbnails/{hash}`), or null if none."
    )
    hasActivePriorityScreenshot: bool
    screenshotUrl: str
    logCounts24h: OverviewLogCounts
    latestLog: LogEntry | None
    latestError: LogEntry | None


class OverviewRead(BaseModel):
    model_config = CAMEL_CASE

    summary: OverviewSummary
    periodHours: int
    gracePeriodSeconds: int
    since: datetime
    timestamp: datetime
    clients: list[OverviewClient]
