"""`/api/client-logs`: the original blueprint's paths, shapes, defaults and limits (SPEC §9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from annotated_types import Ge
from fastapi import APIRouter, Query, Response

from app.deps import AdminDep, NowDep, OptionalTokenDep, SessionDep, SettingsDep, SuperadminDep
from app.errors import BadRequest
from app.models import LOG_LEVELS
from app.routers.common import AUTH_ERRORS, ClientFilterDep, errors, json_response, parse_since
from app.schemas.common import STRICT_INT
from app.schemas.logs import ClientLogsRead, OverviewRead, RecentErrorsRead, SummaryRead, TestRead
from app.services import logs as log_service
from app.services.ingest import check_uuid
from app.services.overview import Rules, client_views, overview_payload
from app.services.tokens import role_rank

router = APIRouter(prefix="/api/client-logs", tags=["client-logs"])

# The read filter's levels in any case, spelled out for the OpenAPI schema (`WARNING` is not one here).
LEVEL_PATTERN = "^(?:[Ee][Rr][Rr][Oo][Rr]|[Ww][Aa][Rr][Nn]|[Ii][Nn][Ff][Oo]|[Dd][Ee][Bb][Uu][Gg])$"
MAX_HOURS = 168
MAX_CLIENT_LOGS = 500
MAX_RECENT_ERRORS = 100

Hours = Annotated[int, Ge(1), STRICT_INT, Query(description="Window in hours; above 168 is clamped to 168.")]


@router.get(
    "/test",
    operation_id="client_logs_test",
    response_model=TestRead,
    responses=errors(),
    # The token is optional here: anonymous callers get the counts (OpenAPI: `{}` = no auth).
    openapi_extra={"security": [{}]},
)
async def logging_test(session: SessionDep, token: OptionalTokenDep) -> Response:
    """Check the logging pipeline: totals per level; the newest 5 logs for admins only."""
    totals = await log_service.level_totals(session)
    recent = []
    if token is not None and role_rank(token.role) >= role_rank("admin"):
        recent = [
            {"client_uuid": log.client_uuid, "level": log.level, "message": log.message, "timestamp": log.timestamp}
            for log in await log_service.newest_logs(session, limit=5)
        ]
    return json_response(
        {
            "status": "ok",
            "infrastructure": "working",
            "total_logs": sum(totals.values()),
            "counts": {"ERROR": totals["ERROR"], "WARN": totals["WARN"], "INFO": totals["INFO"]},
            "recent_5": recent,
        }
    )


@router.get(
    "/summary",
    operation_id="client_logs_summary",
    response_model=SummaryRead,
    responses=errors(400, *AUTH_ERRORS),
)
async def logs_summary(_: AdminDep, session: SessionDep, now: NowDep, hours: Hours = 24) -> Response:
    """Log counts per client and level over the last `hours`, for clients with logs in the window."""
    hours = min(hours, MAX_HOURS)
    since = now - timedelta(hours=hours)
    summary = await log_service.window_summary(session, since=since)
    return json_response({"summary": summary, "period_hours": hours, "since": since, "timestamp": now})


@router.get(
    "/recent-errors",
    operation_id="client_logs_recent_errors",
    response_model=RecentErrorsRead,
    responses=errors(400, *AUTH_ERRORS),
)
async def recent_errors(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Ge(1), STRICT_INT, Query(description="Default 20; above 100 is clamped to 100.")] = 20,
) -> Response:
    """The newest ERROR logs across all clients."""
    logs = await log_service.recent_errors(session, limit=min(limit, MAX_RECENT_ERRORS))
    entries = [log_service.log_entry(log, with_client=True) for log in logs]
    return json_response({"errors": entries, "count": len(entries)})


@router.get(
    "/monitoring-overview",
    operation_id="client_logs_monitoring_overview",
    response_model=OverviewRead,
    responses=errors(400, *AUTH_ERRORS),
)
async def monitoring_overview(
    _: SuperadminDep, session: SessionDep, settings: SettingsDep, now: NowDep, where: ClientFilterDep, hours: Hours = 24
) -> Response:
    """Every client with its status, window log counts, newest log and error, and screenshot state.

    The optional filters narrow `clients`, and `summary` then counts the clients that match.
    """
    hours = min(hours, MAX_HOURS)
    rules = Rules(
        grace_seconds=settings.heartbeat_grace_seconds,
        priority_ttl_seconds=settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
    )
    views = await client_views(session, now=now, hours=hours, rules=rules, with_logs=True, where=where)
    return json_response(overview_payload(views, now=now, hours=hours, rules=rules))


@router.get(
    "/{client_uuid}/logs",
    operation_id="client_logs_list",
    response_model=ClientLogsRead,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def client_logs(
    client_uuid: str,
    _: AdminDep,
    session: SessionDep,
    level: Annotated[
        str | None,
        Query(description="ERROR, WARN, INFO or DEBUG (any case)", json_schema_extra={"pattern": LEVEL_PATTERN}),
    ] = None,
    limit: Annotated[int, Ge(1), STRICT_INT, Query(description="Default 50; above 500 is clamped to 500.")] = 50,
    since: Annotated[
        str | None,
        Query(
            description="ISO 8601; `Z` allowed, naive means UTC; inclusive", json_schema_extra={"format": "date-time"}
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`next_cursor` of the previous page: the logs older than its last one (newest first).",
        ),
    ] = None,
) -> Response:
    """One client's logs, newest first; page back with `cursor` (each page gives the `next_cursor`)."""
    check_uuid(client_uuid)
    level_filter = None
    if level is not None:
        level_filter = level.upper()
        if level_filter not in LOG_LEVELS:
            raise BadRequest(f"Invalid level: {level}. Must be ERROR, WARN, INFO, or DEBUG")
    limit = min(limit, MAX_CLIENT_LOGS)
    page = await log_service.client_logs_page(
        session, client_uuid=client_uuid, level=level_filter, since=parse_since(since), limit=limit, cursor=cursor
    )
    entries = [log_service.log_entry(log) for log in page.logs]
    return json_response(
        {
            "client_uuid": client_uuid,
            "logs": entries,
            "count": len(entries),
            "limit": limit,
            "next_cursor": page.next_cursor,
        }
    )
