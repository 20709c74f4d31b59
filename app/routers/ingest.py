"""HTTP ingest (SPEC §6.2): the same effects as MQTT, through the same ingest service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import BeforeValidator, Field

from app.deps import AuthFirstRoute, DeviceDep, NowDep, SessionDep
from app.errors import Forbidden, PayloadTooLarge
from app.models import ApiToken
from app.routers.common import AUTH_ERRORS, errors, json_response
from app.schemas.common import Accepted
from app.schemas.ingest import MAX_LOGS_PER_REQUEST, HealthPayload, HeartbeatPayload, LogIn, LogRecord
from app.services import ingest
from app.services.ingest import check_uuid

router = APIRouter(prefix="/api/clients", tags=["ingest"], route_class=AuthFirstRoute)


def _at_most_max_logs(value: object) -> object:
    """Count before validating: an oversized array is a 413 without one of its items validated.

    Raised from a validator as an `AppError` (not a `ValueError`), it is no validation error: it
    leaves pydantic and FastAPI as it is and its handler answers 413.
    """
    if isinstance(value, list) and len(value) > MAX_LOGS_PER_REQUEST:
        raise PayloadTooLarge(f"Too many log entries: at most {MAX_LOGS_PER_REQUEST} per request")
    return value


LogBatch = Annotated[
    LogIn | Annotated[list[LogIn], Field(max_length=MAX_LOGS_PER_REQUEST)], BeforeValidator(_at_most_max_logs)
]


def check_ingest_allowed(token: ApiToken, client_uuid: str) -> str:
    """A valid uuid that this token may ingest for (a bound token only for its own client)."""
    check_uuid(client_uuid)
    if token.client_uuid is not None and token.client_uuid != client_uuid:
        raise Forbidden("Forbidden: this token is bound to another client")
    return client_uuid


@router.post(
    "/{client_uuid}/heartbeat",
    operation_id="ingest_heartbeat",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 413),
)
async def heartbeat(
    client_uuid: str,
    token: DeviceDep,
    session: SessionDep,
    now: NowDep,
    body: Annotated[HeartbeatPayload | None, Body()] = None,
) -> Response:
    """A display's heartbeat: alive now; only the fields sent are updated."""
    check_ingest_allowed(token, client_uuid)
    fields = body.model_dump(exclude_unset=True) if body is not None else {}
    await ingest.record_heartbeat(session, client_uuid=client_uuid, fields=fields, now=now)
    return Response(status_code=204)


@router.post(
    "/{client_uuid}/health",
    operation_id="ingest_health",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 413),
)
async def health(client_uuid: str, body: HealthPayload, token: DeviceDep, session: SessionDep, now: NowDep) -> Response:
    """A display's process and screen health."""
    check_ingest_allowed(token, client_uuid)
    await ingest.record_health(session, client_uuid=client_uuid, fields=body.model_dump(exclude_unset=True), now=now)
    return Response(status_code=204)


@router.post(
    "/{client_uuid}/logs",
    operation_id="ingest_logs",
    status_code=202,
    response_model=Accepted,
    responses=errors(400, *AUTH_ERRORS, 413),
)
async def logs(client_uuid: str, body: LogBatch, token: DeviceDep, session: SessionDep, now: NowDep) -> Response:
    """One log object or an array of at most 1000; a repeated `message_id` is accepted once."""
    check_ingest_allowed(token, client_uuid)
    items = body if isinstance(body, list) else [body]
    records = [
        (client_uuid, LogRecord.model_validate(item.model_dump(include=set(LogRecord.model_fields)))) for item in items
    ]
    accepted = await ingest.record_logs(session, records, now=now)
    return json_response({"accepted": accepted}, status_code=202)
