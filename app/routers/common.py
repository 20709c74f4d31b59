"""What every router shares: JSON rendering, documented error responses, query parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Response

from app.errors import BadRequest
from app.models import DisplayStatus
from app.schemas.common import NO_NUL_PATTERN, ErrorBody
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


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all with the `{"error": ...}` body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


AUTH_ERRORS = (401, 403)


def json_response(payload: Any, status_code: int = 200) -> Response:
    """Serialize with orjson (datetimes as ISO 8601 with their `+00:00`), skipping model validation."""
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


def parse_since(value: str | None) -> datetime | None:
    """ISO 8601, `Z` allowed, naive means UTC."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest("Invalid timestamp format. Use ISO 8601") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
