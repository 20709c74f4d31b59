"""`python -m bench [--quick]`: the side-by-side read benchmark and the MQTT ingest benchmark.

--quick (make bench, < 3 min): 200 x 500 on PostgreSQL (peer and service) and SQLite (service), few
requests, and a small ingest run. Full (make bench-full): 200, 2,000 and 10,000 clients x 500 logs,
SQLite at 2,000 x 500, and the full ingest run. Results: bench/results/<mode>-<time>.json and .md,
plus latest-<mode>.json/.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import peer, reads, report
from bench.common import RESULTS_DIR, Dataset, log, machine_info
from bench.http import Budget

QUICK = Budget(
    warmups=2, sequential=15, sequential_seconds=6, concurrency=8, per_worker=4, concurrent_seconds=6, minimum=3
)
FULL = Budget(
    warmups=3, sequential=40, sequential_seconds=30, concurrency=8, per_worker=10, concurrent_seconds=30, minimum=3
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the < 3 minute version (make bench)")
    parser.add_argument(
        "--sizes", help="comma-separated client counts for PostgreSQL (default: quick 200; full 200,2000,10000)"
    )
    parser.add_argument("--sqlite-sizes", help="client counts for the SQLite run (default: quick 200; full 2000)")
    parser.add_argument("--no-reads", action="store_true", help="skip the read benchmark")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest benchmark")
    parser.add_argument("--fresh", action="store_true", help="reload datasets even when a matching one is kept")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark databases at the end")
    parser.add_argument("--prepare-only", action="store_true", help="load (or keep) the datasets, measure nothing")
    return parser.parse_args(argv)


def _sizes(value: str | None, default: str) -> list[int]:
    text = default if value is None else value
    return [int(part) for part in text.split(",") if part.strip()]


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    budget = QUICK if args.quick else FULL
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": mode,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "budget": budget.__dict__,
        "postgresql": [],
        "sqlite": [],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def save() -> None:
        results["elapsed_s"] = round(time.perf_counter() - started, 1)
        for name in (f"{mode}-{stamp}", f"latest-{mode}"):
            (RESULTS_DIR / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
            (RESULTS_DIR / f"{name}.md").write_text(report.markdown(results))

    if args.prepare_only:
        peer.ensure_peer()
        for clients in _sizes(args.sizes, "200" if args.quick else "200,2000,10000"):
            await reads.prepare_postgres(Dataset(clients), fresh=args.fresh)
        for clients in _sizes(args.sqlite_sizes, "200" if args.quick else "2000"):
            await reads.prepare_sqlite(Dataset(clients), fresh=args.fresh)
        return 0
    if not args.no_reads:
        peer.ensure_peer()
        for clients in _sizes(args.sizes, "200" if args.quick else "200,2000,10000"):
            results["postgresql"].append(await reads.run_postgres(Dataset(clients), budget, fresh=args.fresh))
            save()
        for clients in _sizes(args.sqlite_sizes, "200" if args.quick else "2000"):
            results["sqlite"].append(await reads.run_sqlite(Dataset(clients), budget, fresh=args.fresh))
            save()
    if not args.no_ingest:
        from bench import ingest

        results["ingest"] = await ingest.run(quick=args.quick)
        save()
    if args.drop:
        for clients in {*_sizes(args.sizes, "200,2000,10000"), *_sizes(args.sqlite_sizes, "200,2000")}:
            await reads.drop_databases(Dataset(clients))
    save()
    print(report.markdown(results))
    log(f"done in {time.perf_counter() - started:.0f} s; results in {RESULTS_DIR}/latest-{mode}.md")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
