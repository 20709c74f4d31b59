"""`/api/webhooks` (superadmin): where notifications go (SPEC §12)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Lt
from fastapi import APIRouter, Path, Response

from app.deps import AuthFirstRoute, NowDep, SessionDep, SuperadminDep
from app.routers.common import AUTH_ERRORS, errors, json_response
from app.schemas.common import STRICT_INT
from app.schemas.incidents import WebhookCreate, WebhookList, WebhookRead, WebhookUpdate
from app.services import webhooks as webhook_service

router = APIRouter(route_class=AuthFirstRoute, tags=["webhooks"])

WebhookId = Annotated[int, Ge(1), Lt(2**31), STRICT_INT, Path()]


@router.get("/api/webhooks", operation_id="webhooks_list", response_model=WebhookList, responses=errors(*AUTH_ERRORS))
async def list_webhooks(_: SuperadminDep, session: SessionDep) -> Response:
    """Every webhook (their secrets are never shown)."""
    hooks = await webhook_service.list_webhooks(session)
    return json_response({"webhooks": [webhook_service.webhook_entry(hook) for hook in hooks]})


@router.post(
    "/api/webhooks",
    operation_id="webhooks_create",
    status_code=201,
    response_model=WebhookRead,
    responses=errors(400, *AUTH_ERRORS),
)
async def create_webhook(body: WebhookCreate, _: SuperadminDep, session: SessionDep, now: NowDep) -> Response:
    """Add a webhook: incidents opened, reminders and recoveries are POSTed to it, signed with its secret."""
    hook = await webhook_service.create_webhook(
        session, url=body.url, secret=body.secret, group_id=body.group_id, events=list(body.events), now=now
    )
    return json_response(webhook_service.webhook_entry(hook), status_code=201)


@router.get(
    "/api/webhooks/{webhook_id}",
    operation_id="webhooks_get",
    response_model=WebhookRead,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def get_webhook(webhook_id: WebhookId, _: SuperadminDep, session: SessionDep) -> Response:
    """One webhook."""
    hook = await webhook_service.get_webhook(session, webhook_id=webhook_id)
    return json_response(webhook_service.webhook_entry(hook))


@router.patch(
    "/api/webhooks/{webhook_id}",
    operation_id="webhooks_update",
    response_model=WebhookRead,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def update_webhook(webhook_id: WebhookId, body: WebhookUpdate, _: SuperadminDep, session: SessionDep) -> Response:
    """Change a webhook's URL, secret, group filter or event kinds."""
    hook = await webhook_service.update_webhook(
        session, webhook_id=webhook_id, changes=body.model_dump(exclude_unset=True)
    )
    return json_response(webhook_service.webhook_entry(hook))


@router.delete(
    "/api/webhooks/{webhook_id}",
    operation_id="webhooks_delete",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def delete_webhook(webhook_id: WebhookId, _: SuperadminDep, session: SessionDep) -> Response:
    """Delete a webhook with its deliveries, sent or not."""
    await webhook_service.delete_webhook(session, webhook_id=webhook_id)
    return Response(status_code=204)
