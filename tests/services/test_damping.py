"""Flap damping (SPEC §12) as pure rules: a status is recorded once it held the confirm time; recovery
from offline needs heartbeats in a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import DisplayStatus
from app.services.damping import Damping, Tracked, Transition, advance, recheck_at

T0 = datetime(2026, 3, 9, 21, 0, tzinfo=UTC)
DAMPING = Damping(confirm_seconds=30, recovery_heartbeats=2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def healthy_since_start() -> Tracked:
    return Tracked(status="healthy", reasons=(), status_since=T0, tracked_since=T0)


def step(
    tracked: Tracked | None, observed: DisplayStatus, seconds: float, *, heartbeats: int = 0
) -> tuple[Tracked, Transition | None]:
    reasons = {"offline": ("heartbeat_late",), "critical": ("error_logs",), "warning": ("warn_logs",)}
    return advance(
        tracked,
        observed=observed,
        reasons=reasons.get(observed, ()),  # type: ignore[arg-type]
        heartbeat_count=heartbeats,
        now=at(seconds),
        damping=DAMPING,
    )


class TestConfirmTime:
    def test_first_observation_is_taken_without_a_transition(self) -> None:
        tracked, transition = step(None, "offline", 0, heartbeats=7)
        assert transition is None
        assert (tracked.status, tracked.status_since, tracked.tracked_since) == ("offline", T0, T0)
        assert tracked.offline_heartbeats == 7

    def test_a_new_status_is_pending_until_it_held_the_confirm_time(self) -> None:
        tracked, transition = step(healthy_since_start(), "critical", 10)
        assert transition is None
        assert (tracked.status, tracked.pending_status, tracked.pending_since) == ("healthy", "critical", at(10))
        assert recheck_at(tracked, DAMPING) == at(40)
        tracked, transition = step(tracked, "critical", 39.9)
        assert transition is None
        assert tracked.status == "healthy"
        tracked, transition = step(tracked, "critical", 40)
        assert transition == Transition(from_status="healthy", to_status="critical", at=at(10), reasons=("error_logs",))
        assert transition.opens_incident
        assert not transition.closes_incident
        assert (tracked.status, tracked.status_since, tracked.pending_status) == ("critical", at(10), None)
        assert recheck_at(tracked, DAMPING) is None

    def test_flapping_faster_than_the_confirm_time_records_nothing(self) -> None:
        tracked = healthy_since_start()
        for second in range(0, 600, 10):
            tracked, transition = step(tracked, "offline" if second % 20 == 0 else "healthy", second)
            assert transition is None
        assert tracked.status == "healthy"

    def test_a_pending_status_replaced_by_another_starts_its_own_confirm_time(self) -> None:
        tracked, _ = step(healthy_since_start(), "warning", 0)
        tracked, _ = step(tracked, "critical", 20)
        tracked, transition = step(tracked, "critical", 45)
        assert transition is None
        tracked, transition = step(tracked, "critical", 50)
        assert transition is not None
        assert transition.at == at(20)
        assert transition.to_status == "critical"

    def test_zero_confirm_time_records_at_the_second_observation(self) -> None:
        damping = Damping(confirm_seconds=0, recovery_heartbeats=1)
        tracked, transition = advance(
            healthy_since_start(), observed="warning", reasons=(), heartbeat_count=0, now=at(1), damping=damping
        )
        assert transition is None
        tracked, transition = advance(
            tracked, observed="warning", reasons=(), heartbeat_count=0, now=at(1), damping=damping
        )
        assert transition is not None
        assert transition.to_status == "warning"


class TestRecovery:
    def offline(self, heartbeats: int) -> Tracked:
        tracked, _ = step(healthy_since_start(), "offline", 0, heartbeats=heartbeats)
        tracked, transition = step(tracked, "offline", 30, heartbeats=heartbeats)
        assert transition is not None
        assert transition.to_status == "offline"
        return tracked

    def test_recovery_needs_the_configured_heartbeats(self) -> None:
        tracked = self.offline(heartbeats=100)
        tracked, transition = step(tracked, "healthy", 60, heartbeats=101)
        assert transition is None
        assert tracked.status == "offline"
        tracked, transition = step(tracked, "healthy", 120, heartbeats=102)
        assert transition is not None
        assert (transition.from_status, transition.to_status, transition.at) == ("offline", "healthy", at(120))
        assert transition.closes_incident

    def test_heartbeats_count_only_since_the_display_was_last_seen_offline(self) -> None:
        tracked = self.offline(heartbeats=100)
        tracked, _ = step(tracked, "healthy", 60, heartbeats=101)
        # Down again before the second heartbeat: the count starts over.
        tracked, transition = step(tracked, "offline", 300, heartbeats=101)
        assert transition is None
        assert tracked.offline_heartbeats == 101
        tracked, transition = step(tracked, "healthy", 360, heartbeats=102)
        assert transition is None
        assert tracked.status == "offline"
        tracked, transition = step(tracked, "critical", 420, heartbeats=103)
        assert transition is not None
        assert transition.to_status == "critical"
        assert not transition.opens_incident
        assert not transition.closes_incident

    def test_reasons_of_an_unchanged_status_follow_without_a_transition(self) -> None:
        tracked = self.offline(heartbeats=0)
        tracked, transition = advance(
            tracked, observed="offline", reasons=("last_will",), heartbeat_count=0, now=at(90), damping=DAMPING
        )
        assert transition is None
        assert tracked.reasons == ("last_will",)
