"""The operator's pages (SPEC §11): login, logout, the dashboard, and Swagger UI / ReDoc from local assets.

None of these is part of the API, so none is in the OpenAPI schema. The dashboard itself is static
HTML and plain ES modules (app/static/dashboard) that call the read API with the session cookie.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from html import escape
from importlib import resources
from string import Template
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.dependencies.utils import get_dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import (
    NowDep,
    OptionalTokenDep,
    SessionDep,
    SettingsDep,
    check_csrf,
    dashboard_session,
    own_origin,
    required_role,
)
from app.errors import Forbidden
from app.routers import client_logs
from app.services.sessions import SESSION_COOKIE, end_session, find_session, open_session
from app.services.tokens import find_live_token, role_rank

router = APIRouter(include_in_schema=False)

# The page loads only what the service serves itself (SPEC §11: nothing from another host).
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}
# Swagger UI starts from an inline script and both style with inline styles; everything else is ours.
# ReDoc's sidebar shows a logo from its vendor's CDN: the policy keeps the browser from fetching it.
DOCS_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'",
}
VENDOR = "/static/vendor"
OVERVIEW_PATH = "/api/client-logs/monitoring-overview"
BAD_TOKEN = "That token is not valid: unknown or revoked."


@cache
def _template(name: str) -> Template:
    return Template(resources.files("app").joinpath("templates", name).read_text(encoding="utf-8"))


def _page(name: str, status_code: int = 200, *, markup: str = "", **values: str) -> HTMLResponse:
    """A page from its template: `values` are text (escaped), `markup` is HTML made here from constants."""
    html = _template(name).substitute({key: escape(value) for key, value in values.items()}, markup=markup)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_SECURITY_HEADERS)


def _login_form(error: str | None = None, status_code: int = 200) -> HTMLResponse:
    markup = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _page("login.html", status_code=status_code, markup=markup)


@cache
def dashboard_role() -> str:
    """The role the dashboard needs: the one the monitoring overview asks for (one definition)."""
    minimum = required_role(get_dependant(path=OVERVIEW_PATH, call=client_logs.monitoring_overview))
    assert minimum is not None, "the monitoring overview is public?"
    return minimum


@router.get("/login")
async def login_form() -> HTMLResponse:
    """The sign-in form: one field, the API token."""
    return _login_form()


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    token: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """A valid token opens a session (cookie) and goes to the dashboard; a bad one gets the form again (401)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        # Another site may not log a browser into this service (login CSRF).
        raise Forbidden("CSRF check failed")
    live = await find_live_token(session, secret=token.strip()) if token.strip() else None
    if live is None:
        return _login_form(BAD_TOKEN, status_code=401)
    lifetime = timedelta(hours=settings.SESSION_LIFETIME_HOURS)
    opened = await open_session(session, token=live, now=now, lifetime=lifetime)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.session_id,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(
    request: Request,
    session: SessionDep,
    now: NowDep,
    csrf_token: Annotated[str | None, Form(max_length=128)] = None,
) -> Response:
    """End the session (its row is deleted, the cookie cleared) and go back to the sign-in form."""
    session_id = request.cookies.get(SESSION_COOKIE)
    found = await find_session(session, session_id=session_id, now=now) if session_id else None
    if session_id and found is not None:
        # The form carries the session's CSRF token: another site cannot sign an operator out.
        check_csrf(request, found[0], form_token=csrf_token)
        await end_session(session, session_id=session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.get("/dashboard")
async def dashboard(request: Request, token: OptionalTokenDep, settings: SettingsDep) -> Response:
    """The fleet dashboard; without a session the sign-in form, with too low a role a page saying so (403)."""
    if token is None:
        return RedirectResponse("/login", status_code=303)
    dashboard = dashboard_session(request)
    csrf_token = dashboard.csrf_token if dashboard is not None else ""
    required = dashboard_role()
    if role_rank(token.role) < role_rank(required):
        return _page(
            "forbidden.html",
            status_code=403,
            token_name=token.name,
            role=token.role,
            required=required,
            csrf_token=csrf_token,
        )
    return _page(
        "dashboard.html",
        csrf_token=csrf_token,
        priority_ttl=str(settings.PRIORITY_SCREENSHOT_TTL_SECONDS),
        token_name=token.name,
    )


@router.get("/")
async def root() -> RedirectResponse:
    """The service's front page is the dashboard."""
    return RedirectResponse("/dashboard", status_code=303)


@router.api_route("/docs", methods=["GET", "HEAD"])
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the vendored swagger-ui-dist (no CDN)."""
    page = get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url),
        title=f"{request.app.title} · Swagger UI",
        swagger_js_url=f"{VENDOR}/swagger-ui-dist/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui-dist/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/swagger-ui-dist/favicon-32x32.png",
    )
    page.headers.update(DOCS_SECURITY_HEADERS)
    return page


@router.api_route("/redoc", methods=["GET", "HEAD"])
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc from the vendored standalone bundle, without Google Fonts."""
    page = get_redoc_html(
        openapi_url=str(request.app.openapi_url),
        title=f"{request.app.title} · ReDoc",
        redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/swagger-ui-dist/favicon-32x32.png",
        with_google_fonts=False,
    )
    page.headers.update(DOCS_SECURITY_HEADERS)
    return page
