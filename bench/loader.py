"""Load the peer's NDJSON dataset into the service's own schema, fast.

PostgreSQL: COPY (asyncpg `copy_records_to_table`) with the secondary indexes of `client_logs` dropped
and rebuilt around it, foreign-key triggers off for the session; SQLite: batched `executemany` in one
transaction. Both then fill the rollups (`log_counts_hourly`, then `log_counts_six_hourly` from it),
`log_totals` and `latest_logs` from the data itself (so they are exact), record the anchor in `bench_meta`,
and analyze.
Offsets are re-anchored to `anchor`, the same instant the peer's own load uses, so both databases hold
identical timestamps.

Databases are kept by name (`monitor_bench_<clients>`, `bench/.work/monitor_bench_<clients>.sqlite`)
and reused while their recorded spec and schema revision match; `--fresh` reloads.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from app.db import MIGRATIONS_DIR, create_engine, run_migrations
from bench.common import Dataset, log, pg_admin, pg_database_exists, pg_url

COPY_CHUNK = 250_000
_GROUP_NUMBER = re.compile(r"^Group (\d+)\b")


@dataclass
class Fleet:
    groups: list[tuple[int, str]]
    clients: list[dict[str, Any]]
    # (offset_us, client_uuid, level, message, context_text), sorted oldest first (then by uuid)
    logs: list[tuple[int, str, str, str, str | None]]


def read_fleet(path: Path) -> Fleet:
    clients: list[dict[str, Any]] = []
    logs: list[tuple[int, str, str, str, str | None]] = []
    group_names: set[str] = set()
    with path.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            uuid = record["uuid"]
            for entry in record.pop("logs"):
                context = entry["context"]
                logs.append(
                    (
                        round(entry["offset_s"] * 1e6),
                        uuid,
                        entry["level"],
                        entry["message"],
                        None if context is None else orjson.dumps(context).decode(),
                    )
                )
            if record["group"] is not None:
                group_names.add(record["group"])
            clients.append(record)
    # The peer numbers its groups 1..G in creation order; its names carry that number ("Group 007 ...").
    groups = []
    for position, name in enumerate(sorted(group_names), start=1):
        match = _GROUP_NUMBER.match(name)
        groups.append((int(match.group(1)) if match else position, name))
    # Global chronological order, as if ingested as it happened (the peer assigns ids the same way).
    logs.sort(key=lambda item: (-item[0], item[1]))
    return Fleet(groups=groups, clients=clients, logs=logs)


def _at(anchor: datetime, offset_s: float | None) -> datetime | None:
    return None if offset_s is None else anchor - timedelta(microseconds=round(offset_s * 1e6))


def _client_row(client: dict[str, Any], group_ids: dict[str, int], anchor: datetime) -> tuple[Any, ...]:
    return (
        client["uuid"],
        client["hostname"],
        client["description"],
        client["ip"],
        client["model"],
        group_ids.get(client["group"]) if client["group"] else None,
        _at(anchor, client["registration_offset_s"]),
        _at(anchor, client["last_alive_offset_s"]),
        client["is_active"],
        client["current_event_id"],
        client["current_process"],
        client["process_status"],
        client["process_pid"],
        client["screen_health_status"],
        _at(anchor, client["last_screenshot_analyzed_offset_s"]),
        client["last_screenshot_hash"],
    )


CLIENT_COLUMNS = [
    "uuid",
    "hostname",
    "description",
    "ip",
    "model",
    "group_id",
    "registration_time",
    "last_alive",
    "is_active",
    "current_event_id",
    "current_process",
    "process_status",
    "process_pid",
    "screen_health_status",
    "last_screenshot_analyzed",
    "last_screenshot_hash",
]
LOG_COLUMNS = ["id", "client_uuid", "timestamp", "level", "message", "context"]
# The hourly rollup (levels as columns) from the logs themselves; `{hour}` is the backend's hour truncation.
ROLLUP_FILL = (
    "INSERT INTO log_counts_hourly (bucket_start, client_uuid, error, warn, info, debug)"
    " SELECT {hour}, client_uuid,"
    " SUM(CASE WHEN level = 'ERROR' THEN 1 ELSE 0 END), SUM(CASE WHEN level = 'WARN' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN level = 'INFO' THEN 1 ELSE 0 END), SUM(CASE WHEN level = 'DEBUG' THEN 1 ELSE 0 END)"
    " FROM client_logs GROUP BY 1, 2"
)
META_DDL = "CREATE TABLE IF NOT EXISTS bench_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)"


def _migration(filename: str) -> Any:
    """A migration module by file name (their names start with a digit: no plain import)."""
    path = MIGRATIONS_DIR / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def derived_fills(dialect: str) -> list[str]:
    """What the migrations fill from the data, in order: the 6-hour rollup (0006), the newest-log pointers (0007)."""
    return [
        str(_migration("0006_six_hourly_rollup.py").fill_from_hourly(dialect)),
        str(_migration("0007_latest_log_pointers.py").FILL),
    ]


def schema_head() -> str:
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head or ""


def data_spec(dataset: Dataset) -> str:
    return f"{dataset.name}/seed{dataset.seed}/groups{dataset.groups}"


def spec_of(dataset: Dataset) -> str:
    """The data and the service's schema revision: a new migration means a reload of the service's copy."""
    return f"{data_spec(dataset)}/schema{schema_head()}"


# --- PostgreSQL -----------------------------------------------------------------------------------


async def pg_meta(dataset: Dataset) -> dict[str, str]:
    if not await pg_database_exists(dataset.service_db):
        return {}
    connection = await asyncpg.connect(pg_url(dataset.service_db))
    try:
        if not await connection.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL"):
            return {}
        return {row["key"]: row["value"] for row in await connection.fetch("SELECT key, value FROM bench_meta")}
    finally:
        await connection.close()


async def load_postgres(dataset: Dataset, fleet: Fleet, *, anchor: datetime) -> dict[str, float]:
    """Drop, migrate and COPY the fleet into `monitor_bench_<clients>`; returns phase timings."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    await pg_admin(f'DROP DATABASE IF EXISTS "{dataset.service_db}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{dataset.service_db}"')
    engine = create_engine(pg_url(dataset.service_db, driver="asyncpg"))
    try:
        await run_migrations(engine)
    finally:
        await engine.dispose()
    timings["migrate_s"] = time.perf_counter() - started

    connection = await asyncpg.connect(pg_url(dataset.service_db))
    try:
        await connection.execute("SET TimeZone = 'UTC'; SET maintenance_work_mem = '512MB'")
        # Foreign-key triggers off for this bulk session (the data is consistent by construction).
        await connection.execute("SET session_replication_role = replica")
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'client_logs'"
            " AND indexname <> 'client_logs_pkey'"
        )
        phase = time.perf_counter()
        async with connection.transaction():
            for row in indexes:
                await connection.execute(f'DROP INDEX "{row["indexname"]}"')
            await connection.copy_records_to_table("client_groups", records=fleet.groups, columns=["id", "name"])
            if fleet.groups:
                await connection.execute(
                    "SELECT setval('client_groups_id_seq', $1)", max(group_id for group_id, _ in fleet.groups)
                )
            group_ids = {name: group_id for group_id, name in fleet.groups}
            await connection.copy_records_to_table(
                "clients",
                records=[_client_row(client, group_ids, anchor) for client in fleet.clients],
                columns=CLIENT_COLUMNS,
            )
            for start in range(0, len(fleet.logs), COPY_CHUNK):
                chunk = fleet.logs[start : start + COPY_CHUNK]
                await connection.copy_records_to_table(
                    "client_logs",
                    records=[
                        (start + index + 1, uuid, anchor - timedelta(microseconds=offset), level, message, context)
                        for index, (offset, uuid, level, message, context) in enumerate(chunk)
                    ],
                    columns=LOG_COLUMNS,
                )
            if fleet.logs:
                await connection.execute("SELECT setval('client_logs_id_seq', $1)", len(fleet.logs))
            timings["copy_s"] = time.perf_counter() - phase
            phase = time.perf_counter()
            for row in indexes:
                await connection.execute(row["indexdef"])
            timings["indexes_s"] = time.perf_counter() - phase
            phase = time.perf_counter()
            await connection.execute(ROLLUP_FILL.format(hour="date_trunc('hour', timestamp)"))
            for statement in derived_fills("postgresql"):
                await connection.execute(statement)
            await connection.execute(
                "INSERT INTO log_totals (level, count) SELECT level, count(*) FROM client_logs GROUP BY level"
            )
            timings["rollups_s"] = time.perf_counter() - phase
            await connection.execute(META_DDL)
            await connection.executemany(
                "INSERT INTO bench_meta (key, value) VALUES ($1, $2)",
                [("spec", spec_of(dataset)), ("anchor", anchor.isoformat())],
            )
        phase = time.perf_counter()
        await connection.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - phase
    finally:
        await connection.close()
    timings["total_s"] = time.perf_counter() - started
    return timings


async def refresh_alive_postgres(dataset: Dataset, *, now: datetime) -> None:
    """Shift `last_alive` by (now - recorded anchor), as the peer's `--refresh-alive` does."""
    connection = await asyncpg.connect(pg_url(dataset.service_db))
    try:
        async with connection.transaction():
            anchor = datetime.fromisoformat(
                await connection.fetchval("SELECT value FROM bench_meta WHERE key = 'anchor'")
            )
            await connection.execute("UPDATE clients SET last_alive = last_alive + $1", now - anchor)
            await connection.execute("UPDATE bench_meta SET value = $1 WHERE key = 'anchor'", now.isoformat())
    finally:
        await connection.close()


# --- SQLite ---------------------------------------------------------------------------------------


def _sqlite_ts(moment: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DateTime stores (naive UTC, always 6 fractional digits)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_meta(dataset: Dataset) -> dict[str, str]:
    if not dataset.sqlite_path.exists():
        return {}
    connection = sqlite3.connect(dataset.sqlite_path)
    try:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'bench_meta'").fetchone():
            return {}
        return dict(connection.execute("SELECT key, value FROM bench_meta").fetchall())
    finally:
        connection.close()


async def load_sqlite(dataset: Dataset, fleet: Fleet, *, anchor: datetime) -> dict[str, float]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    path = dataset.sqlite_path
    remove_sqlite(path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await run_migrations(engine)
    finally:
        await engine.dispose()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'client_logs' AND sql IS NOT NULL"
        ).fetchall()
        phase = time.perf_counter()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        connection.executemany("INSERT INTO client_groups (id, name) VALUES (?, ?)", fleet.groups)
        group_ids = {name: group_id for group_id, name in fleet.groups}
        rows = []
        for client in fleet.clients:
            row = list(_client_row(client, group_ids, anchor))
            for position in (6, 7, 14):
                row[position] = _sqlite_ts(row[position])
            rows.append(row)
        connection.executemany(
            f"INSERT INTO clients ({', '.join(CLIENT_COLUMNS)}) VALUES ({', '.join('?' * len(CLIENT_COLUMNS))})", rows
        )
        for start in range(0, len(fleet.logs), COPY_CHUNK):
            connection.executemany(
                "INSERT INTO client_logs (id, client_uuid, timestamp, level, message, context)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (start + index + 1, uuid, _sqlite_ts(anchor - timedelta(microseconds=offset)), level, msg, ctx)
                    for index, (offset, uuid, level, msg, ctx) in enumerate(fleet.logs[start : start + COPY_CHUNK])
                ),
            )
        timings["copy_s"] = time.perf_counter() - phase
        phase = time.perf_counter()
        for _, sql in indexes:
            connection.execute(sql)
        timings["indexes_s"] = time.perf_counter() - phase
        phase = time.perf_counter()
        connection.execute(ROLLUP_FILL.format(hour="substr(timestamp, 1, 13) || ':00:00.000000'"))
        for statement in derived_fills("sqlite"):
            connection.execute(statement)
        connection.execute("INSERT INTO log_totals (level, count) SELECT level, count(*) FROM client_logs GROUP BY 1")
        timings["rollups_s"] = time.perf_counter() - phase
        connection.execute(META_DDL)
        connection.executemany(
            "INSERT INTO bench_meta (key, value) VALUES (?, ?)",
            [("spec", spec_of(dataset)), ("anchor", anchor.isoformat()), ("load_anchor", anchor.isoformat())],
        )
        connection.execute("COMMIT")
        phase = time.perf_counter()
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")
        timings["analyze_s"] = time.perf_counter() - phase
    finally:
        connection.close()
    timings["total_s"] = time.perf_counter() - started
    return timings


def refresh_alive_sqlite(dataset: Dataset, *, now: datetime) -> None:
    connection = sqlite3.connect(dataset.sqlite_path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        anchor = datetime.fromisoformat(
            connection.execute("SELECT value FROM bench_meta WHERE key = 'anchor'").fetchone()[0]
        )
        rows = connection.execute("SELECT uuid, last_alive FROM clients WHERE last_alive IS NOT NULL").fetchall()
        shift = now - anchor
        connection.executemany(
            "UPDATE clients SET last_alive = ? WHERE uuid = ?",
            [(_sqlite_ts(datetime.fromisoformat(text).replace(tzinfo=UTC) + shift), uuid) for uuid, text in rows],
        )
        connection.execute("UPDATE bench_meta SET value = ? WHERE key = 'anchor'", (now.isoformat(),))
        connection.execute("COMMIT")
    finally:
        connection.close()


def log_timings(label: str, timings: dict[str, float]) -> None:
    log(label + ": " + ", ".join(f"{key} {value:.1f}" for key, value in timings.items()))
