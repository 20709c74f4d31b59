"""The pure status rules of SPEC §8, with an injected `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import Settings
from app.services.status import client_status, is_alive, priority_active, status_reasons

NOW = datetime(2026, 3, 9, 21, 0, 0, tzinfo=UTC)
GRACE = 170
NO_LOGS = {"ERROR": 0, "WARN": 0, "INFO": 0, "DEBUG": 0}


def alive(
    *,
    last_alive: datetime | None = NOW,
    is_active: bool = True,
    offline_announced_at: datetime | None = None,
    grace: int = GRACE,
) -> bool:
    return is_alive(
        is_active=is_active,
        last_alive=last_alive,
        offline_announced_at=offline_announced_at,
        now=NOW,
        grace_seconds=grace,
    )


def settings_for(env: str, **values: int) -> Settings:
    return Settings(_env_file=None, ENV=env, DATA_DIR=Path("/nonexistent"), **values)  # type: ignore[call-arg, arg-type]


class TestAliveGracePeriod:
    def test_heartbeat_now_is_alive(self) -> None:
        assert alive(last_alive=NOW)

    def test_heartbeat_exactly_grace_ago_is_alive(self) -> None:
        assert alive(last_alive=NOW - timedelta(seconds=GRACE))

    def test_heartbeat_just_past_grace_is_not_alive(self) -> None:
        assert not alive(last_alive=NOW - timedelta(seconds=GRACE, microseconds=1))

    def test_heartbeat_long_ago_is_not_alive(self) -> None:
        assert not alive(last_alive=NOW - timedelta(days=3))

    def test_never_heard_from_is_not_alive(self) -> None:
        assert not alive(last_alive=None)

    def test_inactive_client_is_not_alive_even_with_fresh_heartbeat(self) -> None:
        assert not alive(last_alive=NOW, is_active=False)

    def test_grace_is_the_argument_not_a_constant(self) -> None:
        heartbeat = NOW - timedelta(seconds=175)
        assert not alive(last_alive=heartbeat, grace=170)
        assert alive(last_alive=heartbeat, grace=180)


class TestOfflineAnnouncement:
    def test_offline_announced_after_heartbeat_is_not_alive(self) -> None:
        heartbeat = NOW - timedelta(seconds=10)
        assert not alive(last_alive=heartbeat, offline_announced_at=heartbeat + timedelta(seconds=1))

    def test_heartbeat_after_offline_announcement_is_alive(self) -> None:
        heartbeat = NOW - timedelta(seconds=10)
        assert alive(last_alive=heartbeat, offline_announced_at=heartbeat - timedelta(seconds=1))

    def test_offline_announced_at_the_same_instant_as_heartbeat_wins(self) -> None:
        heartbeat = NOW - timedelta(seconds=10)
        assert not alive(last_alive=heartbeat, offline_announced_at=heartbeat)


class TestGraceFromSettings:
    @pytest.mark.parametrize("env", ["development", "dev", "DEV", "Development"])
    def test_development_uses_dev_grace(self, env: str) -> None:
        assert settings_for(env).heartbeat_grace_seconds == 180

    @pytest.mark.parametrize("env", ["production", "prod"])
    def test_production_uses_prod_grace(self, env: str) -> None:
        assert settings_for(env).heartbeat_grace_seconds == 170

    def test_configured_grace_periods_are_used(self) -> None:
        assert settings_for("dev", HEARTBEAT_GRACE_PERIOD_DEV=42).heartbeat_grace_seconds == 42
        assert settings_for("production", HEARTBEAT_GRACE_PERIOD_PROD=7).heartbeat_grace_seconds == 7

    def test_dev_grace_keeps_a_client_alive_that_prod_grace_drops(self) -> None:
        heartbeat = NOW - timedelta(seconds=175)
        assert alive(last_alive=heartbeat, grace=settings_for("dev").heartbeat_grace_seconds)
        assert not alive(last_alive=heartbeat, grace=settings_for("production").heartbeat_grace_seconds)


def status(
    *,
    is_alive: bool = True,
    process_status: str | None = "running",
    screen: str | None = "OK",
    errors: int = 0,
    warns: int = 0,
    infos: int = 0,
) -> str:
    return client_status(
        alive=is_alive,
        process_status=process_status,
        screen_health_status=screen,
        log_counts={**NO_LOGS, "ERROR": errors, "WARN": warns, "INFO": infos},
    )


class TestClientStatus:
    def test_not_alive_is_offline(self) -> None:
        assert status(is_alive=False) == "offline"

    def test_offline_outranks_critical(self) -> None:
        assert status(is_alive=False, process_status="crashed", screen="BLACK", errors=5) == "offline"

    def test_crashed_process_is_critical(self) -> None:
        assert status(process_status="crashed") == "critical"

    @pytest.mark.parametrize("screen", ["BLACK", "FROZEN"])
    def test_black_or_frozen_screen_is_critical(self, screen: str) -> None:
        assert status(screen=screen) == "critical"

    def test_one_error_log_is_critical(self) -> None:
        assert status(errors=1) == "critical"

    def test_critical_outranks_warning(self) -> None:
        assert status(process_status="starting", warns=3, errors=1) == "critical"

    @pytest.mark.parametrize("process_status", ["starting", "stopped"])
    def test_starting_or_stopped_process_is_warning(self, process_status: str) -> None:
        assert status(process_status=process_status) == "warning"

    def test_one_warn_log_is_warning(self) -> None:
        assert status(warns=1) == "warning"

    def test_running_with_info_logs_is_healthy(self) -> None:
        assert status(infos=10) == "healthy"

    @pytest.mark.parametrize("screen", ["OK", "UNKNOWN", None])
    def test_ok_unknown_or_no_screen_health_is_healthy(self, screen: str | None) -> None:
        assert status(screen=screen) == "healthy"

    def test_no_process_status_is_healthy(self) -> None:
        assert status(process_status=None) == "healthy"

    def test_missing_level_keys_count_as_zero(self) -> None:
        assert client_status(alive=True, process_status=None, screen_health_status=None, log_counts={}) == "healthy"


def reasons(
    *,
    is_active: bool = True,
    last_alive: datetime | None = NOW,
    offline_announced_at: datetime | None = None,
    process_status: str | None = "running",
    screen: str | None = "OK",
    detected: str | None = None,
    errors: int = 0,
    warns: int = 0,
) -> list[str]:
    """The status as the rules decide it, then its reasons: the two functions agree by construction."""
    counts = {**NO_LOGS, "ERROR": errors, "WARN": warns}
    current = client_status(
        alive=alive(is_active=is_active, last_alive=last_alive, offline_announced_at=offline_announced_at),
        process_status=process_status,
        screen_health_status=screen,
        log_counts=counts,
        detected_screen_health=detected,
    )
    return list(
        status_reasons(
            status=current,
            is_active=is_active,
            last_alive=last_alive,
            offline_announced_at=offline_announced_at,
            process_status=process_status,
            screen_health_status=screen,
            log_counts=counts,
            detected_screen_health=detected,
        )
    )


class TestStatusReasons:
    def test_healthy_has_no_reason(self) -> None:
        assert reasons() == []

    def test_late_heartbeat(self) -> None:
        assert reasons(last_alive=NOW - timedelta(seconds=GRACE + 1)) == ["heartbeat_late"]

    def test_never_heard_from_is_late(self) -> None:
        assert reasons(last_alive=None) == ["heartbeat_late"]

    def test_last_will_after_the_heartbeat(self) -> None:
        assert reasons(offline_announced_at=NOW) == ["last_will"]

    def test_deactivated_outranks_every_other_offline_reason(self) -> None:
        assert reasons(is_active=False, offline_announced_at=NOW) == ["deactivated"]

    def test_offline_hides_the_critical_reasons(self) -> None:
        assert reasons(last_alive=None, process_status="crashed", errors=3) == ["heartbeat_late"]

    def test_every_critical_reason_that_holds(self) -> None:
        assert reasons(process_status="crashed", screen="BLACK", detected="FROZEN", errors=1) == [
            "process_crashed",
            "screen_black",
            "screen_frozen",
            "error_logs",
        ]

    def test_critical_hides_the_warning_reasons(self) -> None:
        assert reasons(process_status="stopped", warns=2, detected="BLACK") == ["screen_black"]

    @pytest.mark.parametrize("process_status", ["starting", "stopped"])
    def test_warning_reasons(self, process_status: str) -> None:
        assert reasons(process_status=process_status, warns=1) == [f"process_{process_status}", "warn_logs"]


class TestPriorityScreenshotTtl:
    def test_just_received_is_active(self) -> None:
        assert priority_active(NOW, now=NOW, ttl_seconds=120)

    def test_exactly_ttl_old_is_active(self) -> None:
        assert priority_active(NOW - timedelta(seconds=120), now=NOW, ttl_seconds=120)

    def test_just_past_ttl_is_not_active(self) -> None:
        assert not priority_active(NOW - timedelta(seconds=120, microseconds=1), now=NOW, ttl_seconds=120)

    def test_never_received_is_not_active(self) -> None:
        assert not priority_active(None, now=NOW, ttl_seconds=120)

    def test_zero_ttl_is_active_only_at_the_instant_of_arrival(self) -> None:
        assert priority_active(NOW, now=NOW, ttl_seconds=0)
        assert not priority_active(NOW - timedelta(seconds=1), now=NOW, ttl_seconds=0)
