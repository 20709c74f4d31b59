"""Dashboard sessions (SPEC §11): a login turns a token into a cookie, stored only as a hash."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import ApiToken, DashboardSession
from app.services.tokens import hash_secret

SESSION_COOKIE = "infoscreen_session"
CSRF_HEADER = "X-CSRF-Token"
# Methods that change nothing: a cookie may authenticate them without a CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class OpenedSession:
    """A new session: `session_id` goes into the cookie (the database keeps only its hash)."""

    session_id: str
    row: DashboardSession


async def open_session(session: AsyncSession, *, token: ApiToken, now: datetime, lifetime: timedelta) -> OpenedSession:
    """A session for this token; expired sessions of any token are removed on the way (indexed)."""
    await session.execute(delete(DashboardSession).where(col(DashboardSession.expires_at) < now))
    session_id = secrets.token_urlsafe(32)
    assert token.id is not None
    row = DashboardSession(
        session_hash=hash_secret(session_id),
        token_id=token.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    await session.flush()
    return OpenedSession(session_id=session_id, row=row)


async def find_session(
    session: AsyncSession, *, session_id: str, now: datetime
) -> tuple[DashboardSession, ApiToken] | None:
    """The live session for this cookie and its token, or None (unknown, expired, or its token revoked)."""
    found = (
        await session.execute(
            select(DashboardSession, ApiToken)
            .join(ApiToken, col(ApiToken.id) == col(DashboardSession.token_id))
            .where(col(DashboardSession.session_hash) == hash_secret(session_id))
        )
    ).one_or_none()
    if found is None:
        return None
    dashboard_session, token = found
    if token.revoked or dashboard_session.expires_at <= now:
        return None
    return dashboard_session, token


async def end_session(session: AsyncSession, *, session_id: str) -> None:
    """Delete the session of this cookie (nothing happens for an unknown one)."""
    await session.execute(delete(DashboardSession).where(col(DashboardSession.session_hash) == hash_secret(session_id)))


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the session's CSRF token with the one a request carries."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
