"""The live feed's status check locks rows in the ingest's order: HTTP logs and MQTT batches for the same
displays, at the same time, never deadlock (PostgreSQL would abort one of them: a 5xx for the HTTP side)."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from app.models import ClientLog
from app.schemas.ingest import LogRecord
from app.services.mqtt_batch import apply_actions
from app.services.mqtt_topics import Action, Liveness, LogLine
from app.services.unit_of_work import unit_of_work
from app.state import AppState
from tests.conftest import Clock, TokenMaker
from tests.helpers import log

DISPLAYS = ("disp-a", "disp-b", "disp-c")
ROUNDS = 40


async def mqtt_batch(state: AppState, clock: Clock, round_: int, replica: int) -> None:
    """What the MQTT writer does with a batch: heartbeats of every display, then their logs, in one unit of work."""
    now = clock()
    actions: list[Action] = []
    for uuid in DISPLAYS:
        fields = {"process_status": "running" if round_ % 2 else "crashed"}
        actions.append(Liveness(client_uuid=uuid, fields=fields, received_at=now))
        for level in ("ERROR", "WARN"):
            record = LogRecord(level=level, message=f"mqtt {replica} {round_} {level}", timestamp=now)
            actions.append(LogLine(client_uuid=uuid, record=record))
    async with unit_of_work(
        state.session_factory,
        screenshots_dir=state.settings.screenshots_dir,
        grace_seconds=state.settings.heartbeat_grace_seconds,
    ) as session:
        await apply_actions(session, actions, settings=state.settings, now=now)


async def http_logs(http: httpx.AsyncClient, headers: dict[str, str], uuid: str, round_: int) -> int:
    entries = [log("ERROR", f"http {round_} error"), log("WARN", f"http {round_} warn")]
    response = await http.post(f"/api/clients/{uuid}/logs", json=entries, headers=headers)
    return response.status_code


async def test_http_logs_and_mqtt_batches_for_the_same_displays_do_not_deadlock(
    backend: str, state: AppState, clock: Clock, client: httpx.AsyncClient, make_token: TokenMaker
) -> None:
    device = await make_token("device")
    for round_ in range(ROUNDS):
        clock.advance(1)
        # Alternate offline and fresh heartbeats so the status checks do announce changes (and write).
        if round_ % 3 == 0:
            clock.advance(state.settings.heartbeat_grace_seconds + 1)
        tasks = [http_logs(client, device, uuid, round_) for uuid in DISPLAYS]
        batches = [mqtt_batch(state, clock, round_, replica) for replica in range(2)]
        results = await asyncio.gather(*tasks, *batches)
        assert results[: len(DISPLAYS)] == [202] * len(DISPLAYS), f"round {round_}: {results}"
    async with state.session_factory() as session:
        stored = (await session.execute(select(func.count()).select_from(ClientLog))).scalar_one()
    # Every round: 2 lines per display over HTTP, and 2 per display from each of the two MQTT batches.
    assert stored == ROUNDS * len(DISPLAYS) * (2 + 2 * 2)
