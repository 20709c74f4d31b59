"""Maintenance windows (SPEC §12): when a display's notifications are silenced (its history is not).

A window covers one display or one group, either once (`starts_at` to `ends_at`) or weekly: on the
given weekdays from `start_time` to `end_time` on the wall clock of `MAINTENANCE_TIME_ZONE` (an end
at or before the start runs past midnight into the next day), optionally only between `starts_at`
and `ends_at`. Wall-clock times follow daylight saving time: a night window 22:00-06:00 is 22:00-06:00
local on both sides of the change (8 or 9 hours of UTC on the nights of the change).

The rules here are pure: they take the window, the moment and the time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import MaintenanceWindow

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    client_uuid: str | None
    group_id: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    # Weekly recurrence: weekday numbers (Monday 0) and local times; None for a one-off window.
    weekdays: frozenset[int] | None = None
    start_time: time | None = None
    end_time: time | None = None

    def covers(self, client_uuid: str, group_id: int | None) -> bool:
        if self.client_uuid is not None:
            return self.client_uuid == client_uuid
        return group_id is not None and self.group_id == group_id


def _occurrences(window: Window, moment: datetime, zone: ZoneInfo) -> Iterable[tuple[datetime, datetime]]:
    """The weekly occurrences that may hold `moment`: those starting on its local day or the day before."""
    assert window.weekdays is not None
    assert window.start_time is not None
    assert window.end_time is not None
    today = moment.astimezone(zone).date()
    for day in (today - timedelta(days=1), today):
        if day.weekday() not in window.weekdays:
            continue
        start = _local(day, window.start_time, zone)
        end_day = day if window.end_time > window.start_time else day + timedelta(days=1)
        yield start, _local(end_day, window.end_time, zone)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The moment a wall-clock time happens on a day; a time skipped by a DST change counts as after it."""
    return datetime.combine(day, at, tzinfo=zone)


def active_until(window: Window, moment: datetime, zone: ZoneInfo) -> datetime | None:
    """When the window's occurrence holding `moment` ends, or None when the window is not active then."""
    if window.starts_at is not None and moment < window.starts_at:
        return None
    if window.ends_at is not None and moment >= window.ends_at:
        return None
    if window.weekdays is None:
        return window.ends_at
    for start, end in _occurrences(window, moment, zone):
        if start <= moment < end:
            return end if window.ends_at is None else min(end, window.ends_at)
    return None


def silenced_until(
    windows: Sequence[Window], *, client_uuid: str, group_id: int | None, moment: datetime, zone: ZoneInfo
) -> datetime | None:
    """Until when the display's notifications are silenced at `moment` (the latest end of its active
    windows), or None when they are not."""
    ends = [
        end
        for window in windows
        if window.covers(client_uuid, group_id) and (end := active_until(window, moment, zone)) is not None
    ]
    return max(ends) if ends else None


def window_of(row: MaintenanceWindow | object) -> Window:
    """The rule's view of a stored window (a `MaintenanceWindow` or a row with its columns)."""
    weekdays: str | None = getattr(row, "weekdays", None)
    start_time: str | None = getattr(row, "start_time", None)
    end_time: str | None = getattr(row, "end_time", None)
    return Window(
        client_uuid=getattr(row, "client_uuid", None),
        group_id=getattr(row, "group_id", None),
        starts_at=getattr(row, "starts_at", None),
        ends_at=getattr(row, "ends_at", None),
        weekdays=frozenset(int(day) for day in weekdays.split(",")) if weekdays else None,
        start_time=time.fromisoformat(start_time) if start_time else None,
        end_time=time.fromisoformat(end_time) if end_time else None,
    )


_WINDOWS = MaintenanceWindow.__table__  # type: ignore[attr-defined]


async def load_windows(connection: AsyncConnection) -> list[Window]:
    """Every stored window (a short list: the evaluator reads it once per pass with events)."""
    return [window_of(row) for row in (await connection.execute(select(_WINDOWS))).all()]


def window_entry(window: MaintenanceWindow, *, now: datetime, zone: ZoneInfo, zone_name: str) -> dict[str, object]:
    """The window as the API shows it, with when the occurrence in force now ends."""
    return {
        "id": window.id,
        "client_uuid": window.client_uuid,
        "group_id": window.group_id,
        "starts_at": window.starts_at,
        "ends_at": window.ends_at,
        "weekdays": [WEEKDAYS[int(day)] for day in window.weekdays.split(",")] if window.weekdays else None,
        "start_time": window.start_time,
        "end_time": window.end_time,
        "description": window.description,
        "time_zone": zone_name,
        "active_until": active_until(window_of(window), now, zone),
    }
