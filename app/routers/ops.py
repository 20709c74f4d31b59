"""Liveness and readiness probes (SPEC §10)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy import text
from typing_extensions import TypeAliasType

from app.deps import StateDep
from app.metrics import CONTENT_TYPE
from app.routers.common import json_response
from app.services import fleet_metrics

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


class Healthz(BaseModel):
    status: Literal["ok"]


DatabaseCheck = TypeAliasType("DatabaseCheck", Literal["ok", "error"])
MqttConnection = TypeAliasType("MqttConnection", Literal["connected", "disconnected", "disabled"])


class Readyz(BaseModel):
    database: DatabaseCheck
    mqtt: MqttConnection


@router.get("/healthz", operation_id="ops_healthz", response_model=Healthz)
async def healthz() -> Response:
    """The process serves."""
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    operation_id="ops_readyz",
    response_model=Readyz,
    responses={503: {"model": Readyz, "description": "The database does not answer"}},
)
async def readyz(state: StateDep) -> Response:
    """200 while the database answers (a broker outage only shows in the body)."""
    database = "ok"
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness check: database does not answer", exc_info=True)
        database = "error"
    if not state.mqtt.enabled:
        mqtt = "disabled"
    else:
        mqtt = "connected" if state.mqtt.connected else "disconnected"
    return json_response({"database": database, "mqtt": mqtt}, status_code=200 if database == "ok" else 503)


@router.get(
    "/metrics",
    operation_id="ops_metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def prometheus_metrics(state: StateDep) -> Response:
    """Prometheus metrics (process, ingest, database, broker, displays by status); served while the database is down."""
    return Response(await fleet_metrics.render(state), media_type=CONTENT_TYPE)
