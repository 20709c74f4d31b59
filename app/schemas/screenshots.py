"""Screenshot upload and history shapes (SPEC §6.2, §7)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.models import ScreenAnalysis, ScreenshotType

__all__ = ["ScreenAnalysis", "ScreenshotType"]


class ScreenshotAccepted(BaseModel):
    hash: str = Field(description="SHA-256 hex of the image bytes.", examples=["9f86d081884c7d65..."])
    screenshot_type: ScreenshotType
    received_at: datetime = Field(description="Server time of arrival (the priority TTL counts from here).")


class ScreenshotHistoryItem(BaseModel):
    id: int
    screenshot_type: ScreenshotType
    received_at: datetime
    hash: str
    size: int = Field(description="Bytes.")
    url: str = Field(examples=["/screenshots/display-1/history/42"])
    analysis: ScreenAnalysis | None = Field(
        description="What the service sees in this screenshot (SPEC §14); null until it is analysed.",
        examples=["OK"],
    )


class ScreenshotHistory(BaseModel):
    screenshots: list[ScreenshotHistoryItem] = Field(description="Newest first.")
    count: int
