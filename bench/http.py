"""A small HTTP timer: keep-alive `http.client` connections (low client overhead), sequential and N-way."""

from __future__ import annotations

import http.client
import math
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Budget:
    warmups: int
    sequential: int
    sequential_seconds: float
    concurrency: int
    per_worker: int
    concurrent_seconds: float
    minimum: int = 3


@dataclass
class Series:
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    body_bytes: int = 0
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"n": 0, "errors": self.errors}
        return {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(values[max(0, math.ceil(0.95 * len(values)) - 1)], 2),
            "min_ms": round(values[0], 2),
            "max_ms": round(values[-1], 2),
            "req_per_s": round(len(values) / self.wall_s, 2) if self.wall_s else None,
            "body_bytes": self.body_bytes,
            "errors": self.errors,
        }


class Connection:
    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, path: str) -> tuple[float, int, int]:
        """(milliseconds, status, body bytes) for one GET, reconnecting once on a dropped keep-alive."""
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.connection.request("GET", path, headers=self.headers)
                response = self.connection.getresponse()
                body = response.read()
                return (time.perf_counter() - started) * 1000, response.status, len(body)
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def measure(port: int, path: str, headers: dict[str, str], budget: Budget) -> dict[str, Any]:
    """Warm up, then a sequential series and a concurrent series against one endpoint."""
    connection = Connection(port, headers)
    try:
        for _ in range(budget.warmups):
            elapsed, status, _size = connection.get(path)
            if status != 200:
                raise RuntimeError(f"GET {path} on port {port} answered {status}")
            if elapsed > 2000:  # a slow endpoint: one warm-up is enough
                break
        sequential = Series()
        started = time.perf_counter()
        while len(sequential.latencies_ms) < budget.sequential:
            elapsed, status, size = connection.get(path)
            if status != 200:
                sequential.errors += 1
            sequential.latencies_ms.append(elapsed)
            sequential.body_bytes = size
            spent = time.perf_counter() - started
            if spent > budget.sequential_seconds and len(sequential.latencies_ms) >= budget.minimum:
                break
        sequential.wall_s = time.perf_counter() - started
    finally:
        connection.close()
    concurrent = _concurrent(port, path, headers, budget)
    return {"sequential": sequential.summary(), "concurrent": concurrent.summary()}


def _concurrent(port: int, path: str, headers: dict[str, str], budget: Budget) -> Series:
    series = Series()
    lock = threading.Lock()
    start_gate = threading.Barrier(budget.concurrency)

    def worker() -> None:
        connection = Connection(port, headers)
        try:
            start_gate.wait()
            started = time.perf_counter()
            done = 0
            while done < budget.per_worker:
                elapsed, status, size = connection.get(path)
                done += 1
                with lock:
                    series.latencies_ms.append(elapsed)
                    series.body_bytes = size
                    series.errors += status != 200
                if time.perf_counter() - started > budget.concurrent_seconds:
                    break
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(budget.concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(budget.concurrency)]
        for future in futures:
            future.result()
    series.wall_s = time.perf_counter() - started
    return series
