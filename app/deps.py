"""Typed dependency aliases: state, settings, the unit-of-work session, the clock and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Forbidden, NotAuthenticated
from app.models import ApiToken, DashboardSession
from app.services.sessions import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, csrf_matches, find_session
from app.services.tokens import find_live_token, record_use, role_rank
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
    settings = state.settings
    async with unit_of_work(
        state.session_factory, screenshots_dir=settings.screenshots_dir, grace_seconds=settings.heartbeat_grace_seconds
    ) as session:
        yield session


# `scope="function"`: the dependency's exit (the commit) runs when the endpoint returns, before the
# response starts. With the default request scope FastAPI (>= 0.118) runs it after the response was
# sent, so a client could hold a 2xx for a write that was not committed yet, or that failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]

# Where `AuthFirstRoute` leaves the token it authenticated before the body, for `optional_token`.
_AUTHENTICATED_TOKEN = "infoscreen_monitor.token"
# Where a request authenticated by the dashboard's cookie keeps its session (the page reads its CSRF token).
_DASHBOARD_SESSION = "infoscreen_monitor.dashboard_session"
CSRF_FAILED = "CSRF check failed"


def own_origin(request: Request) -> str:
    """The origin the request was sent to (scheme and host as the browser saw them)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def dashboard_session(request: Request) -> DashboardSession | None:
    """The dashboard session that authenticated this request, if the cookie did."""
    found: DashboardSession | None = request.scope.get(_DASHBOARD_SESSION)
    return found


def check_csrf(request: Request, dashboard: DashboardSession, *, form_token: str | None = None) -> None:
    """A state-changing call made with the cookie carries the session's CSRF token or comes from our origin.

    A cross-site page can make the browser send the cookie (SameSite=Strict already stops most of that)
    but can neither read the CSRF token nor forge the `Origin` header.
    """
    if request.method in SAFE_METHODS:
        return
    if csrf_matches(dashboard.csrf_token, request.headers.get(CSRF_HEADER) or form_token):
        return
    if request.headers.get("origin") == own_origin(request):
        return
    raise Forbidden(CSRF_FAILED)


async def _cookie_token(request: Request, session: AsyncSession, now: datetime) -> ApiToken | None:
    """The token behind the request's dashboard cookie, CSRF-checked; None without a live session."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    found = await find_session(session, session_id=session_id, now=now)
    if found is None:
        return None
    dashboard, token = found
    check_csrf(request, dashboard)
    request.scope[_DASHBOARD_SESSION] = dashboard
    return token


async def optional_token(
    request: Request, session: SessionDep, credentials: CredentialsDep, now: NowDep
) -> ApiToken | None:
    """The caller's live token, or None for anonymous callers."""
    early: ApiToken | None = request.scope.get(_AUTHENTICATED_TOKEN)
    if early is not None:
        # Looked up before the body was read, in a session of its own: no second query.
        token: ApiToken | None = await session.merge(early, load=False)
    elif "authorization" not in request.headers:
        # No Authorization header: the dashboard's session cookie, if there is one.
        token = await _cookie_token(request, session, now)
    elif credentials is None or not credentials.credentials:
        return None
    else:
        token = await find_live_token(session, secret=credentials.credentials)
    if token is not None:
        record_use(token, now=now)
    return token


OptionalTokenDep = Annotated[ApiToken | None, Depends(optional_token)]


def check_role(token: ApiToken | None, minimum: str) -> ApiToken:
    """The token if it has `minimum` role or higher; 401 without a live token, 403 for a lower role."""
    if token is None:
        raise NotAuthenticated()
    if role_rank(token.role) < role_rank(minimum):
        raise Forbidden(f"Forbidden: requires role '{minimum}' or higher")
    return token


class RequireRole:
    """A dependency that lets through tokens of `minimum` role or higher (401 / 403 otherwise)."""

    def __init__(self, minimum: str) -> None:
        self.minimum = minimum

    async def __call__(self, token: OptionalTokenDep) -> ApiToken:
        return check_role(token, self.minimum)


DeviceDep = Annotated[ApiToken, Depends(RequireRole("device"))]
UserDep = Annotated[ApiToken, Depends(RequireRole("user"))]
AdminDep = Annotated[ApiToken, Depends(RequireRole("admin"))]
SuperadminDep = Annotated[ApiToken, Depends(RequireRole("superadmin"))]


def required_role(dependant: Dependant) -> str | None:
    """The minimum role a route's dependencies ask for, or None for a public route."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RequireRole):
            return dependency.call.minimum
        found = required_role(dependency)
        if found is not None:
            return found
    return None


def _announces_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length.strip() != "0") or "transfer-encoding" in request.headers


class AuthFirstRoute(APIRoute):
    """A route that refuses a caller without a valid token (401) or role (403) before reading its body.

    FastAPI reads and parses a request's body before it runs any dependency, so an anonymous client
    could make the service take in (and hold) a body of the largest allowed size just to get its
    401. For a request that announces a body, this route looks the token up first, in a session of
    its own, and leaves it in the request scope, where `optional_token` takes it without a second
    query. A request without a body goes the usual way.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        minimum = required_role(self.dependant)
        if minimum is None:
            return handler

        async def authenticate_first(request: Request) -> Response:
            if _announces_body(request):
                request.scope[_AUTHENTICATED_TOKEN] = check_role(await _token_before_body(request), minimum)
            return await handler(request)

        return authenticate_first


async def _token_before_body(request: Request) -> ApiToken | None:
    header = request.headers.get("authorization")
    scheme, secret = get_authorization_scheme_param(header)
    state: AppState = request.app.state.monitor
    if header is None:
        if not request.cookies.get(SESSION_COOKIE):
            return None
        async with state.session_factory() as session:
            return await _cookie_token(request, session, state.now())
    if scheme.lower() != "bearer" or not secret:
        return None
    async with state.session_factory() as session:
        return await find_live_token(session, secret=secret)
