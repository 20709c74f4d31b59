"""The status evaluator on both backends: confirmed transitions, incidents, what a pass reads, leadership."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.main import create_app
from app.models import DisplayState, Incident, Notification, Screenshot, StatusChange, Webhook
from app.schemas.ingest import LogRecord
from app.services.evaluator import StatusEvaluator
from app.services.ingest import record_heartbeat, record_logs, record_status
from app.services.retention import delete_expired
from app.services.screenshots import store_screenshot
from app.services.unit_of_work import unit_of_work
from app.state import AppState
from tests.conftest import Clock, StatementCounter
from tests.services.test_screenshots import make_image

pytestmark = pytest.mark.usefixtures("backend")

GRACE = 60
CONFIRM = 30


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "HEARTBEAT_GRACE_PERIOD_PROD": GRACE,
        "STATUS_CONFIRM_SECONDS": CONFIRM,
        "RECOVERY_HEARTBEATS": 2,
        "SCREENSHOT_HISTORY_PER_CLIENT": 2,
    }


async def beat(state: AppState, clock: Clock, *uuids: str, **fields: Any) -> None:
    async with state.session_factory() as session, session.begin():
        for uuid in uuids:
            await record_heartbeat(session, client_uuid=uuid, fields=fields, now=clock())


async def history(session: AsyncSession, uuid: str) -> list[StatusChange]:
    query = select(StatusChange).where(StatusChange.client_uuid == uuid).order_by(StatusChange.at)  # type: ignore[arg-type]
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())


async def incidents(session: AsyncSession) -> list[Incident]:
    query = select(Incident).order_by(Incident.id).execution_options(populate_existing=True)  # type: ignore[arg-type]
    return list((await session.execute(query)).scalars())


@pytest.fixture
async def evaluator(state: AppState) -> AsyncIterator[StatusEvaluator]:
    evaluator = StatusEvaluator(state)
    yield evaluator
    await evaluator.release()


class TestTransitions:
    async def test_offline_is_recorded_after_the_confirm_time_and_recovery_after_two_heartbeats(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await beat(state, clock, "d1", process_status="running")
        async with unit_of_work(
            state.session_factory,
            screenshots_dir=state.settings.screenshots_dir,
            grace_seconds=state.settings.heartbeat_grace_seconds,
        ) as shot_session:
            await store_screenshot(
                shot_session,
                settings=state.settings,
                client_uuid="d1",
                image=make_image(),
                screenshot_type="event_start",
                captured_at=None,
                now=clock(),
            )
        await evaluator.run_pass()
        clock.advance(GRACE + 1)
        await evaluator.run_pass()  # offline observed: pending
        assert await history(session, "d1") == []
        clock.advance(CONFIRM)
        await evaluator.run_pass()
        [change] = await history(session, "d1")
        assert (change.from_status, change.to_status, orjson.loads(change.reasons)) == (
            "healthy",
            "offline",
            ["heartbeat_late"],
        )
        shot = (await session.execute(select(Screenshot))).scalars().one()
        assert change.screenshot_hash == change.priority_screenshot_hash == shot.hash
        [incident] = await incidents(session)
        assert (incident.client_uuid, incident.status, incident.closed_at) == ("d1", "offline", None)
        assert incident.opened_at == change.at

        clock.advance(10)
        await beat(state, clock, "d1")
        await evaluator.run_pass()
        assert len(await history(session, "d1")) == 1  # one heartbeat is not a recovery
        clock.advance(10)
        await beat(state, clock, "d1")
        await evaluator.run_pass()
        changes = await history(session, "d1")
        assert [(c.from_status, c.to_status) for c in changes] == [("healthy", "offline"), ("offline", "healthy")]
        [incident] = await incidents(session)
        assert incident.closed_at == clock()

    async def test_a_display_flapping_faster_than_the_confirm_time_opens_no_incident(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await beat(state, clock, "flappy")
        await evaluator.run_pass()
        for _ in range(20):
            clock.advance(5)
            async with state.session_factory() as writer, writer.begin():
                await record_status(writer, client_uuid="flappy", online=False, now=clock())
            await evaluator.run_pass()
            clock.advance(5)
            await beat(state, clock, "flappy")
            await evaluator.run_pass()
        assert await history(session, "flappy") == []
        assert await incidents(session) == []

    async def test_an_error_log_makes_a_display_critical_until_it_leaves_the_day_window(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await beat(state, clock, "d2")
        await evaluator.run_pass()
        async with state.session_factory() as writer, writer.begin():
            await record_logs(writer, [("d2", LogRecord(level="ERROR", message="boom"))], now=clock())
        await evaluator.run_pass()
        clock.advance(CONFIRM)
        await beat(state, clock, "d2")
        await evaluator.run_pass()
        [change] = await history(session, "d2")
        assert (change.to_status, orjson.loads(change.reasons)) == ("critical", ["error_logs"])
        # Keep it alive for a day: heartbeats alone are not re-read, the error leaving the window is.
        for _ in range(24 * 60 + 2):
            clock.advance(60)
            await beat(state, clock, "d2")
            if clock().minute % 30 == 0:
                await evaluator.run_pass()
        await evaluator.run_pass()
        clock.advance(CONFIRM)
        await beat(state, clock, "d2")
        await evaluator.run_pass()
        changes = await history(session, "d2")
        assert [(c.from_status, c.to_status) for c in changes] == [("healthy", "critical"), ("critical", "healthy")]
        [incident] = await incidents(session)
        assert incident.closed_at is not None

    async def test_deactivation_is_offline_with_its_reason(
        self,
        evaluator: StatusEvaluator,
        state: AppState,
        clock: Clock,
        session: AsyncSession,
        client: Any,
        superadmin: dict[str, str],
    ) -> None:
        await beat(state, clock, "d3")
        await evaluator.run_pass()
        response = await client.patch("/api/clients/d3", json={"is_active": False}, headers=superadmin)
        assert response.status_code == 200, response.text
        await evaluator.run_pass()
        clock.advance(CONFIRM)
        await evaluator.run_pass()
        [change] = await history(session, "d3")
        assert (change.to_status, orjson.loads(change.reasons)) == ("offline", ["deactivated"])


class TestWhatAPassReads:
    async def test_a_pass_reads_only_displays_whose_status_may_have_changed(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, statement_counter: StatementCounter
    ) -> None:
        uuids = [f"fleet-{number:03d}" for number in range(40)]
        await beat(state, clock, *uuids, process_status="running")
        first = await evaluator.run_pass()
        assert first is not None
        assert first.read == 40
        assert first.written == 40
        clock.advance(20)
        await beat(state, clock, *uuids, process_status="running")
        overlap = await evaluator.run_pass()  # what changed shortly before the previous pass is read again
        assert overlap is not None
        assert (overlap.read, overlap.written) == (40, 0)
        clock.advance(20)
        await beat(state, clock, *uuids, process_status="running")  # plain heartbeats change nothing
        quiet = await evaluator.run_pass()
        assert quiet is not None
        assert (quiet.read, quiet.written) == (0, 0)
        clock.advance(20)
        await beat(state, clock, *uuids[:39], process_status="running")
        await beat(state, clock, uuids[0], process_status="crashed")
        statement_counter.counting = True
        changed = await evaluator.run_pass()
        statement_counter.counting = False
        assert changed is not None
        assert (changed.read, changed.written) == (1, 1)
        # Two reads (the displays, the reminders due) and the state upsert; no notification without a webhook.
        reads = [s for s in statement_counter.statements if s.lstrip().upper().startswith("SELECT")]
        writes = [s for s in statement_counter.statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
        assert (len(reads), len(writes)) == (2, 1)
        # The one display without heartbeats since crosses the grace period and is read again.
        clock.advance(GRACE - 20 + 1)
        await beat(state, clock, *uuids[:39], process_status="running")
        crossed = await evaluator.run_pass()
        assert crossed is not None
        assert crossed.read == 2

    async def test_a_screenshot_of_a_recorded_transition_survives_the_history_limit(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:

        async def shot(color: tuple[int, int, int]) -> None:
            async with unit_of_work(
                state.session_factory,
                screenshots_dir=state.settings.screenshots_dir,
                grace_seconds=state.settings.heartbeat_grace_seconds,
            ) as writer:
                await store_screenshot(
                    writer,
                    settings=state.settings,
                    client_uuid="d4",
                    image=make_image(color=color),
                    screenshot_type="periodic",
                    captured_at=None,
                    now=clock(),
                )

        await shot((10, 10, 10))
        await evaluator.run_pass()
        clock.advance(GRACE + 1)
        await evaluator.run_pass()
        clock.advance(CONFIRM)
        await evaluator.run_pass()
        [change] = await history(session, "d4")
        for value in range(5):
            clock.advance(1)
            await shot((50 + value * 30, 0, 0))
        hashes = list((await session.execute(select(Screenshot.hash))).scalars())  # type: ignore[call-overload]
        assert change.screenshot_hash in hashes
        assert len(hashes) == 3  # the history limit (2) plus the recorded one
        filenames = (await session.execute(select(Screenshot.filename))).scalars()  # type: ignore[call-overload]
        assert all((state.settings.screenshots_dir / name).exists() for name in filenames)
        # A month on, retention deleted the transition; the incident is still open, and listed, so its
        # screenshot stays.
        clock.advance(31 * 24 * 3600)
        await delete_expired(state)
        assert await history(session, "d4") == []
        for value in range(3):
            clock.advance(1)
            await shot((0, 50 + value * 30, 0))
        hashes = list((await session.execute(select(Screenshot.hash))).scalars())  # type: ignore[call-overload]
        assert change.screenshot_hash in hashes


class TestBoundedPasses:
    """A pass records at most `transitions_per_pass` transitions; the rest follow in the next passes."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        # An interval no test waits for: a pass that follows at once is the carry-over, not the clock.
        return {
            "HEARTBEAT_GRACE_PERIOD_PROD": GRACE,
            "STATUS_CONFIRM_SECONDS": CONFIRM,
            "RECOVERY_HEARTBEATS": 2,
            "STATUS_EVALUATION_INTERVAL_SECONDS": 300,
        }

    async def test_a_burst_larger_than_a_pass_is_recorded_over_consecutive_passes(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        evaluator.rules = replace(evaluator.rules, transitions_per_pass=3)
        burst = [f"burst-{number}" for number in range(8)]
        await beat(state, clock, *burst)
        await evaluator.run_pass()
        clock.advance(GRACE + 1)
        await evaluator.run_pass()  # all pending: no transition yet, nothing deferred
        clock.advance(CONFIRM)
        passes = [await evaluator.run_pass() for _ in range(4)]  # at the same moment, one after the other
        assert [(p.transitions, p.opened, p.deferred) for p in passes if p] == [
            (3, 3, 5),
            (3, 3, 2),
            (2, 2, 0),
            (0, 0, 0),
        ]
        opened = await incidents(session)
        assert sorted(incident.client_uuid for incident in opened) == burst
        assert {incident.opened_at for incident in opened} == {clock() - timedelta(seconds=CONFIRM)}
        for uuid in burst:
            assert [(c.from_status, c.to_status) for c in await history(session, uuid)] == [("healthy", "offline")]

        # The recovery of them all, carried over the same way (found again by their heartbeats).
        for _ in range(2):
            clock.advance(10)
            await beat(state, clock, *burst)
            first = await evaluator.run_pass()
        assert first is not None
        assert (first.closed, first.deferred) == (3, 5)
        rest = [await evaluator.run_pass() for _ in range(3)]
        assert [(p.closed, p.deferred) for p in rest if p] == [(3, 2), (2, 0), (0, 0)]
        closed = await incidents(session)
        assert len(closed) == 8
        assert all(incident.closed_at is not None for incident in closed)
        for uuid in burst:
            changes = await history(session, uuid)
            assert [(c.from_status, c.to_status) for c in changes] == [("healthy", "offline"), ("offline", "healthy")]

    async def test_reminders_due_together_share_the_bound_and_each_goes_once(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        evaluator.rules = replace(evaluator.rules, transitions_per_pass=3)
        burst = [f"remind-{number}" for number in range(8)]
        await beat(state, clock, *burst)
        await evaluator.run_pass()
        clock.advance(GRACE + 1)
        await evaluator.run_pass()
        clock.advance(CONFIRM)
        while (result := await evaluator.run_pass()) is not None and result.carry_over:
            pass
        clock.advance(3600)
        passes = [await evaluator.run_pass() for _ in range(4)]
        assert [(p.reminded, p.reminders_deferred) for p in passes if p] == [
            (3, True),
            (3, True),
            (2, False),
            (0, False),
        ]
        reminded = await incidents(session)
        assert [incident.reminded_at for incident in reminded] == [clock()] * 8
        assert [incident.remind_at for incident in reminded] == [clock() + timedelta(hours=1)] * 8

    async def test_the_task_runs_the_next_pass_at_once_after_deferring(
        self, evaluator: StatusEvaluator, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        evaluator.rules = replace(evaluator.rules, transitions_per_pass=2)
        burst = [f"power-cut-{number}" for number in range(7)]
        await beat(state, clock, *burst)
        await evaluator.run_pass()
        clock.advance(GRACE + 1)
        await evaluator.run_pass()
        clock.advance(CONFIRM)
        # The task's first pass is now; the interval (300 s) would hold the second back past the deadline.
        task = asyncio.create_task(evaluator.run())
        try:
            deadline = time.monotonic() + 10
            while len(await incidents(session)) < len(burst):
                assert time.monotonic() < deadline, f"{len(await incidents(session))} of {len(burst)} recorded"
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert sorted(incident.client_uuid for incident in await incidents(session)) == burst


class TestLeadership:
    async def test_one_evaluator_at_a_time_and_the_other_takes_over(
        self, backend: str, state: AppState, settings: Settings, clock: Clock
    ) -> None:
        if backend != "postgresql":
            pytest.skip("on SQLite the process is the one evaluator")
        other_app = create_app(settings, clock=clock)
        async with other_app.router.lifespan_context(other_app):
            first, other = StatusEvaluator(state), StatusEvaluator(other_app.state.monitor)
            try:
                assert await first.run_pass() is not None
                assert await other.run_pass() is None
                assert await first.run_pass() is not None
                await first.release()
                assert await other.run_pass() is not None
                assert await first.run_pass() is None
            finally:
                await first.release()
                await other.release()

    async def test_a_replica_that_stops_hands_over_at_the_next_tick(
        self, backend: str, state: AppState, settings: Settings, clock: Clock
    ) -> None:
        if backend != "postgresql":
            pytest.skip("on SQLite the process is the one evaluator")
        running = settings.model_copy(
            update={"STATUS_EVALUATION_ENABLED": True, "STATUS_EVALUATION_INTERVAL_SECONDS": 0.1}
        )
        leader = create_app(running, clock=clock)
        standby = StatusEvaluator(state)
        try:
            async with leader.router.lifespan_context(leader):
                deadline = time.monotonic() + 10
                # The leader's task takes the lock at its first tick; until then the standby may hold it.
                while await standby.run_pass() is not None:
                    await standby.release()
                    assert time.monotonic() < deadline, "the leader never took the lock"
                    await asyncio.sleep(0.05)
            # The leader stopped (its lifespan ended): the lock went with its connection.
            assert await standby.run_pass() is not None
        finally:
            await standby.release()


class TestLifespanTask:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "HEARTBEAT_GRACE_PERIOD_PROD": GRACE,
            "STATUS_CONFIRM_SECONDS": 0,
            "STATUS_EVALUATION_ENABLED": True,
            "STATUS_EVALUATION_INTERVAL_SECONDS": 0.05,
        }

    async def test_the_lifespan_evaluates_on_its_own_clock(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await beat(state, clock, "d5")
        deadline = time.monotonic() + 20
        while (await session.get(DisplayState, "d5", populate_existing=True)) is None:
            assert time.monotonic() < deadline, "the evaluator task never saw the display"
            await asyncio.sleep(0.05)
        clock.advance(GRACE + 1)
        while not await history(session, "d5"):
            assert time.monotonic() < deadline, "the evaluator task recorded nothing"
            await asyncio.sleep(0.05)
        [change] = await history(session, "d5")
        assert change.to_status == "offline"


class TestRetention:
    async def test_old_history_closed_incidents_and_finished_deliveries_go_open_and_pending_stay(
        self, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        await beat(state, clock, "old")
        old, recent = clock() - timedelta(days=31), clock() - timedelta(days=29)
        session.add_all(
            [
                StatusChange(client_uuid="old", at=old, from_status="healthy", to_status="offline", reasons="[]"),
                StatusChange(client_uuid="old", at=recent, from_status="offline", to_status="healthy", reasons="[]"),
                Incident(client_uuid="old", status="offline", reasons="[]", opened_at=old, closed_at=old),
                Incident(client_uuid="old", status="offline", reasons="[]", opened_at=old),
                Webhook(id=1, url="http://127.0.0.1:9/", secret="x" * 16, events="[]", created_at=old),
            ]
        )
        await session.flush()
        for status in ("sent", "failed", "pending"):
            session.add(
                Notification(
                    delivery_id=status,
                    webhook_id=1,
                    kind="incident_opened",
                    order_key="display:old",
                    payload="{}",
                    status=status,
                    created_at=old,
                    next_attempt_at=old,
                )
            )
        await session.commit()
        await delete_expired(state)
        ats = (await session.execute(select(StatusChange.at))).scalars().all()  # type: ignore[call-overload]
        assert ats == [recent]
        closed = (await session.execute(select(Incident.closed_at))).scalars().all()  # type: ignore[call-overload]
        assert closed == [None]
        statuses = (await session.execute(select(Notification.status))).scalars().all()  # type: ignore[call-overload]
        assert statuses == ["pending"]
