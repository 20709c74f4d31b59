"""Application errors and the one handler that renders them as `{"error": ...}` (SPEC §5)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.metrics import DATABASE_ERRORS
from app.schemas.common import INVALID_TIMESTAMP, INVALID_TIMESTAMP_ERROR

logger = logging.getLogger(__name__)


class AppError(Exception):
    """An expected failure with the HTTP status it maps to."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None, *, details: list[Any] | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.details = details


class BadRequest(AppError):
    status_code = 400


class NotAuthenticated(AppError):
    status_code = 401

    def __init__(self, message: str = "Not authenticated") -> None:
        super().__init__(message)


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class ClientNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Client not found")


class IncidentNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Incident not found")


def error_body(message: str, details: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return body


def _headers_for(status_code: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if status_code == 401 else None


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        error_body(exc.message, exc.details), status_code=exc.status_code, headers=_headers_for(exc.status_code)
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        # The loc of a JSON decode error is a character position, not a field: name no field.
        return JSONResponse(error_body("Malformed JSON body"), status_code=400)
    if any(error.get("type") == INVALID_TIMESTAMP_ERROR for error in exc.errors()):
        return JSONResponse(error_body(INVALID_TIMESTAMP), status_code=400)  # SPEC §9's message, wherever it is
    details = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(part for part in first["loc"] if part not in ("body", "query", "path")) or "request"
    return JSONResponse(error_body(f"Invalid {where}: {first['msg']}", details), status_code=400)


# The methods a 405 may list in its `Allow` header.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method the app serves on this request's path, asked of its router method by method.

    Starlette's own 405 names the methods of the first route of the path only.
    """
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})
    headers.update(_headers_for(exc.status_code) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return JSONResponse(error_body(message), status_code=exc.status_code, headers=headers or None)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the database cannot be reached or dropped the connection (it restarts, it is down):
    SQLAlchemy has invalidated the pooled connections by then, so a retry reconnects. Any other
    database error is a bug (500)."""
    assert isinstance(exc, DBAPIError)
    if not (exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))):
        return await _unexpected_error(request, exc)
    DATABASE_ERRORS.labels("http").inc()
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
    return JSONResponse(error_body("Database unavailable"), status_code=503, headers={"Retry-After": "1"})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("Internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
