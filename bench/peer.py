"""The original Flask module as a benchmark peer: a private copy, its venv, its data and its gunicorn."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from bench.common import PEER_DIR, PEER_SRC, WORK_DIR, Dataset, free_port, log, pg_url, timed

PEER_PYTHON = PEER_DIR / ".venv" / "bin" / "python"


def ensure_peer() -> None:
    """Copy the read-only peer to bench/.peer (git-ignored) and install its requirements once."""
    if not (PEER_DIR / "load.py").exists():
        if not (PEER_SRC / "load.py").exists():
            raise SystemExit(f"the original module is not at {PEER_SRC} (set BENCH_PEER_SRC)")
        log(f"copying the peer from {PEER_SRC}")
        shutil.copytree(PEER_SRC, PEER_DIR, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".venv", "*.pid"))
        for path in [PEER_DIR, *PEER_DIR.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    marker = PEER_DIR / ".venv" / ".installed"
    if not marker.exists():
        with timed("peer venv"):
            subprocess.run(["python3", "-m", "venv", str(PEER_DIR / ".venv")], check=True)
            subprocess.run(
                [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "-r", str(PEER_DIR / "requirements.txt")],
                check=True,
            )
        marker.touch()


def ensure_jsonl(dataset: Dataset) -> Path:
    """The dataset as NDJSON, generated once by the peer's own load.py and cached in bench/.work."""
    if dataset.jsonl.exists():
        return dataset.jsonl
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    partial = dataset.jsonl.with_suffix(".partial")
    with timed(f"generate {dataset.name} NDJSON"):
        subprocess.run(
            [
                str(PEER_PYTHON),
                str(PEER_DIR / "load.py"),
                *dataset.generator_args(),
                "--emit-jsonl",
                str(partial),
                "--no-db",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    partial.rename(dataset.jsonl)
    return dataset.jsonl


def _env(dataset: Dataset, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "VIRTUAL_ENV"))}
    env["DATABASE_URL"] = pg_url(dataset.peer_db, driver="psycopg2")
    env.update(extra)
    return env


def load_peer(dataset: Dataset, *, anchor: datetime) -> None:
    """The peer loads the same dataset into its own database through its own load.py (COPY)."""
    with timed(f"peer load {dataset.name} into {dataset.peer_db}"):
        subprocess.run(
            [str(PEER_PYTHON), "load.py", *dataset.generator_args(), "--now", anchor.isoformat()],
            check=True,
            cwd=PEER_DIR,
            env=_env(dataset),
            stdout=subprocess.DEVNULL,
        )


def refresh_alive(dataset: Dataset) -> None:
    subprocess.run(
        [str(PEER_PYTHON), "load.py", "--refresh-alive"],
        check=True,
        cwd=PEER_DIR,
        env=_env(dataset),
        stdout=subprocess.DEVNULL,
    )


class PeerServer:
    """gunicorn with 2 sync workers, started and stopped through the peer's run.sh/stop.sh (pid file)."""

    def __init__(self, dataset: Dataset, *, workers: int = 2) -> None:
        self.dataset = dataset
        self.port = free_port()
        self.pidfile = PEER_DIR / f"gunicorn-bench-{self.port}.pid"
        self.logfile = PEER_DIR / f"gunicorn-bench-{self.port}.log"
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return _env(
            self.dataset,
            PORT=str(self.port),
            PIDFILE=str(self.pidfile),
            LOG=str(self.logfile),
            WORKERS=str(self.workers),
            TIMEOUT="300",
        )

    def __enter__(self) -> PeerServer:
        subprocess.run(["./run.sh"], check=True, cwd=PEER_DIR, env=self._env(), stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["./stop.sh"], check=False, cwd=PEER_DIR, env=self._env(), stdout=subprocess.DEVNULL)
        self.logfile.unlink(missing_ok=True)
