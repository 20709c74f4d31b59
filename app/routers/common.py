"""What every router shares: JSON rendering, documented error responses, query parsing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Response

from app import json_values
from app.errors import BadRequest
from app.models import DisplayStatus
from app.schemas.common import INVALID_TIMESTAMP, NO_NUL_PATTERN, ErrorBody, parse_timestamp
from app.services.overview import ClientFilter

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


async def client_filter(
    group_id: Annotated[int | None, Query(ge=1, lt=2**31, description="Only the clients of this group.")] = None,
    status: Annotated[DisplayStatus | None, Query(description="Only the clients with this status.")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=NO_NUL_PATTERN,
            description="Free text: only the clients whose hostname, description or uuid contains it (any case).",
        ),
    ] = None,
) -> ClientFilter:
    """The optional filters of the client list and the overview (none given: every client)."""
    return ClientFilter(group_id=group_id, status=status, search=q or None)


ClientFilterDep = Annotated[ClientFilter, Depends(client_filter)]
