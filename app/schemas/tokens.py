"""API token shapes (SPEC §4). A secret appears in one response only: the creation."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import Role
from app.schemas.common import NO_NUL_PATTERN


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "lobby-display", "role": "device", "client_uuid": "lobby-1"}]},
    )

    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL_PATTERN)
    role: Role
    client_uuid: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="Device tokens only: the one display this token may ingest for (400 on other roles).",
    )


class TokenRead(BaseModel):
    id: int
    name: str
    role: Role
    client_uuid: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class TokenCreated(BaseModel):
    id: int
    name: str
    role: Role
    client_uuid: str | None
    created_at: datetime
    token: str = Field(description="The secret: shown this once, stored only as its SHA-256.")


class TokenList(BaseModel):
    tokens: list[TokenRead]
