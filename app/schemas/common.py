"""Shapes shared by every router."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error: a human message, and for validation errors the failing fields."""

    error: str = Field(examples=["Client not found"])
    details: list[dict[str, Any]] | None = None


class Accepted(BaseModel):
    accepted: int = Field(examples=[3], description="Log entries accepted (a repeated message_id counts too).")
