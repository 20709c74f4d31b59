"""`/api/tokens`: token management for superadmins (SPEC §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.deps import AuthFirstRoute, NowDep, SessionDep, SuperadminDep
from app.routers.common import AUTH_ERRORS, errors, json_response
from app.schemas.tokens import TokenCreate, TokenCreated, TokenList
from app.services import tokens as token_service

router = APIRouter(prefix="/api/tokens", tags=["tokens"], route_class=AuthFirstRoute)

TokenId = Annotated[int, Path(ge=1, lt=2**31)]


@router.post(
    "",
    operation_id="tokens_create",
    status_code=201,
    response_model=TokenCreated,
    responses=errors(
        400, *AUTH_ERRORS, described={400: "Bad request: a bad name or role, or a `client_uuid` on a non-device token"}
    ),
)
async def create_token(body: TokenCreate, _: SuperadminDep, session: SessionDep, now: NowDep) -> Response:
    """Create a token; the secret is in this response only."""
    token, secret = await token_service.create_token(
        session, name=body.name, role=body.role, client_uuid=body.client_uuid, now=now
    )
    return json_response(
        {
            "id": token.id,
            "name": token.name,
            "role": token.role,
            "client_uuid": token.client_uuid,
            "created_at": token.created_at,
            "token": secret,
        },
        status_code=201,
    )


@router.get("", operation_id="tokens_list", response_model=TokenList, responses=errors(*AUTH_ERRORS))
async def list_tokens(_: SuperadminDep, session: SessionDep) -> Response:
    """Every token, without secrets or hashes."""
    tokens = await token_service.list_tokens(session)
    return json_response(
        {
            "tokens": [
                {
                    "id": token.id,
                    "name": token.name,
                    "role": token.role,
                    "client_uuid": token.client_uuid,
                    "created_at": token.created_at,
                    "last_used_at": token.last_used_at,
                    "revoked": token.revoked,
                }
                for token in tokens
            ]
        }
    )


@router.delete(
    "/{token_id}",
    operation_id="tokens_revoke",
    status_code=204,
    response_class=Response,
    responses=errors(400, *AUTH_ERRORS, 404, 409, described={409: "The last live superadmin token cannot be revoked"}),
)
async def revoke_token(token_id: TokenId, _: SuperadminDep, session: SessionDep) -> Response:
    """Revoke a token; it stops working at once (the last live superadmin token cannot be revoked: 409)."""
    await token_service.revoke_token(session, token_id=token_id)
    return Response(status_code=204)
