"""Status history and incidents (SPEC §12): what the status evaluator recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from annotated_types import Ge, Lt
from fastapi import APIRouter, Path, Query, Response

from app.deps import AdminDep, AuthFirstRoute, NowDep, SessionDep
from app.routers.common import AUTH_ERRORS, errors, json_response, parse_since
from app.schemas.common import STRICT_INT
from app.schemas.incidents import IncidentList, IncidentRead, StatusHistoryRead
from app.services import status_history as history_service
from app.services.ingest import check_uuid

router = APIRouter(route_class=AuthFirstRoute, tags=["incidents"])

# The status history is kept for the longest uptime window.
MAX_HISTORY_HOURS = 720
MAX_INCIDENTS = 1000

HistoryHours = Annotated[
    int, Ge(1), STRICT_INT, Query(description="Window in hours (default 24); above 720 (30 days) is clamped to 720.")
]
IncidentId = Annotated[int, Ge(1), Lt(2**63), STRICT_INT, Path()]


@router.get(
    "/api/clients/{client_uuid}/status-history",
    operation_id="incidents_status_history",
    response_model=StatusHistoryRead,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def status_history(
    client_uuid: str, _: AdminDep, session: SessionDep, now: NowDep, hours: HistoryHours = 24
) -> Response:
    """A display's confirmed status changes over the last `hours`, with reasons and screenshot hashes."""
    check_uuid(client_uuid)
    hours = min(hours, MAX_HISTORY_HOURS)
    since = now - timedelta(hours=hours)
    transitions = await history_service.status_history(session, client_uuid=client_uuid, since=since)
    return json_response({"client_uuid": client_uuid, "hours": hours, "since": since, "transitions": transitions})


@router.get(
    "/api/incidents",
    operation_id="incidents_list",
    response_model=IncidentList,
    responses=errors(400, *AUTH_ERRORS),
)
async def list_incidents(
    _: AdminDep,
    session: SessionDep,
    open_: Annotated[
        bool | None, Query(alias="open", description="true: only open incidents; false: only closed ones.")
    ] = None,
    group_id: Annotated[
        int | None, Query(ge=1, lt=2**31, description="Only incidents of displays in this group (when they opened).")
    ] = None,
    client_uuid: Annotated[str | None, Query(description="Only incidents of this display.")] = None,
    since: Annotated[
        str | None,
        Query(
            description="ISO 8601 (`Z` allowed, naive means UTC): only incidents open at some moment since then.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    limit: Annotated[int, Ge(1), STRICT_INT, Query(description="Default 100; above 1000 is clamped to 1000.")] = 100,
) -> Response:
    """Incidents (a display offline or critical until it recovers), newest first."""
    if client_uuid is not None:
        check_uuid(client_uuid)
    where = history_service.IncidentFilter(
        open=open_, group_id=group_id, client_uuid=client_uuid, since=parse_since(since)
    )
    incidents = await history_service.list_incidents(session, where=where, limit=min(limit, MAX_INCIDENTS))
    return json_response({"incidents": incidents, "count": len(incidents)})


@router.post(
    "/api/incidents/{incident_id}/ack",
    operation_id="incidents_acknowledge",
    response_model=IncidentRead,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def acknowledge_incident(incident_id: IncidentId, token: AdminDep, session: SessionDep, now: NowDep) -> Response:
    """Acknowledge an incident (someone is on it); acknowledging again keeps the first acknowledgement."""
    incident = await history_service.acknowledge(session, incident_id=incident_id, by=token.name, now=now)
    return json_response(incident)
