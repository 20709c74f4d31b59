"""API tokens: creation, lookup by hash, revocation and the first-start bootstrap (SPEC §4)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from app.errors import BadRequest, Conflict, NotFound
from app.models import ROLES, ApiToken
from app.services.ingest import valid_uuid

logger = logging.getLogger(__name__)

# last_used_at is refreshed at most this often, so reads do not turn into writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)
_BOOTSTRAP_LOCK_ID = 7_140_222
SUPERADMIN = "superadmin"
# Binding a token to a display restricts where it may ingest: it means something for devices only.
BINDABLE_ROLE = "device"
_LIVE_SUPERADMIN = (col(ApiToken.role) == SUPERADMIN) & col(ApiToken.revoked).is_(False)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def role_rank(role: str) -> int:
    return ROLES.index(role)


def new_secret() -> str:
    """48 random bytes, URL-safe: well above the 32 bytes of entropy SPEC §4 asks for."""
    return secrets.token_urlsafe(48)


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    client_uuid: str | None,
    now: datetime,
    secret: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret (the only time the secret exists outside the caller)."""
    if role not in ROLES:
        raise BadRequest(f"Invalid role: {role}. Must be one of {', '.join(ROLES)}")
    if client_uuid is not None and not valid_uuid(client_uuid):
        raise BadRequest("Invalid client uuid")
    if client_uuid is not None and role != BINDABLE_ROLE:
        # A bound token may ingest for its display only; no other role's rights depend on a display.
        raise BadRequest(f"Only {BINDABLE_ROLE} tokens can be bound to a client_uuid")
    secret = secret or new_secret()
    token = ApiToken(name=name, role=role, client_uuid=client_uuid, token_hash=hash_secret(secret), created_at=now)
    session.add(token)
    await session.flush()
    return token, secret


async def list_tokens(session: AsyncSession) -> Sequence[ApiToken]:
    return (await session.execute(select(ApiToken).order_by(col(ApiToken.id)))).scalars().all()


async def revoke_token(session: AsyncSession, *, token_id: int) -> ApiToken:
    """Revoke a token; the last live superadmin token is refused (409): nobody could manage tokens then.

    The check and the revocation are one conditional UPDATE, so two revocations at once cannot each
    leave one superadmin for the other and end with none: on PostgreSQL the live superadmin rows are
    locked first (the second revocation waits, then counts again); SQLite writes one at a time.
    """
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("Token not found")
    if token.role != SUPERADMIN or token.revoked:
        token.revoked = True
        await session.flush()
        return token
    await session.execute(select(col(ApiToken.id)).where(_LIVE_SUPERADMIN).with_for_update())
    others_left = (
        select(func.count()).select_from(ApiToken).where(_LIVE_SUPERADMIN, col(ApiToken.id) != token_id)
    ).scalar_subquery()
    revoked = await session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == token_id, others_left > 0)
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )
    if revoked.rowcount == 0:  # type: ignore[attr-defined]
        raise Conflict("Cannot revoke the last live superadmin token")
    set_committed_value(token, "revoked", True)
    return token


async def find_live_token(session: AsyncSession, *, secret: str) -> ApiToken | None:
    """The live token for this secret, or None (unknown or revoked): one indexed lookup, no write."""
    token = (
        await session.execute(select(ApiToken).where(col(ApiToken.token_hash) == hash_secret(secret)))
    ).scalar_one_or_none()
    if token is None or token.revoked:
        return None
    return token


def record_use(token: ApiToken, *, now: datetime) -> None:
    """Refresh `last_used_at`, at most once per `LAST_USED_RESOLUTION` (written with the request's commit)."""
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now


async def ensure_bootstrap_token(
    session: AsyncSession, *, initial_secret: str | None, token_file: Path, now: datetime
) -> Path | None:
    """Make sure someone can log in on a first start. Returns the token file when one was written."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _BOOTSTRAP_LOCK_ID})
    if initial_secret:
        exists = await session.scalar(
            select(col(ApiToken.id)).where(col(ApiToken.token_hash) == hash_secret(initial_secret))
        )
        if exists is None:
            await create_token(
                session, name="initial-superadmin", role="superadmin", client_uuid=None, now=now, secret=initial_secret
            )
            logger.info("created the superadmin token given by INITIAL_SUPERADMIN_TOKEN")
        return None
    if await session.scalar(select(func.count()).select_from(ApiToken)):
        return None
    _, secret = await create_token(session, name="initial-superadmin", role="superadmin", client_uuid=None, now=now)
    try:
        write_secret_file(token_file, secret, exclusive=True)
    except FileExistsError:
        # Another database's first start (same DATA_DIR) wrote it: never overwrite a secret that works.
        existing, token_file = token_file, token_file.with_name(f"{token_file.name}.{_database_tag(session)}")
        write_secret_file(token_file, secret)
        logger.warning("%s exists already (another database's first start?): not overwritten", existing)
    logger.warning("no API token existed: created a superadmin token, its secret is in %s (mode 0600)", token_file)
    return token_file


def _database_tag(session: AsyncSession) -> str:
    """A file-name part naming the database: its name and a digest of its URL (without the password)."""
    url = session.get_bind().engine.url
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(url.database or "db").stem)[:40]
    digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def write_secret_file(path: Path, secret: str, *, exclusive: bool = False) -> None:
    """Write the secret readable by the owner only, from the first byte on (`exclusive`: never over a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
