"""One unit of work per batch: coalesced heartbeats keep each display's order; logs go in one call."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.schemas.ingest import LogRecord
from app.services.mqtt_batch import apply_actions
from app.services.mqtt_topics import Action, Liveness, LogLine, StatusChange
from app.services.unit_of_work import FileEffects, file_effects
from app.state import AppState
from tests.conftest import Clock, StatementCounter
from tests.mqtt.conftest import get_client, logs_of
from tests.mqtt.test_topics import overview_entry


async def apply(state: AppState, clock: Clock, actions: list[Action]) -> None:
    async with state.session_factory() as session, session.begin():
        await apply_actions(session, actions, settings=state.settings, now=clock())
        assert file_effects(session) == FileEffects()


class TestCoalescing:
    async def test_heartbeats_merge_in_order_and_a_later_one_supersedes_offline(
        self, backend: str, state: AppState, clock: Clock, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        now = clock()
        await apply(
            state,
            clock,
            [
                Liveness("a", {"process_status": "crashed", "hostname": "lobby"}, now),
                StatusChange("a", False, now),
                Liveness("a", {"process_status": "running"}, now),
            ],
        )

        stored = await get_client(state, "a")
        assert stored is not None
        assert (stored.process_status, stored.hostname, stored.last_alive) == ("running", "lobby", now)
        entry = await overview_entry(client, superadmin, "a")
        assert (entry["isAlive"], entry["status"]) == (True, "healthy")

    async def test_offline_after_the_heartbeat_in_the_same_batch_wins(
        self, backend: str, state: AppState, clock: Clock, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        now = clock()
        await apply(state, clock, [Liveness("b", {}, now), StatusChange("b", False, now)])

        entry = await overview_entry(client, superadmin, "b")
        assert (entry["isAlive"], entry["status"]) == (False, "offline")


class TestOneTransactionPerBatch:
    async def test_a_batch_costs_one_statement_per_display_plus_a_few_for_all_logs(
        self, backend: str, state: AppState, clock: Clock, statement_counter: StatementCounter
    ) -> None:
        now = clock()
        actions: list[Action] = []
        for number in range(100):
            display = f"d-{number % 10}"
            actions.append(Liveness(display, {"process_pid": number}, now + timedelta(milliseconds=number)))
            record = LogRecord(level="INFO", message=f"line {number}", timestamp=now, message_id=f"m-{number}")
            actions.append(LogLine(display, record))

        statement_counter.counting = True
        await apply(state, clock, actions)
        statement_counter.counting = False

        writes = [
            sql for sql in statement_counter.statements if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT"))
        ]
        # 10 coalesced heartbeats + register, insert, rollup and totals for all 100 logs.
        assert len(writes) <= 10 + 4, writes
        for number in range(10):
            stored = await get_client(state, f"d-{number}")
            assert stored is not None
            assert stored.process_pid == 90 + number  # the last value of each display
        assert len(await logs_of(state, "d-3")) == 10
