"""`python -m bench.evaluator [--displays N]`: the status evaluator's cost per pass on PostgreSQL (SPEC §12).

A throwaway database gets N displays (heartbeats every 60 s; a third with an ERROR or WARN in the last
day) and one webhook subscribed to every event (so each pass writes its notifications; nothing is
delivered), then the evaluator runs passes 5 s apart on a simulated clock while the fleet keeps sending:

- steady: each tick, a twelfth of the fleet heartbeats (60 s / 5 s), 1 % change their process status,
  0.5 % log an ERROR, and 5 displays fall silent (they cross the grace period later);
- outage: 1,000 displays go down at once (last wills); the pass that sees them and the ones that
  confirm them and open their incidents, `STATUS_CONFIRM_SECONDS` later, are measured apart. A pass
  records at most `TRANSITIONS_PER_PASS` transitions and the evaluator runs the next pass at once
  while some are deferred (as its task does), so the catch-up is measured as its passes and the wall
  time from the first of them to the last;
- reminders: an hour later (`ALERT_REMINDER_MINUTES`) the incidents' reminders all fall due at once;
  they share the pass's bound with the transitions and are measured the same way.

Database time is the time spent in the database calls of a pass (SQLAlchemy's before/after cursor
events around each statement, on the pass's own connection): the round trips and the server's work,
not the Python around them. Results go to bench/results/evaluator-latest.json and are quoted in
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import event

from app.config import Settings
from app.db import create_engine, create_session_factory, run_migrations
from app.models import Webhook
from app.schemas.ingest import LogRecord
from app.services.evaluator import PassResult, StatusEvaluator
from app.services.ingest import record_heartbeats, record_logs, record_status
from app.state import AppState
from bench.common import RESULTS_DIR, log, machine_info, pg_admin, pg_url

DATABASE = "bench_evaluator"
TICK = timedelta(seconds=5)
HEARTBEAT_SECONDS = 60
GRACE = 170
CONFIRM = 30
OUTAGE = 1000
KINDS = ("incident_opened", "incident_reminder", "incident_recovered")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current


class DatabaseTime:
    """Seconds and statements spent in the database while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self.statements = 0
        self._started: dict[int, float] = {}

    def before(self, _conn: Any, cursor: Any, *_args: Any) -> None:
        if self.on:
            self._started[id(cursor)] = time.perf_counter()

    def after(self, _conn: Any, cursor: Any, *_args: Any) -> None:
        started = self._started.pop(id(cursor), None)
        if started is not None:
            self.seconds += time.perf_counter() - started
            self.statements += 1

    def reset(self) -> None:
        self.seconds, self.statements = 0.0, 0


async def measured_pass(evaluator: StatusEvaluator, meter: DatabaseTime) -> dict[str, Any]:
    meter.reset()
    meter.on = True
    started = time.perf_counter()
    result: PassResult | None = await evaluator.run_pass()
    wall = time.perf_counter() - started
    meter.on = False
    assert result is not None
    return {
        "db_ms": round(meter.seconds * 1000, 2),
        "wall_ms": round(wall * 1000, 2),
        "statements": meter.statements,
        "read": result.read,
        "written": result.written,
        "transitions": result.transitions,
        "opened": result.opened,
        "closed": result.closed,
        "notifications": result.notifications,
        "deferred": result.deferred,
        "reminded": result.reminded,
        "carry_over": result.carry_over,
    }


async def passes_until_caught_up(evaluator: StatusEvaluator, meter: DatabaseTime) -> tuple[list[dict[str, Any]], float]:
    """A pass, then the next at once while one leaves work to the next (as the evaluator's task does)."""
    started = time.perf_counter()
    passes = [await measured_pass(evaluator, meter)]
    while passes[-1]["carry_over"]:
        passes.append(await measured_pass(evaluator, meter))
    return passes, time.perf_counter() - started


def summary(passes: list[dict[str, Any]]) -> dict[str, Any]:
    db = sorted(entry["db_ms"] for entry in passes)
    return {
        "passes": len(passes),
        "db_ms_median": round(statistics.median(db), 2),
        "db_ms_p95": round(db[int(len(db) * 0.95) - 1], 2),
        "db_ms_max": db[-1],
        "wall_ms_median": round(statistics.median(entry["wall_ms"] for entry in passes), 2),
        "statements_max": max(entry["statements"] for entry in passes),
        "read_median": statistics.median(entry["read"] for entry in passes),
    }


async def run(displays: int, ticks: int) -> dict[str, Any]:
    await pg_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{DATABASE}"')
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=pg_url(DATABASE, driver="asyncpg"),
        HEARTBEAT_GRACE_PERIOD_PROD=GRACE,
        STATUS_CONFIRM_SECONDS=CONFIRM,
        MQTT_ENABLED=False,
    )
    engine = create_engine(settings.database_url)
    clock = Clock(datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
    state = AppState(settings=settings, engine=engine, session_factory=create_session_factory(engine), clock=clock)
    meter = DatabaseTime()
    event.listen(engine.sync_engine, "before_cursor_execute", meter.before)
    event.listen(engine.sync_engine, "after_cursor_execute", meter.after)
    rng = random.Random(42)
    uuids = [f"display-{number:05d}" for number in range(displays)]
    try:
        await run_migrations(engine)
        log(f"loading {displays} displays")
        # Heartbeats spread over the last minute, and a day of ERROR and WARN logs on a third of them.
        async with state.session_factory() as session, session.begin():
            beats = [
                (uuid, {"process_status": "running"}, clock() - timedelta(seconds=rng.uniform(0, HEARTBEAT_SECONDS)))
                for uuid in uuids
            ]
            await record_heartbeats(session, beats)
            entries = [
                (
                    uuid,
                    LogRecord(
                        level=rng.choice(["ERROR", "WARN"]),
                        message="m",
                        timestamp=clock() - timedelta(hours=rng.uniform(0, 30)),
                    ),
                )
                for uuid in uuids
                if rng.random() < 1 / 3
            ]
            await record_logs(session, entries, now=clock())
            # One webhook for every event: the notifications are part of the pass (nothing is delivered here).
            session.add(
                Webhook(
                    url="http://127.0.0.1:9/",
                    secret="x" * 16,
                    events=orjson.dumps(list(KINDS)).decode(),
                    created_at=clock(),
                )
            )
        evaluator = StatusEvaluator(state)
        first = await measured_pass(evaluator, meter)
        log(f"first pass (every display): {first}")
        silent: set[str] = set()
        offset = 0
        steady: list[dict[str, Any]] = []
        for tick in range(ticks):
            clock.current += TICK
            share = displays * TICK.total_seconds() // HEARTBEAT_SECONDS
            beating = [uuids[(offset + i) % displays] for i in range(int(share))]
            offset += int(share)
            silent.update(rng.sample(uuids, 5))
            changed = set(rng.sample(uuids, displays // 100))
            async with state.session_factory() as session, session.begin():
                await record_heartbeats(
                    session,
                    [
                        (
                            uuid,
                            {"process_status": rng.choice(["running", "starting"]) if uuid in changed else "running"},
                            clock(),
                        )
                        for uuid in sorted(set(beating) | changed)
                        if uuid not in silent
                    ],
                )
                errors = [(uuid, LogRecord(level="ERROR", message="e")) for uuid in rng.sample(uuids, displays // 200)]
                await record_logs(session, errors, now=clock())
            if tick >= 12:  # the first minute re-reads the load (every display changed at once)
                steady.append(await measured_pass(evaluator, meter))
            else:
                await measured_pass(evaluator, meter)
        log(f"steady: {summary(steady)}")
        # Outage: 1,000 displays go down at once (their last wills arrive together: a power cut);
        # everyone else keeps beating.
        down = set(rng.sample([uuid for uuid in uuids if uuid not in silent], OUTAGE))
        clock.current += TICK
        async with state.session_factory() as session, session.begin():
            for uuid in sorted(down):
                await record_status(session, client_uuid=uuid, online=False, now=clock())
        outage: list[dict[str, Any]] = []
        catch_up: list[dict[str, Any]] = []
        catch_up_wall = 0.0
        confirmed_at = clock.current
        for tick in range(CONFIRM // 5 + 2):
            if tick:
                clock.current += TICK
            share = displays * TICK.total_seconds() // HEARTBEAT_SECONDS
            beating = [uuids[(offset + i) % displays] for i in range(int(share))]
            offset += int(share)
            async with state.session_factory() as session, session.begin():
                await record_heartbeats(
                    session,
                    [(uuid, {"process_status": "running"}, clock()) for uuid in beating if uuid not in silent | down],
                )
            passes, wall = await passes_until_caught_up(evaluator, meter)
            if len(passes) > 1:
                catch_up, catch_up_wall, confirmed_at = passes, wall, clock.current
            outage.extend(passes)
        busiest = sorted(outage, key=lambda entry: entry["db_ms"])[-3:]
        log(f"outage, the three busiest passes: {busiest}")
        log(f"catch-up: {len(catch_up)} passes in {catch_up_wall * 1000:.0f} ms wall")
        opened = sum(entry["opened"] for entry in outage)
        # An hour on: the passes of that hour absorbed up to just before the reminders fall due.
        alive = [uuid for uuid in uuids if uuid not in silent | down]
        clock.current = confirmed_at + timedelta(hours=1) - TICK
        async with state.session_factory() as session, session.begin():
            await record_heartbeats(session, [(uuid, {"process_status": "running"}, clock()) for uuid in alive])
        await passes_until_caught_up(evaluator, meter)
        clock.current += TICK
        async with state.session_factory() as session, session.begin():
            await record_heartbeats(
                session, [(uuid, {"process_status": "running"}, clock()) for uuid in alive[: int(share)]]
            )
        reminders, reminders_wall = await passes_until_caught_up(evaluator, meter)
        log(f"reminders: {reminders} in {reminders_wall * 1000:.0f} ms wall")
        await evaluator.release()
        return {
            "displays": displays,
            "tick_s": TICK.total_seconds(),
            "first_pass": first,
            "steady": summary(steady),
            "outage": {
                "displays_down": OUTAGE,
                "incidents_opened": opened,
                "busiest_passes": busiest,
                "db_ms_max": max(entry["db_ms"] for entry in outage),
                "statements_max": max(entry["statements"] for entry in outage),
                "notifications": sum(entry["notifications"] for entry in outage),
                "catch_up_passes": catch_up,
                "catch_up_wall_ms": round(catch_up_wall * 1000, 1),
            },
            "reminders": {
                "reminded": sum(entry["reminded"] for entry in reminders),
                "passes": reminders,
                "wall_ms": round(reminders_wall * 1000, 1),
            },
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--displays", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=60, help="steady passes (5 s apart on the simulated clock)")
    args = parser.parse_args()
    results = asyncio.run(run(args.displays, args.ticks))
    results["machine"] = machine_info()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "evaluator-latest.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    log(f"written {path}")
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
