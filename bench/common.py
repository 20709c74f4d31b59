"""Paths, dataset specs, the PostgreSQL admin connection and small process helpers for the benchmarks."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work"
PEER_DIR = BENCH_DIR / ".peer"
RESULTS_DIR = BENCH_DIR / "results"
# The read-only original: `../shared/peer/flask_original` beside the clone (override with BENCH_PEER_SRC).
PEER_SRC = Path(os.environ.get("BENCH_PEER_SRC", ROOT.parent / "shared" / "peer" / "flask_original"))
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PYTHON = sys.executable


@dataclass(frozen=True)
class Dataset:
    """One generated fleet: `load.py --clients N --logs-per-client M --groups G --seed 42`."""

    clients: int
    logs_per_client: int = 500
    seed: int = 42

    @property
    def groups(self) -> int:
        return 10 if self.clients <= 200 else 50 if self.clients <= 2000 else 100

    @property
    def name(self) -> str:
        return f"{self.clients}x{self.logs_per_client}"

    @property
    def jsonl(self) -> Path:
        return WORK_DIR / f"data_{self.name}_s{self.seed}_g{self.groups}.jsonl"

    @property
    def peer_db(self) -> str:
        return f"seedpeer_{self.clients}"

    @property
    def service_db(self) -> str:
        return f"monitor_bench_{self.clients}"

    @property
    def sqlite_path(self) -> Path:
        return WORK_DIR / f"monitor_bench_{self.clients}.sqlite"

    def generator_args(self) -> list[str]:
        return [
            "--clients",
            str(self.clients),
            "--logs-per-client",
            str(self.logs_per_client),
            "--seed",
            str(self.seed),
            "--groups",
            str(self.groups),
        ]


def pg_url(database: str, *, driver: str = "") -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    if driver:
        base = base.replace("postgresql://", f"postgresql+{driver}://", 1)
    return f"{base}/{database}"


async def pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def pg_database_exists(name: str) -> bool:
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        return bool(await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> None:
    """SIGTERM the process we started (by its pid), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def rss_bytes(pid: int) -> int:
    """Current resident set size of a process from /proc (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def machine_info() -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as info:
        memory_kb = int(info.readline().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"{label}: {time.perf_counter() - started:.1f} s")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
