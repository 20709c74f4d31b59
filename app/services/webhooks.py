"""Webhooks (SPEC §12): their management, and the delivery of the outbox.

Delivery: a lifespan task claims due notifications, sends them with httpx and records the outcome.
A claim is one statement: the due rows (`next_attempt_at` passed, not held by another replica,
no earlier pending delivery with the same webhook and `order_key`) taken with `FOR UPDATE SKIP
LOCKED` on PostgreSQL and marked held (`claimed_until`) in the same statement, so two replicas
never take the same row; a replica that dies mid-send lets go when its hold expires. A failed
attempt is retried with exponential backoff and jitter until 24 hours after the notification was
written; then it is `failed`. Sending runs in its own task and transactions: a slow receiver never
holds up ingest or the evaluator.

Each request is a POST of the stored payload (the same bytes on every attempt) with
`X-Infoscreen-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`,
`X-Infoscreen-Delivery: <delivery id>` (the receiver's idempotency key) and `X-Infoscreen-Event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.errors import NotFound
from app.metrics import DATABASE_ERRORS, NOTIFICATIONS_DELIVERED
from app.models import Notification, UTCDateTime, Webhook
from app.state import AppState

logger = logging.getLogger(__name__)

RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_SECONDS = 10.0
LONGEST_RETRY_SECONDS = 3600.0
# How long a claimed delivery stays held by the replica sending it (longer than any request takes).
CLAIM_SECONDS = 120.0
CLAIM_BATCH = 50
POLL_SECONDS = 1.0
SIGNATURE_HEADER = "X-Infoscreen-Signature"
DELIVERY_HEADER = "X-Infoscreen-Delivery"
EVENT_HEADER = "X-Infoscreen-Event"
_LAST_ERROR_CHARS = 500

_NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
_WEBHOOKS = Webhook.__table__  # type: ignore[attr-defined]


class WebhookNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Webhook not found")


def signature(secret: str, body: bytes) -> str:
    """The `X-Infoscreen-Signature` value of a body: `sha256=` and the hex HMAC-SHA256 with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter after `attempts` failed attempts: 10 s, 20 s, 40 s ... up to an hour,
    each taken at random between half and all of it (so receivers that come back are not hit at once)."""
    ceiling = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=ceiling * (0.5 + 0.5 * (rng or random).random()))


# --- management -------------------------------------------------------------------------------


def webhook_entry(webhook: Webhook) -> dict[str, Any]:
    """The webhook as the API shows it: never its secret."""
    return {
        "id": webhook.id,
        "url": webhook.url,
        "group_id": webhook.group_id,
        "events": orjson.loads(webhook.events),
        "created_at": webhook.created_at,
    }


async def list_webhooks(session: AsyncSession) -> Sequence[Webhook]:
    return (await session.execute(select(Webhook).order_by(col(Webhook.id)))).scalars().all()


async def get_webhook(session: AsyncSession, *, webhook_id: int) -> Webhook:
    webhook = await session.get(Webhook, webhook_id)
    if webhook is None:
        raise WebhookNotFound()
    return webhook


async def create_webhook(
    session: AsyncSession, *, url: str, secret: str, group_id: int | None, events: list[str], now: datetime
) -> Webhook:
    webhook = Webhook(url=url, secret=secret, group_id=group_id, events=orjson.dumps(events).decode(), created_at=now)
    session.add(webhook)
    await session.flush()
    return webhook


async def update_webhook(session: AsyncSession, *, webhook_id: int, changes: dict[str, Any]) -> Webhook:
    webhook = await get_webhook(session, webhook_id=webhook_id)
    for name, value in changes.items():
        setattr(webhook, name, orjson.dumps(value).decode() if name == "events" else value)
    await session.flush()
    return webhook


async def delete_webhook(session: AsyncSession, *, webhook_id: int) -> None:
    """Delete a webhook and its deliveries (pending ones are dropped)."""
    webhook = await get_webhook(session, webhook_id=webhook_id)
    await session.delete(webhook)


# --- delivery ---------------------------------------------------------------------------------


def _claim_statement(dialect: str) -> Any:
    """Take up to `limit` due deliveries, each the first pending one of its (webhook, order_key)."""
    candidate = aliased(_NOTIFICATIONS, name="candidate")
    earlier = aliased(_NOTIFICATIONS, name="earlier")
    now = bindparam("now", type_=UTCDateTime())
    due = (
        select(candidate.c.id)
        .where(
            candidate.c.status == "pending",
            candidate.c.next_attempt_at <= now,
            (candidate.c.claimed_until.is_(None)) | (candidate.c.claimed_until < now),
            ~select(earlier.c.id)
            .where(
                earlier.c.webhook_id == candidate.c.webhook_id,
                earlier.c.order_key == candidate.c.order_key,
                earlier.c.status == "pending",
                earlier.c.id < candidate.c.id,
            )
            .exists(),
        )
        .order_by(candidate.c.id)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True, of=candidate)
    return (
        update(_NOTIFICATIONS)
        .where(_NOTIFICATIONS.c.id.in_(due.scalar_subquery()))
        .values(
            claimed_until=bindparam("until", type_=UTCDateTime()),
            attempts=_NOTIFICATIONS.c.attempts + 1,
        )
        .returning(
            _NOTIFICATIONS.c.id,
            _NOTIFICATIONS.c.delivery_id,
            _NOTIFICATIONS.c.webhook_id,
            _NOTIFICATIONS.c.kind,
            _NOTIFICATIONS.c.payload,
            _NOTIFICATIONS.c.attempts,
            _NOTIFICATIONS.c.created_at,
        )
    )


_SENT = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id == bindparam("id_"))
    .values(status="sent", sent_at=bindparam("at", type_=UTCDateTime()), claimed_until=None, last_error=None)
)
_RETRY = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id == bindparam("id_"))
    .values(
        status=bindparam("status_"),
        next_attempt_at=bindparam("next_", type_=UTCDateTime()),
        claimed_until=None,
        last_error=bindparam("error_"),
    )
)


@dataclass
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed


async def _send(http: httpx.AsyncClient, url: str, secret: str, claimed: Any) -> str | None:
    """POST one delivery; None when the receiver took it (2xx), else why not."""
    body = claimed.payload.encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, body),
        DELIVERY_HEADER: claimed.delivery_id,
        EVENT_HEADER: claimed.kind,
    }
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:_LAST_ERROR_CHARS] or type(exc).__name__
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def deliver_due(state: AppState, http: httpx.AsyncClient, *, limit: int = CLAIM_BATCH) -> DeliveryResult:
    """Claim the due deliveries, send them (concurrently: at most one per order key), record the outcomes."""
    now = state.now()
    dialect = state.engine.dialect.name
    async with state.session_factory() as session, session.begin():
        connection = await session.connection()
        parameters = {"now": now, "limit": limit, "until": now + timedelta(seconds=CLAIM_SECONDS)}
        claimed = (await connection.execute(_claim_statement(dialect), parameters)).all()
        if not claimed:
            return DeliveryResult()
        hooks = {
            row.id: row
            for row in (
                await connection.execute(
                    select(_WEBHOOKS.c.id, _WEBHOOKS.c.url, _WEBHOOKS.c.secret).where(
                        _WEBHOOKS.c.id.in_({row.webhook_id for row in claimed})
                    )
                )
            ).all()
        }
    outcomes = await asyncio.gather(
        *(_send(http, hooks[row.webhook_id].url, hooks[row.webhook_id].secret, row) for row in claimed)
    )
    done = state.now()
    result = DeliveryResult()
    sent: list[dict[str, Any]] = []
    retried: list[dict[str, Any]] = []
    for row, error in zip(claimed, outcomes, strict=True):
        if error is None:
            sent.append({"id_": row.id, "at": done})
            result.sent += 1
            continue
        next_attempt = done + retry_delay(row.attempts)
        gave_up = next_attempt - row.created_at > RETRY_FOR
        retried.append(
            {"id_": row.id, "status_": "failed" if gave_up else "pending", "next_": next_attempt, "error_": error}
        )
        if gave_up:
            result.failed += 1
            logger.warning("webhook delivery %s given up after %d attempts: %s", row.delivery_id, row.attempts, error)
        else:
            result.retried += 1
    async with state.session_factory() as session, session.begin():
        connection = await session.connection()
        if sent:
            await connection.execute(_SENT, sent)
        if retried:
            await connection.execute(_RETRY, retried)
    NOTIFICATIONS_DELIVERED.labels("sent").inc(result.sent)
    NOTIFICATIONS_DELIVERED.labels("retried").inc(result.retried)
    NOTIFICATIONS_DELIVERED.labels("failed").inc(result.failed)
    return result


async def run_delivery(state: AppState) -> None:
    """Deliver until cancelled: at once after the evaluator wrote notifications, else every second."""
    timeout = httpx.Timeout(state.settings.WEBHOOK_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        while True:
            try:
                result = await deliver_due(state, http)
            except Exception:
                DATABASE_ERRORS.labels("webhooks").inc()
                logger.exception("webhook delivery failed; retrying in %.0f s", POLL_SECONDS)
                result = DeliveryResult()
            if result.attempted:
                continue
            state.outbox_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await state.outbox_wakeup.wait()


def start_webhook_delivery(state: AppState) -> asyncio.Task[None]:
    """Start the delivery task and keep it in `state.tasks` (the lifespan cancels it)."""
    task = asyncio.create_task(run_delivery(state), name="webhook-delivery")
    state.tasks.append(task)
    return task
