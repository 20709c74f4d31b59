"""The display simulator publishes a realistic fleet that the service ingests whole."""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlmodel import col

from app.models import Client, Screenshot
from app.simulate import SimulationOptions, assign_behaviours, simulate
from app.state import AppState
from tests.mqtt.conftest import Broker, Service, count_logs, eventually


class TestSimulator:
    async def test_a_short_run_lands_every_kind_of_message(
        self, backend: str, state: AppState, broker: Broker, service: Service, prefix: str
    ) -> None:
        options = SimulationOptions(displays=14, port=broker.port, rate=8, duration=2.5, prefix=prefix, seed=7)
        behaviours = assign_behaviours(options.displays, random.Random(options.seed))
        stats = await simulate(options)

        assert stats.failures == 0
        assert stats.published["dropped_off"] == behaviours.count("drop_off") > 0
        await eventually(lambda: _logs_are(state, stats.published["logs"]), what="every simulated log stored")
        async with state.session_factory() as session:
            clients = (await session.execute(select(Client))).scalars().all()
            types = set((await session.execute(select(col(Screenshot.screenshot_type)).distinct())).scalars().all())
            shots = (await session.execute(select(func.count()).select_from(Screenshot))).scalar_one()
        assert len(clients) == options.displays
        assert types == {"periodic", "event_start", "event_stop"}
        assert shots > 0
        # The last will of every display that dropped off arrived as `offline`.
        offline = [client for client in clients if client.offline_announced_at is not None]
        assert len(offline) == behaviours.count("drop_off")
        assert {client.screen_health_status for client in clients} >= {"OK", "BLACK", "FROZEN"}
        assert "crashed" in {client.process_status for client in clients}


async def _logs_are(state: AppState, expected: int) -> bool:
    return await count_logs(state) == expected
