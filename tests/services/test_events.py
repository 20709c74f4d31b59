"""The live feed's events (SPEC §11): written with the ingest write, read in order, fanned out, resumed.

Every test runs on SQLite and PostgreSQL; out-of-order commits and two app instances are PostgreSQL's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.config import Settings
from app.main import create_app
from app.models import Event
from app.services.event_feed import EventFeed, Subscription
from app.services.event_ticker import tick
from app.services.events import EVENT_RETENTION, delete_old_events, event_row, events_after, write_events
from app.state import AppState
from tests.conftest import Clock, StatementCounter, TokenMaker
from tests.helpers import heartbeat, log, png_bytes, post_logs

DEADLINE_SECONDS = 2.0


async def stored_events(state: AppState, *, kind: str | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, kind, data) of every stored event, oldest first."""
    table = Event.__table__  # type: ignore[attr-defined]
    query = select(table.c.id, table.c.kind, table.c.payload).order_by(table.c.id)
    if kind is not None:
        query = query.where(table.c.kind == kind)
    async with state.session_factory() as session:
        rows = (await session.execute(query)).all()
    return [(row.id, row.kind, json.loads(row.payload)) for row in rows]


async def next_event(subscription: Subscription) -> Any:
    return await asyncio.wait_for(subscription.queue.get(), DEADLINE_SECONDS)


@pytest.fixture
async def device(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("device")


async def upload(http: httpx.AsyncClient, headers: dict[str, str], uuid: str, kind: str, color: str = "red") -> str:
    response = await http.post(
        f"/api/clients/{uuid}/screenshot",
        params={"screenshot_type": kind},
        content=png_bytes(color),
        headers={**headers, "Content-Type": "image/png"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["hash"])


class TestEventsWrittenWithIngest:
    async def test_first_heartbeat_announces_the_display_once(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, device, "disp-1")
        await heartbeat(client, device, "disp-1")
        events = await stored_events(state, kind="status")
        assert [data for _, _, data in events] == [
            {"uuid": "disp-1", "old": None, "new": "healthy", "reasons": [], "at": clock().isoformat()}
        ]

    async def test_priority_screenshot_gives_screenshot_then_priority_events(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, device, "disp-1")
        digest = await upload(client, device, "disp-1", "event_start")
        kinds = [(kind, data) for _, kind, data in await stored_events(state) if kind != "status"]
        received = clock().isoformat()
        expires = (clock() + timedelta(seconds=state.settings.PRIORITY_SCREENSHOT_TTL_SECONDS)).isoformat()
        assert kinds == [
            ("screenshot", {"uuid": "disp-1", "type": "event_start", "hash": digest, "receivedAt": received}),
            (
                "priority",
                {
                    "uuid": "disp-1",
                    "type": "event_start",
                    "hash": digest,
                    "receivedAt": received,
                    "active": True,
                    "expiresAt": expires,
                },
            ),
        ]

    async def test_periodic_screenshot_has_no_priority_event(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        await upload(client, device, "disp-1", "periodic")
        assert [kind for _, kind, _ in await stored_events(state)] == ["screenshot", "status"]

    async def test_error_logs_give_one_error_event_per_display_and_a_critical_status(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, device, "disp-1")
        earlier = clock() - timedelta(minutes=1)
        await post_logs(
            client,
            device,
            "disp-1",
            [
                log("error", "first", at=earlier),
                log("error", "newest"),
                log("info", "fine"),
                log("error", "older", at=earlier),
            ],
        )
        errors = await stored_events(state, kind="error")
        assert len(errors) == 1
        data = errors[0][2]
        assert data["uuid"] == "disp-1"
        assert data["message"] == "newest"
        assert data["timestamp"] == clock().isoformat()
        assert isinstance(data["logId"], int)
        statuses = [data for _, _, data in await stored_events(state, kind="status")]
        assert statuses[-1]["old"] == "healthy"
        assert statuses[-1]["new"] == "critical"
        assert statuses[-1]["reasons"] == ["error_logs"]

    async def test_info_logs_write_no_event(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        await heartbeat(client, device, "disp-1")
        before = await stored_events(state)
        await post_logs(client, device, "disp-1", [log("info", "fine"), log("debug", "detail")])
        assert await stored_events(state) == before

    async def test_crash_and_recovery_are_status_events(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        await heartbeat(client, device, "disp-1", {"process_status": "running"})
        response = await client.post("/api/clients/disp-1/health", json={"process_status": "crashed"}, headers=device)
        assert response.status_code == 204
        await heartbeat(client, device, "disp-1", {"process_status": "starting"})
        await heartbeat(client, device, "disp-1", {"process_status": "running"})
        changes = [
            (data["old"], data["new"], data["reasons"]) for _, _, data in await stored_events(state, kind="status")
        ]
        assert changes == [
            (None, "healthy", []),
            ("healthy", "critical", ["process_crashed"]),
            ("critical", "warning", ["process_starting"]),
            ("warning", "healthy", []),
        ]

    async def test_last_will_and_revival(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        from app.services.ingest import record_status
        from app.services.unit_of_work import unit_of_work

        await heartbeat(client, device, "disp-1")
        clock.advance(5)
        async with unit_of_work(
            state.session_factory,
            screenshots_dir=state.settings.screenshots_dir,
            grace_seconds=state.settings.heartbeat_grace_seconds,
        ) as session:
            await record_status(session, client_uuid="disp-1", online=False, now=clock())
        clock.advance(5)
        await heartbeat(client, device, "disp-1")
        changes = [
            (data["old"], data["new"], data["reasons"]) for _, _, data in await stored_events(state, kind="status")
        ]
        assert changes == [(None, "healthy", []), ("healthy", "offline", ["last_will"]), ("offline", "healthy", [])]

    async def test_a_rolled_back_write_leaves_no_event(self, state: AppState, clock: Clock) -> None:
        from app.services.ingest import record_heartbeat
        from app.services.unit_of_work import unit_of_work

        async def failed_request() -> None:
            async with unit_of_work(
                state.session_factory,
                screenshots_dir=state.settings.screenshots_dir,
                grace_seconds=state.settings.heartbeat_grace_seconds,
            ) as session:
                await record_heartbeat(session, client_uuid="disp-1", fields={}, now=clock())
                raise RuntimeError("the request failed")

        with pytest.raises(RuntimeError):
            await failed_request()
        assert await stored_events(state) == []


def feed_for(state: AppState, **options: Any) -> EventFeed:
    """A feed of its own (not the app's), read by hand: no wake-up or poll interferes."""
    return EventFeed(state.session_factory, poll_seconds=3600, **options)


async def write(state: AppState, clock: Clock, *names: str) -> None:
    async with state.session_factory() as session, session.begin():
        rows = [event_row(kind="status", client_uuid=name, data={"uuid": name}, at=clock()) for name in names]
        await write_events(session, rows)


class TestHeartbeatStatusChecks:
    """A heartbeat checks the status only when it can change the announced one (issue #9's ingest cost)."""

    async def tick(self, state: AppState, clock: Clock) -> None:
        await tick(
            state.session_factory,
            now=clock(),
            grace_seconds=state.settings.heartbeat_grace_seconds,
            ttl_seconds=state.settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
        )

    @staticmethod
    def status_checks(counter: StatementCounter) -> list[str]:
        """The status statements (the only ones with a probe of `client_logs`) seen by the counter."""
        return [statement for statement in counter.statements if "FROM client_logs" in statement]

    async def test_a_heartbeat_that_changes_nothing_skips_the_check(
        self,
        client: httpx.AsyncClient,
        device: dict[str, str],
        clock: Clock,
        statement_counter: StatementCounter,
    ) -> None:
        await heartbeat(client, device, "disp-1", {"process_status": "running"})
        await post_logs(client, device, "disp-1", [log("ERROR", "boom")])
        statement_counter.counting = True
        clock.advance(1)  # a heartbeat at the very time of the last change is checked, to be safe
        await heartbeat(client, device, "disp-1", {"process_status": "running"})
        clock.advance(1)
        await heartbeat(client, device, "disp-1")
        assert self.status_checks(statement_counter) == []
        await heartbeat(client, device, "disp-1", {"process_status": "crashed"})
        assert len(self.status_checks(statement_counter)) == 1

    async def test_the_first_heartbeat_and_a_revival_are_checked(
        self,
        client: httpx.AsyncClient,
        device: dict[str, str],
        state: AppState,
        clock: Clock,
        statement_counter: StatementCounter,
    ) -> None:
        await post_logs(client, device, "disp-1", [log("WARN", "odd")])  # registered, never alive: offline
        await heartbeat(client, device, "disp-1")
        await self.tick(state, clock)
        clock.advance(state.settings.heartbeat_grace_seconds + 1)
        await self.tick(state, clock)
        statement_counter.counting = True
        await heartbeat(client, device, "disp-1")
        assert len(self.status_checks(statement_counter)) == 1
        changes = [(data["old"], data["new"]) for _, _, data in await stored_events(state, kind="status")]
        assert changes == [(None, "offline"), ("offline", "warning"), ("warning", "offline"), ("offline", "warning")]

    async def test_a_heartbeat_announces_logs_leaving_the_window(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, device, "disp-1")
        await post_logs(client, device, "disp-1", [log("WARN", "odd")])
        await heartbeat(client, device, "disp-1")
        clock.advance(timedelta(hours=24).total_seconds() + 1)
        await heartbeat(client, device, "disp-1")
        changes = [(data["old"], data["new"]) for _, _, data in await stored_events(state, kind="status")]
        assert changes == [(None, "healthy"), ("healthy", "warning"), ("warning", "healthy")]

    async def test_a_crash_is_checked_until_it_ends(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        await heartbeat(client, device, "disp-1", {"process_status": "crashed"})
        await heartbeat(client, device, "disp-1")
        await heartbeat(client, device, "disp-1", {"process_status": "running"})
        changes = [(data["old"], data["new"]) for _, _, data in await stored_events(state, kind="status")]
        assert changes == [(None, "critical"), ("critical", "healthy")]


class TestFeed:
    async def test_fans_out_in_id_order_to_every_subscriber(self, state: AppState, clock: Clock) -> None:
        feed = feed_for(state)
        await feed.start()
        first, second = feed.subscribe(), feed.subscribe()
        await write(state, clock, "a", "b")
        await write(state, clock, "c")
        assert await feed.read_new() == 3
        for subscription in (first, second):
            received = [await next_event(subscription) for _ in range(3)]
            assert [json.loads(event.payload)["uuid"] for event in received] == ["a", "b", "c"]
            assert [event.id for event in received] == sorted(event.id for event in received)
            assert received[0].frame() == f"id: {received[0].id}\nevent: status\ndata: {received[0].payload}\n\n"

    async def test_starts_after_the_newest_event(self, state: AppState, clock: Clock) -> None:
        await write(state, clock, "old")
        feed = feed_for(state)
        await feed.start()
        subscription = feed.subscribe()
        await write(state, clock, "new")
        await feed.read_new()
        assert json.loads((await next_event(subscription)).payload)["uuid"] == "new"
        assert subscription.queue.empty()

    async def test_app_feed_is_woken_by_a_commit(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        state.events.poll_seconds = 3600
        state.events.wake()  # the loop waits again, with the long interval: only a commit wakes it now
        subscription = state.events.subscribe()
        await heartbeat(client, device, "disp-1")
        event = await next_event(subscription)
        assert event.kind == "status"
        assert json.loads(event.payload)["uuid"] == "disp-1"

    async def test_resume_reads_after_an_id_within_the_retention(self, state: AppState, clock: Clock) -> None:
        await write(state, clock, "too-old")
        clock.advance(EVENT_RETENTION.total_seconds() + 1)
        await write(state, clock, "a", "b", "c")
        async with state.session_factory() as session:
            everything = await events_after(session, after_id=0, limit=100)
            recent = await events_after(session, after_id=0, since=clock() - EVENT_RETENTION, limit=100)
            after_a = await events_after(session, after_id=everything[1].id, since=clock() - EVENT_RETENTION, limit=100)
        assert [json.loads(event.payload)["uuid"] for event in everything] == ["too-old", "a", "b", "c"]
        assert [json.loads(event.payload)["uuid"] for event in recent] == ["a", "b", "c"]
        assert [json.loads(event.payload)["uuid"] for event in after_a] == ["b", "c"]

    async def test_old_events_are_deleted(self, state: AppState, clock: Clock) -> None:
        await write(state, clock, "old")
        clock.advance(EVENT_RETENTION.total_seconds() + 1)
        await write(state, clock, "new")
        async with state.session_factory() as session, session.begin():
            assert await delete_old_events(session, now=clock()) == 1
        assert [data["uuid"] for _, _, data in await stored_events(state)] == ["new"]

    async def test_slow_subscriber_is_closed_instead_of_growing(self, state: AppState, clock: Clock) -> None:
        feed = feed_for(state)
        await feed.start()
        slow, fast = feed.subscribe(size=2), feed.subscribe()
        await write(state, clock, "a", "b", "c")
        await feed.read_new()
        assert slow.closed
        assert slow.overflowed
        assert await next_event(slow) is None
        assert slow not in feed.subscribers
        assert [json.loads((await next_event(fast)).payload)["uuid"] for _ in range(3)] == ["a", "b", "c"]

    async def test_close_ends_every_stream(self, state: AppState) -> None:
        feed = feed_for(state)
        subscriptions = [feed.subscribe(), feed.subscribe()]
        feed.close()
        for subscription in subscriptions:
            assert await next_event(subscription) is None
        assert await next_event(feed.subscribe()) is None


class Ticks:
    """A settable monotonic clock for the feed's gap deadlines."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestOutOfOrderCommits:
    async def test_an_earlier_id_committed_later_is_not_skipped(
        self, state: AppState, clock: Clock, backend: str
    ) -> None:
        if backend != "postgresql":
            pytest.skip("SQLite has one writer at a time: ids commit in order")
        feed = feed_for(state)
        await feed.start()
        subscription = feed.subscribe()
        async with state.session_factory() as slow, state.session_factory() as fast:
            await slow.begin()
            await write_events(slow, [event_row(kind="status", client_uuid="slow", data={"uuid": "slow"}, at=clock())])
            await fast.begin()
            await write_events(fast, [event_row(kind="status", client_uuid="fast", data={"uuid": "fast"}, at=clock())])
            await fast.commit()
            await feed.read_new()
            first = await next_event(subscription)
            assert json.loads(first.payload)["uuid"] == "fast"
            assert feed.gaps, "the id taken by the open transaction is remembered"
            await slow.commit()
        await feed.read_new()
        second = await next_event(subscription)
        assert json.loads(second.payload)["uuid"] == "slow"
        assert second.id < first.id
        assert not feed.gaps

    async def test_a_gap_that_never_fills_is_forgotten(self, state: AppState, clock: Clock, backend: str) -> None:
        if backend != "postgresql":
            pytest.skip("needs a rolled-back id, which SQLite reuses")
        ticks = Ticks()
        feed = feed_for(state, gap_seconds=30, clock=ticks)
        await feed.start()
        async with state.session_factory() as session, session.begin():
            await write_events(session, [event_row(kind="status", client_uuid="x", data={}, at=clock())])
            await session.rollback()
        await write(state, clock, "after")
        await feed.read_new()
        assert len(feed.gaps) == 1
        ticks.now = 31
        await feed.read_new()
        assert feed.gaps == {}


class TestTicker:
    async def tick(self, state: AppState, clock: Clock) -> int:
        return await tick(
            state.session_factory,
            now=clock(),
            grace_seconds=state.settings.heartbeat_grace_seconds,
            ttl_seconds=state.settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
        )

    async def test_late_heartbeat_turns_offline_once(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, device, "disp-1")
        await heartbeat(client, device, "disp-2")
        await self.tick(state, clock)
        clock.advance(100)
        await heartbeat(client, device, "disp-2")
        await self.tick(state, clock)
        late = clock.advance(state.settings.heartbeat_grace_seconds - 100 + 1)
        await self.tick(state, clock)
        await self.tick(state, clock)
        clock.advance(1)
        await self.tick(state, clock)
        offline = [data for _, _, data in await stored_events(state, kind="status") if data["new"] == "offline"]
        assert offline == [
            {
                "uuid": "disp-1",
                "old": "healthy",
                "new": "offline",
                "reasons": ["heartbeat_late"],
                "at": late.isoformat(),
            }
        ]

    async def test_each_stretch_is_announced_once_across_replicas(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await heartbeat(client, device, "disp-1")
        await self.tick(state, clock)
        clock.advance(state.settings.heartbeat_grace_seconds + 1)
        # Two replicas ticking the same moment: one announces, the other changes nothing.
        results = await asyncio.gather(self.tick(state, clock), self.tick(state, clock))
        assert sorted(results) in ([0, 0], [0, 1])
        offline = [data for _, _, data in await stored_events(state, kind="status") if data["new"] == "offline"]
        assert len(offline) == 1

    async def test_priority_ttl_end_is_a_priority_event(
        self, client: httpx.AsyncClient, device: dict[str, str], state: AppState, clock: Clock
    ) -> None:
        await self.tick(state, clock)
        received = clock()
        digest = await upload(client, device, "disp-1", "event_stop")
        ttl = state.settings.PRIORITY_SCREENSHOT_TTL_SECONDS
        clock.advance(ttl)
        await self.tick(state, clock)
        assert [data["active"] for _, _, data in await stored_events(state, kind="priority")] == [True]
        clock.advance(1)
        await self.tick(state, clock)
        await self.tick(state, clock)
        ended = [data for _, _, data in await stored_events(state, kind="priority")][1:]
        assert ended == [
            {
                "uuid": "disp-1",
                "active": False,
                "type": "event_stop",
                "hash": digest,
                "receivedAt": received.isoformat(),
                "expiresAt": (received + timedelta(seconds=ttl)).isoformat(),
            }
        ]

    async def test_ticks_delete_old_events(self, state: AppState, clock: Clock) -> None:
        await self.tick(state, clock)
        await write(state, clock, "old")
        clock.advance(EVENT_RETENTION.total_seconds() + 1)
        await self.tick(state, clock)  # the first tick after the one that started the count deletes
        assert await stored_events(state) == []


class TestTwoInstances:
    @pytest.fixture
    async def second_app(
        self, settings: Settings, clock: Clock, backend: str, tmp_path: Path
    ) -> AsyncIterator[FastAPI]:
        if backend != "postgresql":
            pytest.skip("replicas share a PostgreSQL database")
        other = settings.model_copy(update={"DATA_DIR": tmp_path / "second", "AUTO_MIGRATE": False})
        application = create_app(other, clock=clock)
        async with application.router.lifespan_context(application):
            yield application

    async def test_an_event_written_through_one_instance_reaches_the_other(
        self, client: httpx.AsyncClient, device: dict[str, str], second_app: FastAPI
    ) -> None:
        other: AppState = second_app.state.monitor
        other.events.poll_seconds = 3600
        other.events.wake()  # from now on only a notification wakes the second feed
        deadline = asyncio.get_running_loop().time() + 10
        while not other.events.listening:
            assert asyncio.get_running_loop().time() < deadline, "the second instance never listened"
            await asyncio.sleep(0.05)
        subscription = other.events.subscribe()
        await heartbeat(client, device, "disp-1")
        event = await next_event(subscription)
        assert event.kind == "status"
        assert json.loads(event.payload)["uuid"] == "disp-1"


async def test_statement_count_of_the_event_write_is_fixed(state: AppState, clock: Clock) -> None:
    """One INSERT for any number of events (PostgreSQL: with its NOTIFY)."""
    counted: list[str] = []
    from sqlalchemy import event as sa_event

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counted.append(statement)

    sa_event.listen(state.engine.sync_engine, "before_cursor_execute", count)
    try:
        for size in (1, 50):
            counted.clear()
            async with state.session_factory() as session, session.begin():
                rows = [event_row(kind="status", client_uuid=str(n), data={}, at=clock()) for n in range(size)]
                await write_events(session, rows)
            assert len([s for s in counted if "INSERT INTO events" in s]) == 1, counted
    finally:
        sa_event.remove(state.engine.sync_engine, "before_cursor_execute", count)
    async with state.session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(Event))).scalar_one() == 51
