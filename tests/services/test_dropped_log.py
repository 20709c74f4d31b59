"""DroppedMessageLog: what a flood of dropped MQTT messages writes to the service log (no broker needed)."""

from __future__ import annotations

import logging

import pytest

from app.services.mqtt import DroppedMessageLog


class Monotonic:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


class TestDroppedMessageLog:
    def test_the_first_of_each_reason_at_once_then_one_summary_per_interval(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        clock = Monotonic()
        log = DroppedMessageLog(interval=10.0, clock=clock)
        with caplog.at_level(logging.WARNING, logger="app.services.mqtt"):
            for number in range(1000):
                log.dropped(f"p/d-{number}/heartbeat", "bad_json")
            log.dropped("p/x/firmware", "unknown_topic")
            assert lines(caplog) == [
                "dropped MQTT message on 'p/d-0/heartbeat': bad_json",
                "dropped MQTT message on 'p/x/firmware': unknown_topic",
            ]
            clock.now += 9.9
            log.flush()
            assert len(lines(caplog)) == 2
            clock.now += 0.1
            log.flush()
            assert lines(caplog)[2:] == [
                "dropped 999 MQTT messages (bad_json) in the 10 s since the last report, e.g. on 'p/d-1/heartbeat'"
            ]
            clock.now += 30
            log.flush()  # nothing held back: nothing to say
            log.dropped("p/d-1/heartbeat", "bad_json")  # an interval has passed: reported at once
            assert lines(caplog)[3:] == [
                "dropped 1 MQTT messages (bad_json) in the 30 s since the last report, e.g. on 'p/d-1/heartbeat'"
            ]

    def test_the_first_parse_error_carries_its_traceback(self, caplog: pytest.LogCaptureFixture) -> None:
        log = DroppedMessageLog(clock=Monotonic())
        with caplog.at_level(logging.WARNING, logger="app.services.mqtt"):
            for _ in range(3):
                try:
                    raise ValueError("parser bug")
                except ValueError:
                    log.dropped("p/d/health", "parse_error", exc_info=True)
        [record] = caplog.records
        assert record.exc_info is not None
