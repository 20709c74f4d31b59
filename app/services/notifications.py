"""Notifications into the durable outbox (SPEC §12), written in the evaluator's transaction.

An incident opened, reminded or recovered becomes one `notifications` row per webhook that wants it
(its event kinds, its group filter), in the same transaction as the transition: a transition is never
recorded without its notifications, nor the reverse. When more than `GROUP_ALERT_THRESHOLD` displays
of one group have the same kind of event within a minute, the events of that group are gathered into
one `group_alert` instead: it is held for `GROUP_ALERT_WINDOW` (later passes add their displays to it
while it waits), then sent once, listing them all.

Statements: at most five per pass, whatever the number of events (webhooks, recent counts, held
group alerts, the new rows, the grown group alerts), none when there is no event.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import execute_rows, rows_insert
from app.models import Incident, Notification, UTCDateTime, Webhook

# A group alert waits this long for the rest of its group before it is sent.
GROUP_ALERT_WINDOW = timedelta(minutes=1)

_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
_WEBHOOKS = Webhook.__table__  # type: ignore[attr-defined]
# The column of `incidents` that dates each kind of event (for the group threshold).
_EVENT_TIME = {
    "incident_opened": _INCIDENTS.c.opened_at,
    "incident_reminder": _INCIDENTS.c.reminded_at,
    "incident_recovered": _INCIDENTS.c.closed_at,
}


@dataclass(frozen=True)
class Event:
    """One incident's event: `incident` is its payload entry (see `incident_payload`)."""

    kind: str
    at: datetime
    group_id: int | None
    incident: dict[str, Any]


@dataclass(frozen=True)
class NotificationRules:
    group_threshold: int
    # Events dated this far back still count towards the group threshold (a minute, plus the confirm
    # time: a transition is dated when its status was first seen).
    group_lookback: timedelta


def incident_payload(incident: Any, *, hostname: str | None, description: str | None) -> dict[str, Any]:
    """The incident as a notification carries it (the same fields as `GET /api/incidents`)."""
    return {
        "id": incident.id,
        "client_uuid": incident.client_uuid,
        "hostname": hostname,
        "description": description,
        "group_id": incident.group_id,
        "status": incident.status,
        "reasons": orjson.loads(incident.reasons),
        "opened_at": incident.opened_at,
        "closed_at": incident.closed_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "screenshot_hash": incident.screenshot_hash,
        "priority_screenshot_hash": incident.priority_screenshot_hash,
    }


def _order_key(event: Event) -> str:
    """Deliveries with one key go out in order: a group's (its group alerts and its displays' events) or
    an ungrouped display's."""
    if event.group_id is not None:
        return f"group:{event.group_id}"
    return f"display:{event.incident['client_uuid']}"


def _wants(webhook: Any, kind: str, group_id: int | None) -> bool:
    return kind in orjson.loads(webhook.events) and (webhook.group_id is None or webhook.group_id == group_id)


def _body(delivery_id: str, event: str, at: datetime, **content: Any) -> str:
    return orjson.dumps({"event": event, "delivery_id": delivery_id, "at": at, **content}).decode()


def _row(
    webhook_id: int,
    kind: str,
    order_key: str,
    group_id: int | None,
    payload: str,
    delivery_id: str,
    *,
    now: datetime,
    due: datetime,
) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "webhook_id": webhook_id,
        "kind": kind,
        "order_key": order_key,
        "group_id": group_id,
        "payload": payload,
        "status": "pending",
        "created_at": now,
        "next_attempt_at": due,
        "attempts": 0,
    }


@functools.cache
def _notification_insert(dialect: str) -> Any:
    columns = (
        "delivery_id",
        "webhook_id",
        "kind",
        "order_key",
        "group_id",
        "payload",
        "status",
        "created_at",
        "next_attempt_at",
        "attempts",
    )
    return rows_insert(dialect, _NOTIFICATIONS, columns)


_GROW_GROUP_ALERT = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id == bindparam("id_"), _NOTIFICATIONS.c.status == "pending")
    .values(payload=bindparam("payload_"))
)


def _recent_counts_query(kinds: list[str]) -> Any:
    """(kind, group_id, count) of incidents' events of these kinds since `since`, in the given groups."""
    parts = [
        select(literal(kind).label("kind"), _INCIDENTS.c.group_id, func.count().label("events"))
        .where(
            _EVENT_TIME[kind] >= bindparam("since", type_=UTCDateTime()),
            _INCIDENTS.c.group_id.in_(bindparam("groups", expanding=True)),
        )
        .group_by(_INCIDENTS.c.group_id)
        for kind in kinds
    ]
    return union_all(*parts) if len(parts) > 1 else parts[0]


async def write_notifications(
    connection: AsyncConnection,
    events: list[Event],
    *,
    now: datetime,
    rules: NotificationRules,
    coming: Mapping[tuple[str, int], int] | None = None,
) -> int:
    """Outbox rows for these events (already recorded in this transaction); returns how many were written.

    `coming`: the (kind, group) events the evaluator left to its next pass, counted towards the group
    threshold now so a group split across passes is still one group alert.
    """
    coming = coming or {}
    if not events:
        return 0
    webhooks = (await connection.execute(select(_WEBHOOKS))).all()
    if not webhooks:
        return 0
    by_group: dict[tuple[str, int], list[Event]] = defaultdict(list)
    for event in events:
        if event.group_id is not None:
            by_group[(event.kind, event.group_id)].append(event)
    # Events already stored in this transaction count too, so the threshold compares the pass with the
    # minute before it, this pass included.
    grouped: set[tuple[str, int]] = set()
    if by_group:
        kinds = sorted({kind for kind, _ in by_group})
        groups = sorted({group for _, group in by_group})
        recent = await connection.execute(
            _recent_counts_query(kinds), {"since": now - rules.group_lookback, "groups": groups}
        )
        for kind, group_id, count in recent.all():
            if (kind, group_id) in by_group and count + coming.get((kind, group_id), 0) > rules.group_threshold:
                grouped.add((kind, group_id))
    held: dict[tuple[int, str, int], Any] = {}
    if grouped:
        query = select(
            _NOTIFICATIONS.c.id, _NOTIFICATIONS.c.webhook_id, _NOTIFICATIONS.c.group_id, _NOTIFICATIONS.c.payload
        ).where(
            _NOTIFICATIONS.c.kind == "group_alert",
            _NOTIFICATIONS.c.group_id.in_(sorted({group_id for _, group_id in grouped})),
            _NOTIFICATIONS.c.status == "pending",
            _NOTIFICATIONS.c.next_attempt_at > now,
        )
        for row in (await connection.execute(query)).all():
            held[(row.webhook_id, orjson.loads(row.payload)["kind"], row.group_id)] = row
    rows: list[dict[str, Any]] = []
    grown: list[dict[str, Any]] = []
    for webhook in webhooks:
        for event in events:
            if (event.kind, event.group_id) in grouped or not _wants(webhook, event.kind, event.group_id):
                continue
            delivery_id = str(uuid.uuid4())
            body = _body(delivery_id, event.kind, event.at, incident=event.incident)
            rows.append(
                _row(webhook.id, event.kind, _order_key(event), event.group_id, body, delivery_id, now=now, due=now)
            )
        for kind, group_id in sorted(grouped):
            if not _wants(webhook, kind, group_id):
                continue
            incidents = [event.incident for event in by_group[(kind, group_id)]]
            waiting = held.get((webhook.id, kind, group_id))
            if waiting is not None:
                payload = orjson.loads(waiting.payload)
                payload["incidents"] += orjson.loads(orjson.dumps(incidents))
                payload["count"] = len(payload["incidents"])
                grown.append({"id_": waiting.id, "payload_": orjson.dumps(payload).decode()})
                continue
            delivery_id = str(uuid.uuid4())
            body = _body(
                delivery_id, "group_alert", now, kind=kind, group_id=group_id, count=len(incidents), incidents=incidents
            )
            due = now + GROUP_ALERT_WINDOW
            rows.append(
                _row(webhook.id, "group_alert", f"group:{group_id}", group_id, body, delivery_id, now=now, due=due)
            )
    if rows:
        await execute_rows(connection, _notification_insert(connection.dialect.name), rows)
    if grown:
        await connection.execute(_GROW_GROUP_ALERT, grown)
    return len(rows) + len(grown)
