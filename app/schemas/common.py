"""Shapes shared by every router."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# PostgreSQL text cannot hold NUL characters; stored names and ids refuse them (400) instead of failing (500).
NO_NUL_PATTERN = r"^[^\x00]*$"


class ErrorBody(BaseModel):
    """Every error: a human message, and for validation errors the failing fields."""

    error: str = Field(examples=["Client not found"])
    details: list[dict[str, Any]] | None = None


class Accepted(BaseModel):
    accepted: int = Field(examples=[3], description="Log entries accepted (a repeated message_id counts too).")
