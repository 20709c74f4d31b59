"""The side-by-side read benchmark: the original (gunicorn, 2 sync workers) and the service (uvicorn,
1 process) on the same PostgreSQL server, each on its own database holding the same data, in turn."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import loader, peer
from bench.common import Dataset, log, pg_admin, pg_database_exists, pg_url, timed
from bench.http import Budget, measure
from bench.service import ServiceServer, superadmin_token

# Reuse a loaded dataset while it is younger than this (its logs age out of the 24 h window).
MAX_DATASET_AGE = timedelta(hours=3)


def endpoints(client_uuid: str) -> dict[str, str]:
    base = "/api/client-logs"
    return {
        "monitoring-overview": f"{base}/monitoring-overview",
        "summary": f"{base}/summary",
        "client-logs": f"{base}/{client_uuid}/logs",
        "recent-errors": f"{base}/recent-errors",
        "test": f"{base}/test",
    }


async def _peer_spec(dataset: Dataset) -> str | None:
    if not await pg_database_exists(dataset.peer_db):
        return None
    connection = await asyncpg.connect(pg_url(dataset.peer_db))
    try:
        if not await connection.fetchval("SELECT to_regclass('seedpeer_meta') IS NOT NULL"):
            return None
        value = await connection.fetchval("SELECT value FROM seedpeer_meta WHERE key = 'bench_spec'")
        return str(value) if value else None
    finally:
        await connection.close()


async def _mark_peer(dataset: Dataset, spec: str) -> None:
    connection = await asyncpg.connect(pg_url(dataset.peer_db))
    try:
        await connection.execute("INSERT INTO seedpeer_meta (key, value) VALUES ('bench_spec', $1)", spec)
    finally:
        await connection.close()


async def prepare_postgres(dataset: Dataset, *, fresh: bool) -> dict[str, Any]:
    """Both databases with the same data and the same anchor: reused when recorded as such, else loaded.

    The original's copy does not depend on the service's schema: after a new migration only the
    service's copy is reloaded, re-anchored to the instant the original's copy was loaded with.
    """
    now = datetime.now(UTC)
    peer_anchor = None if fresh else await _peer_anchor(dataset)
    if peer_anchor is not None and now - peer_anchor >= MAX_DATASET_AGE:
        peer_anchor = None
    meta = await loader.pg_meta(dataset)
    service_ok = (
        peer_anchor is not None
        and meta.get("spec") == loader.spec_of(dataset)
        and meta.get("load_anchor") == peer_anchor.isoformat()
    )
    info: dict[str, Any] = {"reused": service_ok}
    anchor = peer_anchor or now
    info["load_anchor"] = anchor.isoformat()
    if service_ok:
        log(f"{dataset.name}: reusing {dataset.peer_db} and {dataset.service_db} (loaded at {anchor.isoformat()})")
        return info
    path = peer.ensure_jsonl(dataset)
    with timed(f"read {path.name}"):
        fleet = loader.read_fleet(path)
    started = time.perf_counter()
    timings = await loader.load_postgres(dataset, fleet, anchor=anchor)
    loader.log_timings(f"service load {dataset.name} (PostgreSQL)", timings)
    del fleet
    await _record_load_anchor(dataset, anchor)
    info.update(service_load=timings, service_load_s=round(time.perf_counter() - started, 1))
    if peer_anchor is None:
        if not await pg_database_exists(dataset.peer_db):
            await pg_admin(f'CREATE DATABASE "{dataset.peer_db}"')
        peer_started = time.perf_counter()
        peer.load_peer(dataset, anchor=anchor)
        await _mark_peer(dataset, f"{loader.data_spec(dataset)}@{anchor.isoformat()}")
        info["peer_load_s"] = round(time.perf_counter() - peer_started, 1)
    else:
        log(f"{dataset.name}: reusing {dataset.peer_db} (loaded at {anchor.isoformat()})")
    return info


async def _peer_anchor(dataset: Dataset) -> datetime | None:
    """The anchor the original's copy was loaded with, if it holds this dataset."""
    marker = await _peer_spec(dataset)
    if not marker or "@" not in marker:
        return None
    spec, anchor = marker.rsplit("@", 1)
    if spec.split("/schema", 1)[0] != loader.data_spec(dataset):
        return None
    return datetime.fromisoformat(anchor)


async def _record_load_anchor(dataset: Dataset, anchor: datetime) -> None:
    connection = await asyncpg.connect(pg_url(dataset.service_db))
    try:
        await connection.execute("INSERT INTO bench_meta (key, value) VALUES ('load_anchor', $1)", anchor.isoformat())
    finally:
        await connection.close()


def first_client(dataset: Dataset) -> str:
    """The uuid of the dataset's first client (the one-client-logs endpoint)."""
    with dataset.jsonl.open("rb") as handle:
        line = handle.readline()
    start = line.index(b'"uuid":"') + len(b'"uuid":"')
    return line[start : line.index(b'"', start)].decode()


async def _first_client_pg(dataset: Dataset) -> str:
    connection = await asyncpg.connect(pg_url(dataset.service_db))
    try:
        return str(await connection.fetchval("SELECT uuid FROM clients ORDER BY hostname LIMIT 1"))
    finally:
        await connection.close()


async def run_postgres(dataset: Dataset, budget: Budget, *, fresh: bool) -> dict[str, Any]:
    prepared = await prepare_postgres(dataset, fresh=fresh)
    client_uuid = await _first_client_pg(dataset)
    paths = endpoints(client_uuid)
    result: dict[str, Any] = {"dataset": dataset.name, "prepare": prepared, "client_uuid": client_uuid}

    # The peer first, then the service: one system at a time on the 2 cores.
    peer.refresh_alive(dataset)
    peer_results: dict[str, Any] = {}
    with peer.PeerServer(dataset) as server:
        for name, path in paths.items():
            with timed(f"peer {dataset.name} {name}"):
                peer_results[name] = measure(server.port, path, {"X-Role": "superadmin"}, budget)
    result["peer"] = peer_results

    await loader.refresh_alive_postgres(dataset, now=datetime.now(UTC))
    database_url = pg_url(dataset.service_db, driver="asyncpg")
    secret = await superadmin_token(database_url)
    service_results: dict[str, Any] = {}
    service = ServiceServer(database_url)
    with service:
        for name, path in paths.items():
            with timed(f"service {dataset.name} {name}"):
                service_results[name] = measure(service.port, path, {"Authorization": f"Bearer {secret}"}, budget)
            service.sample_rss()
    service.cleanup()
    result["service"] = service_results
    result["service_peak_rss_mb"] = round(service.peak_rss / 2**20, 1)
    result["ratios"] = ratios(peer_results, service_results)
    return result


async def prepare_sqlite(dataset: Dataset, *, fresh: bool) -> dict[str, Any]:
    meta = loader.sqlite_meta(dataset)
    reusable = (
        not fresh
        and meta.get("spec") == loader.spec_of(dataset)
        and datetime.now(UTC) - datetime.fromisoformat(meta.get("load_anchor", "2000-01-01T00:00:00+00:00"))
        < MAX_DATASET_AGE
    )
    info: dict[str, Any] = {"reused": reusable, "load_anchor": meta.get("load_anchor")}
    if not reusable:
        fleet = loader.read_fleet(peer.ensure_jsonl(dataset))
        timings = await loader.load_sqlite(dataset, fleet, anchor=datetime.now(UTC))
        loader.log_timings(f"service load {dataset.name} (SQLite)", timings)
        info["service_load"] = timings
        del fleet
    return info


async def run_sqlite(dataset: Dataset, budget: Budget, *, fresh: bool) -> dict[str, Any]:
    """The embedded default: the service alone on a SQLite file holding the same data."""
    info = await prepare_sqlite(dataset, fresh=fresh)
    loader.refresh_alive_sqlite(dataset, now=datetime.now(UTC))
    database_url = f"sqlite+aiosqlite:///{dataset.sqlite_path}"
    secret = await superadmin_token(database_url)
    paths = endpoints(first_client(dataset))
    results: dict[str, Any] = {}
    service = ServiceServer(database_url)
    with service:
        for name, path in paths.items():
            with timed(f"service/sqlite {dataset.name} {name}"):
                results[name] = measure(service.port, path, {"Authorization": f"Bearer {secret}"}, budget)
            service.sample_rss()
    service.cleanup()
    return {
        "dataset": dataset.name,
        "prepare": info,
        "service": results,
        "service_peak_rss_mb": round(service.peak_rss / 2**20, 1),
    }


def ratios(peer_results: dict[str, Any], service_results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, peer_result in peer_results.items():
        service_result = service_results.get(name)
        if not service_result:
            continue
        out[name] = {
            mode: (
                round(peer_result[mode]["p50_ms"] / service_result[mode]["p50_ms"], 1)
                if peer_result[mode].get("p50_ms") and service_result[mode].get("p50_ms")
                else None
            )
            for mode in ("sequential", "concurrent")
        }
    return out


async def drop_databases(dataset: Dataset) -> None:
    for name in (dataset.peer_db, dataset.service_db):
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    loader.remove_sqlite(dataset.sqlite_path)
