"""`/api/maintenance-windows` (admin): when notifications are silenced (SPEC §12)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Lt
from fastapi import APIRouter, Path, Response
from sqlalchemy import select
from sqlmodel import col

from app.deps import AdminDep, AuthFirstRoute, NowDep, SessionDep, SettingsDep
from app.errors import NotFound
from app.models import MaintenanceWindow
from app.routers.common import AUTH_ERRORS, errors, json_response
from app.schemas.common import STRICT_INT
from app.schemas.incidents import MaintenanceWindowCreate, MaintenanceWindowList, MaintenanceWindowRead
from app.services.maintenance import WEEKDAYS, window_entry

router = APIRouter(route_class=AuthFirstRoute, tags=["maintenance"])

WindowId = Annotated[int, Ge(1), Lt(2**31), STRICT_INT, Path()]


@router.get(
    "/api/maintenance-windows",
    operation_id="maintenance_list",
    response_model=MaintenanceWindowList,
    responses=errors(*AUTH_ERRORS),
)
async def list_windows(_: AdminDep, session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """Every maintenance window, with when the one in force now ends."""
    windows = (await session.execute(select(MaintenanceWindow).order_by(col(MaintenanceWindow.id)))).scalars()
    zone, name = settings.maintenance_zone, settings.MAINTENANCE_TIME_ZONE
    return json_response(
        {"maintenance_windows": [window_entry(window, now=now, zone=zone, zone_name=name) for window in windows]}
    )


@router.post(
    "/api/maintenance-windows",
    operation_id="maintenance_create",
    status_code=201,
    response_model=MaintenanceWindowRead,
    responses=errors(400, *AUTH_ERRORS),
)
async def create_window(
    body: MaintenanceWindowCreate, _: AdminDep, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """Silence one display's or one group's notifications, once or every week (the history still records).

    Openings and reminders are silenced; the recovery of an incident that was announced is sent all the
    same. A display down within the window is announced when it ends only if it is still down.
    """
    window = MaintenanceWindow(
        client_uuid=body.client_uuid,
        group_id=body.group_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        weekdays=",".join(str(WEEKDAYS.index(day)) for day in sorted(set(body.weekdays), key=WEEKDAYS.index))
        if body.weekdays
        else None,
        start_time=body.start_time,
        end_time=body.end_time,
        description=body.description,
        created_at=now,
    )
    session.add(window)
    await session.flush()
    entry = window_entry(window, now=now, zone=settings.maintenance_zone, zone_name=settings.MAINTENANCE_TIME_ZONE)
    return json_response(entry, status_code=201)


@router.delete(
    "/api/maintenance-windows/{window_id}",
    operation_id="maintenance_delete",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def delete_window(window_id: WindowId, _: AdminDep, session: SessionDep) -> Response:
    """End a maintenance window (notifications resume at the next evaluation)."""
    window = await session.get(MaintenanceWindow, window_id)
    if window is None:
        raise NotFound("Maintenance window not found")
    await session.delete(window)
    return Response(status_code=204)
