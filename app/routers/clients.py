"""Client and group management (SPEC §9): admin to read and update, superadmin to delete."""

from __future__ import annotations

import logging
from typing import Annotated

from annotated_types import Ge, Lt
from fastapi import APIRouter, Path, Response

from app.deps import AdminDep, AuthFirstRoute, NowDep, SessionDep, SettingsDep, SuperadminDep
from app.errors import ClientNotFound
from app.routers.common import AUTH_ERRORS, ClientFilterDep, errors, json_response
from app.schemas.clients import ClientDetail, ClientList, ClientUpdate, GroupList, GroupRead, GroupWrite
from app.schemas.common import STRICT_INT
from app.services import clients as client_service
from app.services.ingest import check_uuid
from app.services.overview import Rules, client_views
from app.services.status_history import client_uptime

logger = logging.getLogger(__name__)
router = APIRouter(route_class=AuthFirstRoute)

GroupId = Annotated[int, Ge(1), Lt(2**31), STRICT_INT, Path()]

STATUS_WINDOW_HOURS = 24


def _rules(settings: SettingsDep) -> Rules:
    return Rules(
        grace_seconds=settings.heartbeat_grace_seconds,
        priority_ttl_seconds=settings.PRIORITY_SCREENSHOT_TTL_SECONDS,
    )


@router.get(
    "/api/clients",
    tags=["clients"],
    operation_id="clients_list",
    response_model=ClientList,
    responses=errors(400, *AUTH_ERRORS),
)
async def list_clients(
    _: AdminDep, session: SessionDep, settings: SettingsDep, now: NowDep, where: ClientFilterDep
) -> Response:
    """Every client (or those the filters select) with its group, liveness and status over the last 24 hours."""
    views = await client_views(
        session, now=now, hours=STATUS_WINDOW_HOURS, rules=_rules(settings), with_logs=False, where=where
    )
    clients = [client_service.client_dict(view) for view in views]
    return json_response({"clients": clients, "count": len(clients)})


async def _one_client(session: SessionDep, settings: SettingsDep, now: NowDep, client_uuid: str) -> Response:
    views = await client_views(
        session,
        now=now,
        hours=STATUS_WINDOW_HOURS,
        rules=_rules(settings),
        with_logs=False,
        client_uuid=client_uuid,
    )
    if not views:
        raise ClientNotFound()
    uptime = await client_uptime(session, client_uuid=client_uuid, now=now)
    return json_response(client_service.client_dict(views[0]) | uptime)


@router.get(
    "/api/clients/{client_uuid}",
    tags=["clients"],
    operation_id="clients_get",
    response_model=ClientDetail,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def get_client(
    client_uuid: str, _: AdminDep, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """One client, with its uptime over 24 hours, 7 days and 30 days."""
    check_uuid(client_uuid)
    return await _one_client(session, settings, now, client_uuid)


@router.patch(
    "/api/clients/{client_uuid}",
    tags=["clients"],
    operation_id="clients_update",
    response_model=ClientDetail,
    responses=errors(
        400,
        *AUTH_ERRORS,
        404,
        described={400: "Bad request: a value that does not parse, or an unknown `group_id`: `Group not found`"},
    ),
)
async def update_client(
    client_uuid: str, body: ClientUpdate, _: AdminDep, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """Set a client's description, group (null ungroups) or active flag."""
    check_uuid(client_uuid)
    await client_service.update_client(
        session, client_uuid=client_uuid, changes=body.model_dump(exclude_unset=True), now=now
    )
    return await _one_client(session, settings, now, client_uuid)


@router.delete(
    "/api/clients/{client_uuid}",
    tags=["clients"],
    operation_id="clients_delete",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def delete_client(client_uuid: str, _: SuperadminDep, session: SessionDep) -> Response:
    """Delete a client with its logs, screenshot rows and files."""
    check_uuid(client_uuid)
    await client_service.delete_client(session, client_uuid=client_uuid)
    return Response(status_code=204)


def _group(group_id: int, name: str, client_count: int) -> dict[str, object]:
    return {"id": group_id, "name": name, "client_count": client_count}


@router.get(
    "/api/client-groups",
    tags=["groups"],
    operation_id="groups_list",
    response_model=GroupList,
    responses=errors(*AUTH_ERRORS),
)
async def list_groups(_: AdminDep, session: SessionDep) -> Response:
    """Every group with its number of clients."""
    groups = await client_service.list_groups(session)
    return json_response({"groups": [_group(g.id or 0, g.name, count) for g, count in groups]})


@router.post(
    "/api/client-groups",
    tags=["groups"],
    operation_id="groups_create",
    status_code=201,
    response_model=GroupRead,
    responses=errors(400, *AUTH_ERRORS, 409),
)
async def create_group(body: GroupWrite, _: AdminDep, session: SessionDep) -> Response:
    """Create a group; its name must be unique."""
    group = await client_service.create_group(session, name=body.name)
    return json_response(_group(group.id or 0, group.name, 0), status_code=201)


@router.patch(
    "/api/client-groups/{group_id}",
    tags=["groups"],
    operation_id="groups_update",
    response_model=GroupRead,
    responses=errors(400, *AUTH_ERRORS, 404, 409),
)
async def rename_group(group_id: GroupId, body: GroupWrite, _: AdminDep, session: SessionDep) -> Response:
    """Rename a group."""
    group = await client_service.rename_group(session, group_id=group_id, name=body.name)
    count = await client_service.group_client_count(session, group_id=group_id)
    return json_response(_group(group_id, group.name, count))


@router.delete(
    "/api/client-groups/{group_id}",
    tags=["groups"],
    operation_id="groups_delete",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def delete_group(group_id: GroupId, _: AdminDep, session: SessionDep) -> Response:
    """Delete a group; its clients become ungrouped."""
    await client_service.delete_group(session, group_id=group_id)
    return Response(status_code=204)
