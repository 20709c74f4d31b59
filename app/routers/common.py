"""What every router shares: JSON rendering, documented error responses, query parsing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Response

from app import json_values
from app.errors import BadRequest
from app.schemas.common import INVALID_TIMESTAMP, ErrorBody, parse_timestamp

_DESCRIPTIONS = {
    400: "Bad request: a value that does not parse or is out of range",
    401: "Missing, unknown or revoked token",
    403: "The token's role is too low, or it is bound to another client",
    404: "Not found",
    409: "Conflict with an existing resource",
    413: "Body too large",
    415: "Not a JPEG or PNG image",
}


def errors(*codes: int, described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all with the `{"error": ...}` body.

    `described` replaces the generic description of a code where an operation has answers of its own.
    """
    descriptions = {**_DESCRIPTIONS, **(described or {})}
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in codes}


AUTH_ERRORS = (401, 403)


def json_response(payload: Any, status_code: int = 200) -> Response:
    """Serialize with orjson (datetimes as ISO 8601 with their `+00:00`), skipping model validation;
    a value orjson refuses is replaced by one it takes (see `app.json_values`), never a 500."""
    return Response(json_values.dumps(payload), status_code=status_code, media_type="application/json")


def parse_since(value: str | None) -> datetime | None:
    """ISO 8601, `Z` allowed, naive means UTC; absent is None, but an empty or out-of-range value is 400."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise BadRequest(INVALID_TIMESTAMP) from None
