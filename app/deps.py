"""Typed dependency aliases: state, settings, the unit-of-work session, the clock and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Forbidden, NotAuthenticated
from app.models import ApiToken
from app.services.tokens import authenticate, role_rank
from app.services.unit_of_work import unit_of_work
from app.state import AppState

bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`.")


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.monitor
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_now(state: StateDep) -> datetime:
    """The request's clock reading (injectable in tests)."""
    return state.now()


NowDep = Annotated[datetime, Depends(get_now)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: commit on success, roll back on any error, files included."""
    async with unit_of_work(state.session_factory, screenshots_dir=state.settings.screenshots_dir) as session:
        yield session


# `scope="function"`: the dependency's exit (the commit) runs when the endpoint returns, before the
# response starts. With the default request scope FastAPI (>= 0.118) runs it after the response was
# sent, so a client could hold a 2xx for a write that was not committed yet, or that failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def optional_token(session: SessionDep, credentials: CredentialsDep, now: NowDep) -> ApiToken | None:
    """The caller's live token, or None for anonymous callers."""
    if credentials is None or not credentials.credentials:
        return None
    return await authenticate(session, secret=credentials.credentials, now=now)


OptionalTokenDep = Annotated[ApiToken | None, Depends(optional_token)]


def require_role(minimum: str) -> Callable[..., Awaitable[ApiToken]]:
    """A dependency that lets through tokens of `minimum` role or higher (401 / 403 otherwise)."""

    async def dependency(token: OptionalTokenDep) -> ApiToken:
        if token is None:
            raise NotAuthenticated()
        if role_rank(token.role) < role_rank(minimum):
            raise Forbidden(f"Forbidden: requires role '{minimum}' or higher")
        return token

    dependency.__name__ = f"require_{minimum}"
    return dependency


DeviceDep = Annotated[ApiToken, Depends(require_role("device"))]
UserDep = Annotated[ApiToken, Depends(require_role("user"))]
AdminDep = Annotated[ApiToken, Depends(require_role("admin"))]
SuperadminDep = Annotated[ApiToken, Depends(require_role("superadmin"))]
