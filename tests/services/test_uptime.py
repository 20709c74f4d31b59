"""Uptime (SPEC §12) as a pure rule: the share of a window not offline, from the confirmed transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.services.status_history import Change, uptime

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


class TestUptime:
    def test_no_change_in_the_window_is_the_current_status_throughout(self) -> None:
        assert uptime([], current="warning", tracked_since=hours_ago(48), now=NOW, window=DAY) == 1.0
        assert uptime([], current="offline", tracked_since=hours_ago(48), now=NOW, window=DAY) == 0.0

    def test_an_outage_inside_the_window(self) -> None:
        changes = [Change(hours_ago(6), "healthy", "offline"), Change(hours_ago(3), "offline", "critical")]
        assert uptime(changes, current="critical", tracked_since=hours_ago(48), now=NOW, window=DAY) == pytest.approx(
            1 - 3 / 24
        )

    def test_an_outage_that_began_before_the_window_counts_from_its_start(self) -> None:
        changes = [Change(hours_ago(30), "healthy", "offline"), Change(hours_ago(12), "offline", "healthy")]
        assert uptime(changes, current="healthy", tracked_since=hours_ago(48), now=NOW, window=DAY) == pytest.approx(
            0.5
        )

    def test_still_offline_counts_up_to_now(self) -> None:
        changes = [Change(hours_ago(2), "healthy", "offline")]
        assert uptime(changes, current="offline", tracked_since=hours_ago(48), now=NOW, window=DAY) == pytest.approx(
            1 - 2 / 24
        )

    def test_only_the_tracked_part_of_the_window_counts(self) -> None:
        changes = [Change(hours_ago(1), "healthy", "offline")]
        assert uptime(changes, current="offline", tracked_since=hours_ago(4), now=NOW, window=DAY) == pytest.approx(
            0.75
        )
        assert uptime([], current="healthy", tracked_since=NOW, now=NOW, window=DAY) is None
