"""Shapes shared by every router."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import ComputedFieldInfo, FieldInfo

# PostgreSQL text cannot hold NUL characters; stored names and ids refuse them (400) instead of failing (500).
NO_NUL_PATTERN = r"^[^\x00]*$"


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
