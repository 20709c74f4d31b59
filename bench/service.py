"""The service as a benchmark subject: a superadmin token and `python -m app serve` (uvicorn, 1 process)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.db import create_engine, create_session_factory
from app.models import utcnow
from app.services.tokens import create_token
from bench.common import PYTHON, WORK_DIR, free_port, peak_rss_bytes, stop_process, wait_for_port


async def superadmin_token(database_url: str) -> str:
    """A fresh superadmin secret, created in the service's database with the service's own code."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            _, secret = await create_token(session, name="bench", role="superadmin", client_uuid=None, now=utcnow())
    finally:
        await engine.dispose()
    return secret


class ServiceServer:
    """uvicorn with production settings (ENV=production, LOG_LEVEL=WARNING: no access log)."""

    def __init__(self, database_url: str, *, mqtt: dict[str, str] | None = None, port: int | None = None) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.data_dir = WORK_DIR / f"service-data-{self.port}"
        self.mqtt = mqtt
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0
        self.logfile = WORK_DIR / f"service-{self.port}.log"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("MQTT_", "DATABASE_URL"))}
        env.update(
            DATABASE_URL=self.database_url,
            DATA_DIR=str(self.data_dir),
            HOST="127.0.0.1",
            PORT=str(self.port),
            ENV="production",
            LOG_LEVEL="WARNING",
            MQTT_ENABLED="false",
        )
        if self.mqtt:
            env.update(MQTT_ENABLED="true", **self.mqtt)
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with Path(self.logfile).open("ab") as log:
            # cwd=bench/.work: no developer `.env` is picked up.
            self.process = subprocess.Popen(
                [PYTHON, "-m", "app", "serve"], cwd=WORK_DIR, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, process=self.process)

    def sample_rss(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.peak_rss
        self.peak_rss = max(self.peak_rss, peak_rss_bytes(self.process.pid))
        return self.peak_rss

    def stop(self) -> None:
        if self.process is not None:
            self.sample_rss()
            stop_process(self.process)
            self.process = None

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.logfile.unlink(missing_ok=True)

    def __enter__(self) -> ServiceServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
