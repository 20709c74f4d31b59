"""Pure status rules (SPEC §8). Every function takes `now`; nothing here touches I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from app.models import DisplayStatus, StatusReason

# A screen that is black or frozen, whether the display reports it or the service sees it (SPEC §14).
BAD_SCREEN = ("BLACK", "FROZEN")


def is_alive(
    *,
    is_active: bool,
    last_alive: datetime | None,
    offline_announced_at: datetime | None,
    now: datetime,
    grace_seconds: int,
) -> bool:
    """Active, heard from within the grace period, and no `offline` announced since that heartbeat."""
    if not is_active or last_alive is None:
        return False
    if now - last_alive > timedelta(seconds=grace_seconds):
        return False
    return offline_announced_at is None or offline_announced_at < last_alive


def client_status(
    *,
    alive: bool,
    process_status: str | None,
    screen_health_status: str | None,
    log_counts: Mapping[str, int],
    detected_screen_health: str | None = None,
) -> DisplayStatus:
    """offline, then critical, then warning, then healthy; log counts are over the request's window.

    A screen the service detected as BLACK or FROZEN counts like one the display reports so.
    """
    if not alive:
        return "offline"
    if (
        process_status == "crashed"
        or screen_health_status in BAD_SCREEN
        or detected_screen_health in BAD_SCREEN
        or log_counts.get("ERROR", 0) > 0
    ):
        return "critical"
    if process_status in ("starting", "stopped") or log_counts.get("WARN", 0) > 0:
        return "warning"
    return "healthy"


def priority_active(received_at: datetime | None, *, now: datetime, ttl_seconds: int) -> bool:
    """A priority screenshot stays active for the TTL after it arrived (server clock)."""
    return received_at is not None and now - received_at <= timedelta(seconds=ttl_seconds)


def status_reasons(
    *,
    status: DisplayStatus,
    is_active: bool,
    last_alive: datetime | None,
    offline_announced_at: datetime | None,
    process_status: str | None,
    screen_health_status: str | None,
    log_counts: Mapping[str, int],
    detected_screen_health: str | None = None,
) -> list[StatusReason]:
    """Why a display has `status` (as `client_status` decided it): the reasons of that status only.

    Offline: `deactivated`, else `last_will` (an `offline` announced after the last heartbeat), else
    `heartbeat_late` (never heard from, or not within the grace period). Critical and warning: every
    rule of their level that holds, in SPEC §12's order. Healthy: none.
    """
    if status == "offline":
        if not is_active:
            return ["deactivated"]
        if offline_announced_at is not None and (last_alive is None or offline_announced_at >= last_alive):
            return ["last_will"]
        return ["heartbeat_late"]
    reasons: list[StatusReason] = []
    if status == "critical":
        if process_status == "crashed":
            reasons.append("process_crashed")
        screens = (screen_health_status, detected_screen_health)
        if "BLACK" in screens:
            reasons.append("screen_black")
        if "FROZEN" in screens:
            reasons.append("screen_frozen")
        if log_counts.get("ERROR", 0) > 0:
            reasons.append("error_logs")
    elif status == "warning":
        if process_status == "starting":
            reasons.append("process_starting")
        if process_status == "stopped":
            reasons.append("process_stopped")
        if log_counts.get("WARN", 0) > 0:
            reasons.append("warn_logs")
    return reasons


class StatusInputs(Protocol):
    """What the rules read of a display: a row of the `clients` columns of these names."""

    @property
    def is_active(self) -> bool: ...
    @property
    def last_alive(self) -> datetime | None: ...
    @property
    def offline_announced_at(self) -> datetime | None: ...
    @property
    def process_status(self) -> str | None: ...
    @property
    def screen_health_status(self) -> str | None: ...
    @property
    def detected_screen_health(self) -> str | None: ...


def status_of(
    display: StatusInputs, *, log_counts: Mapping[str, int], now: datetime, grace_seconds: int
) -> DisplayStatus:
    """`client_status` of a display's row (alive by `is_alive`)."""
    alive = is_alive(
        is_active=display.is_active,
        last_alive=display.last_alive,
        offline_announced_at=display.offline_announced_at,
        now=now,
        grace_seconds=grace_seconds,
    )
    return client_status(
        alive=alive,
        process_status=display.process_status,
        screen_health_status=display.screen_health_status,
        log_counts=log_counts,
        detected_screen_health=display.detected_screen_health,
    )


def reasons_of(display: StatusInputs, *, status: DisplayStatus, log_counts: Mapping[str, int]) -> list[StatusReason]:
    """`status_reasons` of a display's row that has `status`."""
    return status_reasons(
        status=status,
        is_active=display.is_active,
        last_alive=display.last_alive,
        offline_announced_at=display.offline_announced_at,
        process_status=display.process_status,
        screen_health_status=display.screen_health_status,
        log_counts=log_counts,
        detected_screen_health=display.detected_screen_health,
    )
