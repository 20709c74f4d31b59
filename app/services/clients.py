"""Client and group management (SPEC §9, management)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import BadRequest, ClientNotFound, Conflict, NotFound
from app.models import Client, ClientGroup, ClientLog, LatestLog, LogCountHourly, Screenshot
from app.services.ingest import LEVEL_COLUMNS, ROLLUPS, adjust_totals
from app.services.overview import ClientView
from app.services.unit_of_work import file_effects

CLIENT_FIELDS = (
    "uuid",
    "hostname",
    "description",
    "ip",
    "model",
    "group_id",
    "registration_time",
    "last_alive",
    "is_active",
    "current_event_id",
    "current_process",
    "process_status",
    "process_pid",
    "screen_health_status",
    "detected_screen_health",
    "detected_screen_health_reason",
    "last_screenshot_analyzed",
    "last_screenshot_hash",
    "latest_screenshot_type",
    "last_priority_screenshot_type",
    "last_priority_received_at",
    "last_priority_screenshot_hash",
)


def client_dict(view: ClientView) -> dict[str, Any]:
    """The snake_case client of the management API."""
    body = {name: getattr(view.client, name) for name in CLIENT_FIELDS}
    body.update(group_name=view.group_name, is_alive=view.alive, status=view.status, status_reasons=view.status_reasons)
    return body


async def update_client(session: AsyncSession, *, client_uuid: str, changes: dict[str, Any], now: datetime) -> None:
    """Apply an operator's PATCH; an unknown group is a 400. (De)activation is a cue for the status evaluator."""
    if await session.scalar(select(col(Client.uuid)).where(col(Client.uuid) == client_uuid)) is None:
        raise ClientNotFound()
    group_id = changes.get("group_id")
    if group_id is not None and await session.get(ClientGroup, group_id) is None:
        raise BadRequest("Group not found")
    if "is_active" in changes:
        changes = {**changes, "changed_at": now}
    if changes:
        await session.execute(update(Client).where(col(Client.uuid) == client_uuid).values(**changes))


async def delete_client(session: AsyncSession, *, client_uuid: str) -> None:
    """Remove a client with its logs, counts, newest-log pointers and screenshot rows (files after the commit)."""
    if await session.scalar(select(col(Client.uuid)).where(col(Client.uuid) == client_uuid)) is None:
        raise ClientNotFound()
    rollup = LogCountHourly.__table__  # type: ignore[attr-defined]
    sums = (
        await session.execute(
            select(*(func.coalesce(func.sum(rollup.c[column]), 0) for column in LEVEL_COLUMNS.values())).where(
                rollup.c.client_uuid == client_uuid
            )
        )
    ).one()
    await adjust_totals(session, {level: -int(count) for level, count in zip(LEVEL_COLUMNS, sums, strict=True)})
    files = list(
        (
            await session.execute(select(col(Screenshot.filename)).where(col(Screenshot.client_uuid) == client_uuid))
        ).scalars()
    )
    # Children are deleted explicitly: no reliance on the backend cascading.
    await session.execute(delete(ClientLog).where(col(ClientLog.client_uuid) == client_uuid))
    await session.execute(delete(Screenshot).where(col(Screenshot.client_uuid) == client_uuid))
    for table, _ in ROLLUPS:
        await session.execute(delete(table).where(table.c.client_uuid == client_uuid))
    await session.execute(delete(LatestLog).where(col(LatestLog.client_uuid) == client_uuid))
    await session.execute(delete(Client).where(col(Client.uuid) == client_uuid))
    file_effects(session).to_delete.extend(files)


async def list_groups(session: AsyncSession) -> Sequence[tuple[ClientGroup, int]]:
    query = (
        select(ClientGroup, func.count(col(Client.uuid)))
        .outerjoin(Client, col(Client.group_id) == col(ClientGroup.id))
        .group_by(col(ClientGroup.id))
        .order_by(func.lower(col(ClientGroup.name)), col(ClientGroup.id))
    )
    return [(group, int(count)) for group, count in (await session.execute(query)).all()]


async def _flush_unique(session: AsyncSession, group: ClientGroup) -> None:
    try:
        async with session.begin_nested():
            session.add(group)
            await session.flush()
    except IntegrityError:
        raise Conflict("Group name already exists") from None


async def create_group(session: AsyncSession, *, name: str) -> ClientGroup:
    group = ClientGroup(name=name)
    await _flush_unique(session, group)
    return group


async def rename_group(session: AsyncSession, *, group_id: int, name: str) -> ClientGroup:
    group = await get_group(session, group_id=group_id)
    group.name = name
    await _flush_unique(session, group)
    return group


async def get_group(session: AsyncSession, *, group_id: int) -> ClientGroup:
    group = await session.get(ClientGroup, group_id)
    if group is None:
        raise NotFound("Group not found")
    return group


async def group_client_count(session: AsyncSession, *, group_id: int) -> int:
    return int(await session.scalar(select(func.count()).where(col(Client.group_id) == group_id)) or 0)


async def delete_group(session: AsyncSession, *, group_id: int) -> None:
    group = await get_group(session, group_id=group_id)
    await session.execute(update(Client).where(col(Client.group_id) == group_id).values(group_id=None))
    await session.delete(group)
