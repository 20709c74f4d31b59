"""Maintenance windows as pure rules: one-off and weekly windows, nights across midnight and across DST."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from app.services.maintenance import Window, active_until, silenced_until

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


NIGHTS = Window(
    client_uuid=None,
    group_id=3,
    starts_at=None,
    ends_at=None,
    weekdays=frozenset(range(7)),
    start_time=time(22, 0),
    end_time=time(6, 0),
)
WEEKENDS = Window(
    client_uuid="lobby",
    group_id=None,
    starts_at=None,
    ends_at=None,
    weekdays=frozenset({5}),
    start_time=time(0, 0),
    end_time=time(0, 0),
)


class TestOneOff:
    def test_active_from_start_until_end(self) -> None:
        window = Window(client_uuid="d", group_id=None, starts_at=utc(2026, 3, 9, 8), ends_at=utc(2026, 3, 9, 10))
        assert active_until(window, utc(2026, 3, 9, 7, 59), BERLIN) is None
        assert active_until(window, utc(2026, 3, 9, 8), BERLIN) == utc(2026, 3, 9, 10)
        assert active_until(window, utc(2026, 3, 9, 10), BERLIN) is None


class TestWeekly:
    def test_a_night_window_runs_past_midnight(self) -> None:
        # 2026-01-14 is a Wednesday; Berlin is UTC+1 in winter.
        assert active_until(NIGHTS, utc(2026, 1, 14, 20, 59), BERLIN) is None
        assert active_until(NIGHTS, utc(2026, 1, 14, 21, 0), BERLIN) == utc(2026, 1, 15, 5, 0)
        assert active_until(NIGHTS, utc(2026, 1, 15, 4, 59), BERLIN) == utc(2026, 1, 15, 5, 0)
        assert active_until(NIGHTS, utc(2026, 1, 15, 5, 0), BERLIN) is None

    def test_the_night_of_the_spring_change_is_one_hour_shorter_in_utc(self) -> None:
        # Clocks go from 02:00 CET to 03:00 CEST on 2026-03-29: 22:00 CET to 06:00 CEST is 7 hours.
        start = utc(2026, 3, 28, 21, 0)
        assert active_until(NIGHTS, start, BERLIN) == utc(2026, 3, 29, 4, 0)
        assert active_until(NIGHTS, utc(2026, 3, 29, 3, 59), BERLIN) == utc(2026, 3, 29, 4, 0)
        assert active_until(NIGHTS, utc(2026, 3, 29, 4, 0), BERLIN) is None
        # The next evening starts at 22:00 CEST, 20:00 UTC.
        assert active_until(NIGHTS, utc(2026, 3, 29, 19, 59), BERLIN) is None
        assert active_until(NIGHTS, utc(2026, 3, 29, 20, 0), BERLIN) == utc(2026, 3, 30, 4, 0)

    def test_the_night_of_the_autumn_change_is_one_hour_longer_in_utc(self) -> None:
        # 03:00 CEST back to 02:00 CET on 2026-10-25: 22:00 CEST (20:00 UTC) to 06:00 CET (05:00 UTC).
        assert active_until(NIGHTS, utc(2026, 10, 24, 20, 0), BERLIN) == utc(2026, 10, 25, 5, 0)
        assert active_until(NIGHTS, utc(2026, 10, 25, 4, 59), BERLIN) == utc(2026, 10, 25, 5, 0)
        assert active_until(NIGHTS, utc(2026, 10, 24, 19, 59), BERLIN) is None

    def test_a_whole_day_window(self) -> None:
        # Saturday 2026-03-14 from local midnight (23:00 UTC on Friday) to Sunday's local midnight.
        assert active_until(WEEKENDS, utc(2026, 3, 13, 22, 59), BERLIN) is None
        assert active_until(WEEKENDS, utc(2026, 3, 13, 23, 0), BERLIN) == utc(2026, 3, 14, 23, 0)
        assert active_until(WEEKENDS, utc(2026, 3, 14, 23, 0), BERLIN) is None

    def test_bounds_limit_a_recurrence(self) -> None:
        bounded = Window(
            client_uuid=None,
            group_id=3,
            starts_at=utc(2026, 1, 15, 0),
            ends_at=utc(2026, 1, 15, 3),
            weekdays=NIGHTS.weekdays,
            start_time=NIGHTS.start_time,
            end_time=NIGHTS.end_time,
        )
        assert active_until(bounded, utc(2026, 1, 14, 22), BERLIN) is None
        assert active_until(bounded, utc(2026, 1, 15, 1), BERLIN) == utc(2026, 1, 15, 3)


class TestSilenced:
    def test_by_display_or_group_the_latest_end_wins(self) -> None:
        windows = [NIGHTS, WEEKENDS]
        moment = utc(2026, 3, 13, 23, 30)  # Saturday 00:30 in Berlin: both windows
        assert silenced_until(windows, client_uuid="lobby", group_id=3, moment=moment, zone=BERLIN) == utc(
            2026, 3, 14, 23, 0
        )
        assert silenced_until(windows, client_uuid="other", group_id=3, moment=moment, zone=BERLIN) == utc(
            2026, 3, 14, 5, 0
        )
        assert silenced_until(windows, client_uuid="other", group_id=None, moment=moment, zone=BERLIN) is None
