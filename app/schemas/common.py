"""Shapes and value types shared by every router and the MQTT payloads."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.fields import ComputedFieldInfo, FieldInfo
from pydantic_core import PydanticCustomError

# PostgreSQL text cannot hold NUL characters; stored names and ids refuse them (400) instead of failing (500).
NO_NUL_PATTERN = r"^[^\x00]*$"

INVALID_TIMESTAMP = "Invalid timestamp format. Use ISO 8601"
# The pydantic error type of a timestamp that does not parse or is out of range (SPEC §5): its message
# is the whole HTTP error, and over MQTT it is the reason a message is dropped.
INVALID_TIMESTAMP_ERROR = "invalid_timestamp"
# Timestamps the service accepts: what the databases and Python hold, less a day at each end so that
# the hour and 6-hour bucket arithmetic near the edges cannot overflow.
EARLIEST_TIMESTAMP = datetime(1, 1, 2, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(9999, 12, 30, tzinfo=UTC)
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 (`Z` allowed, naive means UTC) as aware UTC within the accepted range; else ValueError."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: `0001-01-01T00:00:00+01:00` is before year 1 in UTC
        raise ValueError(INVALID_TIMESTAMP) from None
    if not EARLIEST_TIMESTAMP <= moment <= LATEST_TIMESTAMP:
        raise ValueError(INVALID_TIMESTAMP)
    return moment


def _timestamp(value: object) -> datetime:
    """Only an ISO 8601 string is a timestamp (not a number of seconds, not `true`)."""
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ValueError:
            pass
    raise PydanticCustomError(INVALID_TIMESTAMP_ERROR, INVALID_TIMESTAMP)


def _integer(value: object) -> object:
    """Integers only: `1.0`, `1_0`, `" 1"` or `true` are not (a query value arrives as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= 1000 and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    raise PydanticCustomError("int_parsing", "Input should be a valid integer")


# An ISO 8601 timestamp in a body or an MQTT payload, as aware UTC.
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
# Metadata for an integer in a query or path: digits only, never `1.0` (which pydantic's lax mode takes).
# Bounds go before it in the `Annotated` (`Ge(1), STRICT_INT`), so the OpenAPI schema shows them.
STRICT_INT = BeforeValidator(_integer)


def _words_title(name: str, _info: FieldInfo | ComputedFieldInfo) -> str:
    """`groupId` and `group_id` both read "Group Id" (pydantic's default makes "Groupid" of camelCase)."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(word[:1].upper() + word[1:] for word in words)


# For the camelCase shapes of the original (the monitoring overview).
CAMEL_CASE = ConfigDict(field_title_generator=_words_title)


class ErrorBody(BaseModel):
    """Every error: a human message, and for validation errors the failing fields."""

    error: str = Field(examples=["Client not found"])
    details: list[dict[str, Any]] | None = None


class Accepted(BaseModel):
    accepted: int = Field(examples=[3], description="Log entries accepted (a repeated message_id counts too).")
