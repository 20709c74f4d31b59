"""Small helpers to arrange data through the API or straight in the database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import update
from sqlmodel import col

from app.models import Client
from app.state import AppState

UTC_SUFFIX = "+00:00"


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def post_logs(
    http: httpx.AsyncClient, headers: dict[str, str], client_uuid: str, entries: list[dict[str, Any]]
) -> httpx.Response:
    response = await http.post(f"/api/clients/{client_uuid}/logs", json=entries, headers=headers)
    assert response.status_code == 202, response.text
    return response


def log(level: str, message: str, at: datetime | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"level": level, "message": message, **extra}
    if at is not None:
        entry["timestamp"] = at.isoformat()
    return entry


async def heartbeat(
    http: httpx.AsyncClient, headers: dict[str, str], client_uuid: str, body: dict[str, Any] | None = None
) -> None:
    response = await http.post(f"/api/clients/{client_uuid}/heartbeat", json=body, headers=headers)
    assert response.status_code == 204, response.text


async def set_client(state: AppState, client_uuid: str, **values: Any) -> None:
    """Set client columns directly, as the screenshot or MQTT paths would."""
    async with state.session_factory() as session, session.begin():
        result = await session.execute(update(Client).where(col(Client.uuid) == client_uuid).values(**values))
        assert result.rowcount == 1, f"no client {client_uuid}"  # type: ignore[attr-defined]


def png_bytes(color: str = "red") -> bytes:
    """A small real PNG image."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def new_uuid(tag: str) -> str:
    """A fresh, valid client uuid starting with `tag`."""
    return f"{tag}-{uuid.uuid4().hex[:12]}"


ROOT = Path(__file__).resolve().parents[1]


def run_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m app ...` in a subprocess, with `env` over an environment cleared of the service's variables."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MQTT_", "MOSQUITTO_", "DATABASE_", "ENV", "INITIAL_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *argv],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
