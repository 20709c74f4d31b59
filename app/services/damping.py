"""Flap damping (SPEC §12), pure: what the evaluator records, given what it observed and when.

A new status is recorded once it has held `confirm_seconds` (observed at every evaluation since it
was first seen); recovery from offline instead needs `recovery_heartbeats` heartbeats in a row since
the display was last seen offline. Nothing here touches I/O; every function takes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.models import DisplayStatus, StatusReason

# Statuses that open an incident (SPEC §12).
BAD_STATUSES: frozenset[str] = frozenset({"offline", "critical"})


@dataclass(frozen=True)
class Damping:
    confirm_seconds: int
    recovery_heartbeats: int


@dataclass(frozen=True)
class Tracked:
    """What the evaluator remembers of a display (a `display_states` row)."""

    status: DisplayStatus
    reasons: tuple[StatusReason, ...]
    status_since: datetime
    tracked_since: datetime
    pending_status: DisplayStatus | None = None
    pending_since: datetime | None = None
    # The display's heartbeat count when it was last seen offline.
    offline_heartbeats: int = 0


@dataclass(frozen=True)
class Transition:
    """A confirmed change of status, `at` the moment the new status was first observed."""

    from_status: DisplayStatus | None
    to_status: DisplayStatus
    at: datetime
    reasons: tuple[StatusReason, ...]

    @property
    def opens_incident(self) -> bool:
        return self.to_status in BAD_STATUSES and self.from_status not in BAD_STATUSES

    @property
    def closes_incident(self) -> bool:
        return self.from_status in BAD_STATUSES and self.to_status not in BAD_STATUSES


def advance(
    tracked: Tracked | None,
    *,
    observed: DisplayStatus,
    reasons: tuple[StatusReason, ...],
    heartbeat_count: int,
    now: datetime,
    damping: Damping,
) -> tuple[Tracked, Transition | None]:
    """The new memory of a display after observing `observed` at `now`, and the transition it confirms.

    A display seen for the first time takes the observed status at once, without a transition (there is
    nothing it changed from). A status that flips back before its confirm time leaves no trace.
    """
    if tracked is None:
        first = Tracked(
            status=observed,
            reasons=reasons,
            status_since=now,
            tracked_since=now,
            offline_heartbeats=heartbeat_count,
        )
        return first, None
    if observed == "offline":
        tracked = replace(tracked, offline_heartbeats=heartbeat_count)
    if observed == tracked.status:
        return replace(tracked, reasons=reasons, pending_status=None, pending_since=None), None
    if tracked.status == "offline":
        if heartbeat_count - tracked.offline_heartbeats < damping.recovery_heartbeats:
            return replace(tracked, pending_status=None, pending_since=None), None
        return _confirm(tracked, observed, reasons, at=now)
    if tracked.pending_status != observed or tracked.pending_since is None:
        return replace(tracked, pending_status=observed, pending_since=now), None
    if now - tracked.pending_since < timedelta(seconds=damping.confirm_seconds):
        return tracked, None
    return _confirm(tracked, observed, reasons, at=tracked.pending_since)


def _confirm(
    tracked: Tracked, observed: DisplayStatus, reasons: tuple[StatusReason, ...], *, at: datetime
) -> tuple[Tracked, Transition]:
    transition = Transition(from_status=tracked.status, to_status=observed, at=at, reasons=reasons)
    confirmed = replace(
        tracked, status=observed, reasons=reasons, status_since=at, pending_status=None, pending_since=None
    )
    return confirmed, transition


def recheck_at(tracked: Tracked, damping: Damping) -> datetime | None:
    """When the evaluator must look again though no input changed: when a pending status is due."""
    if tracked.pending_since is None:
        return None
    return tracked.pending_since + timedelta(seconds=damping.confirm_seconds)
