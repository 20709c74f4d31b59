"""`GET /api/events`: the live feed of the dashboard as Server-Sent Events (SPEC §11)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Header, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.deps import NowDep, StateDep, SuperadminDep
from app.errors import BadRequest
from app.models import DISPLAY_STATUSES, SCREENSHOT_TYPES, StatusReason
from app.routers.common import AUTH_ERRORS, errors
from app.services.event_feed import EventFeed, Subscription
from app.services.events import EVENT_KINDS, EVENT_RETENTION, events_after

router = APIRouter(tags=["events"])

# The browser's reconnection delay, sent first.
RETRY_MILLISECONDS = 2000
# A comment line this often keeps proxies from closing an idle stream (and finds a gone client).
KEEPALIVE_SECONDS = 15.0
# Events read per query when a resumed stream catches up.
BACKLOG_PAGE = 1000
_MAX_EVENT_ID = 2**63 - 1

_STREAM_DESCRIPTION = f"""A `text/event-stream`: first `retry: {RETRY_MILLISECONDS}`, then one frame per event,
`id: <int>`, `event: <kind>` ({", ".join(EVENT_KINDS)}) and `data: <JSON>`, and a `: keepalive` comment
every {KEEPALIVE_SECONDS:.0f} s. It ends when the service shuts down or when the client falls too far behind;
reconnect with `Last-Event-ID`."""


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_SCREENSHOT_FIELDS = {
    "uuid": {"type": "string"},
    "type": {"type": "string", "enum": list(SCREENSHOT_TYPES)},
    "hash": {"type": "string"},
    "receivedAt": _TIME,
}
# Each event's `data` (JSON, camelCase), by its `event` name: what the dashboard reads.
EVENT_PAYLOADS: dict[str, dict[str, Any]] = {
    "status": {
        "uuid": {"type": "string"},
        "old": {"type": ["string", "null"], "enum": [*DISPLAY_STATUSES, None]},
        "new": {"type": "string", "enum": list(DISPLAY_STATUSES)},
        "reasons": {"type": "array", "items": {"type": "string", "enum": list(get_args(StatusReason.__value__))}},
        "at": _TIME,
    },
    "screenshot": _SCREENSHOT_FIELDS,
    "priority": {
        **_SCREENSHOT_FIELDS,
        "type": _NULLABLE_STRING,
        "hash": _NULLABLE_STRING,
        "active": {"type": "boolean"},
        "expiresAt": _TIME,
    },
    "error": {
        "uuid": {"type": "string"},
        "logId": {"type": "integer"},
        "message": _NULLABLE_STRING,
        "timestamp": _TIME,
    },
}
EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "event": {"const": kind},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"type": "object", "required": list(fields), "properties": fields},
                },
            },
        }
        for kind, fields in EVENT_PAYLOADS.items()
    ]
}
assert set(EVENT_PAYLOADS) == set(EVENT_KINDS)


def _last_event_id(value: str) -> int | None:
    if not value.strip():
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or int(value) > _MAX_EVENT_ID:
        raise BadRequest("Invalid Last-Event-ID: must be an event id")
    return int(value)


async def _frames(
    feed: EventFeed,
    subscription: Subscription,
    session_factory: async_sessionmaker[AsyncSession],
    *,
    after: int | None,
    since: datetime,
) -> AsyncIterator[str]:
    """The stream: what was missed after `after` (from the table), then live events until the feed closes it."""
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        # Subscribed before the table is read, so nothing falls between the two; ids sent from the table
        # are skipped when they come live too.
        sent: set[int] = set()
        cursor = after
        while cursor is not None:
            async with session_factory() as session:
                page = await events_after(session, after_id=cursor, since=since, limit=BACKLOG_PAGE)
            for event in page:
                sent.add(event.id)
                yield event.frame()
            cursor = page[-1].id if len(page) == BACKLOG_PAGE else None
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    live = await subscription.queue.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if live is None:
                return
            if live.id in sent or (after is not None and live.id <= after):
                continue
            yield live.frame()
    finally:
        feed.unsubscribe(subscription)


@router.get(
    "/api/events",
    operation_id="events_stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": _STREAM_DESCRIPTION,
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **errors(400, *AUTH_ERRORS, described={400: "`Last-Event-ID` is not an event id"}),
    },
)
async def stream(
    _: SuperadminDep,
    state: StateDep,
    now: NowDep,
    last_event_id: Annotated[
        str,
        Header(
            description="The id of the last event received: the stream starts with what came after it "
            "(from the last 10 minutes).",
            # Checked in the endpoint (400 with its own message); documented here for generated clients.
            json_schema_extra={"pattern": "^[0-9]{1,18}$"},
        ),
    ] = "",
) -> Response:
    """The live feed: status, screenshot, priority and error events as Server-Sent Events.

    Needs the role of the monitoring overview. With `Last-Event-ID` (a browser's `EventSource` sends
    it when it reconnects) the stream starts with the events after that id from the last 10 minutes.
    """
    after = _last_event_id(last_event_id)
    subscription = state.events.subscribe()
    frames = _frames(state.events, subscription, state.session_factory, after=after, since=now - EVENT_RETENTION)
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
