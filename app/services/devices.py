"""Displays on the broker (SPEC §13): one MQTT account per display, and Mosquitto's files written from them.

The database is the source of truth: each display allowed on the broker has a row in
`mqtt_credentials` (its password hashed in Mosquitto's own format) and a device token bound to its
uuid. Mosquitto's password and ACL files are rewritten whole from those rows, each to a temporary
file renamed over the old one, so the broker never reads half a file, and the broker is told to
reload with SIGHUP.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import BadRequest, Conflict, NotFound
from app.models import ApiToken, MqttCredential
from app.services.ingest import valid_uuid
from app.services.tokens import create_token, new_secret

# What `mosquitto_passwd` writes (mosquitto 2.x, `$7$` = PBKDF2-HMAC-SHA512): 101 rounds, a 12-byte
# salt and a 64-byte hash, both base64. The broker accepts any round count; this is its default.
PBKDF2_SHA512 = "7"
MOSQUITTO_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64


class BrokerFileError(Exception):
    """A broker file could not be written, or the broker could not be told to reload."""


def mosquitto_password_hash(password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """`$7$<iterations>$<base64 salt>$<base64 hash>`, as `mosquitto_passwd` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"${PBKDF2_SHA512}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_mosquitto_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a `$7$` hash (what Mosquitto checks at CONNECT)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != PBKDF2_SHA512 or not parts[2].isdigit():
        return False
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True)
class NewDevice:
    """What `devices add` shows once: the display's HTTP token and its broker account."""

    uuid: str
    token: str
    mqtt_username: str
    mqtt_password: str


@dataclass(frozen=True)
class ServiceAccount:
    """The service's own broker account (MQTT_USERNAME / MQTT_PASSWORD): may read the whole prefix."""

    username: str
    password: str


async def add_device(
    session: AsyncSession, *, client_uuid: str, now: datetime, service_username: str | None = None
) -> NewDevice:
    """A bound device token and a broker password for a display (a revoked display may be added again)."""
    if not valid_uuid(client_uuid):
        raise BadRequest("Invalid client uuid")
    if client_uuid == service_username:
        raise BadRequest("A display cannot use the service's own MQTT username")
    credential = await session.get(MqttCredential, client_uuid)
    if credential is not None and credential.revoked_at is None:
        raise Conflict(f"Display {client_uuid} is already on the broker (revoke it first for new credentials)")
    token, token_secret = await create_token(
        session, name=f"display {client_uuid}", role="device", client_uuid=client_uuid, now=now
    )
    password = new_secret()
    if credential is None:
        credential = MqttCredential(client_uuid=client_uuid, password_hash="", created_at=now)
        session.add(credential)
    credential.password_hash = mosquitto_password_hash(password)
    credential.token_id = token.id
    credential.created_at = now
    credential.revoked_at = None
    await session.flush()
    return NewDevice(uuid=client_uuid, token=token_secret, mqtt_username=client_uuid, mqtt_password=password)


async def list_devices(session: AsyncSession) -> Sequence[MqttCredential]:
    """Every display that has (or had) a broker account, by uuid."""
    return (await session.execute(select(MqttCredential).order_by(col(MqttCredential.client_uuid)))).scalars().all()


async def revoke_device(session: AsyncSession, *, client_uuid: str, now: datetime) -> int:
    """Take a display off the broker and revoke every token bound to it; returns how many tokens."""
    credential = await session.get(MqttCredential, client_uuid)
    if credential is None or credential.revoked_at is not None:
        raise NotFound(f"Display {client_uuid} is not on the broker")
    credential.revoked_at = now
    tokens = (
        (
            await session.execute(
                select(ApiToken).where(col(ApiToken.client_uuid) == client_uuid, col(ApiToken.revoked).is_(False))
            )
        )
        .scalars()
        .all()
    )
    for token in tokens:
        token.revoked = True
    await session.flush()
    return len(tokens)


async def active_credentials(session: AsyncSession) -> list[tuple[str, str]]:
    """(username, password hash) of every display allowed on the broker."""
    rows = await session.execute(
        select(col(MqttCredential.client_uuid), col(MqttCredential.password_hash))
        .where(col(MqttCredential.revoked_at).is_(None))
        .order_by(col(MqttCredential.client_uuid))
    )
    return [(str(uuid), str(password_hash)) for uuid, password_hash in rows]


def render_password_file(devices: Sequence[tuple[str, str]], service: ServiceAccount | None) -> str:
    """Mosquitto's `password_file`: `username:hash` lines, the service's account first."""
    lines = ["# Written by `python -m app devices`; edits are overwritten. One line per account."]
    if service is not None:
        lines.append(f"{service.username}:{mosquitto_password_hash(service.password)}")
    lines += [f"{username}:{password_hash}" for username, password_hash in devices]
    return "\n".join(lines) + "\n"


def render_acl_file(prefix: str, service_username: str | None) -> str:
    """Mosquitto's `acl_file`: a display publishes under its own uuid only and reads nothing."""
    lines = ["# Written by `python -m app devices`; edits are overwritten."]
    if service_username is not None:
        lines += [
            "# The service reads every display's topics (and shared subscriptions of them), publishes nothing.",
            f"user {service_username}",
            f"topic read {prefix}/#",
            f"topic read $share/+/{prefix}/#",
            "",
        ]
    lines += [
        "# Every other account is a display whose username is its uuid (%u): it may publish under its",
        "# own topics (its last will included) and subscribe to nothing.",
        f"pattern write {prefix}/%u/#",
    ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` whole: a temporary file beside it, renamed over it (keeping its mode and owner)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        previous = path.stat()
    except FileNotFoundError:
        previous = None
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as output:
            if previous is not None:
                os.fchmod(output.fileno(), previous.st_mode & 0o7777)
                if os.geteuid() == 0:
                    os.fchown(output.fileno(), previous.st_uid, previous.st_gid)
            output.write(text)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class BrokerFiles:
    """Where the broker reads its accounts (MOSQUITTO_* settings), and the service account to put in them."""

    password_file: Path
    acl_file: Path | None
    pid_file: Path | None
    service: ServiceAccount | None
    prefix: str

    def write(self, devices: Sequence[tuple[str, str]]) -> None:
        """Write the password file (and the ACL file when configured) from the accounts given."""
        try:
            write_atomically(self.password_file, render_password_file(devices, self.service))
            if self.acl_file is not None:
                service_username = self.service.username if self.service else None
                write_atomically(self.acl_file, render_acl_file(self.prefix, service_username))
        except OSError as exc:
            raise BrokerFileError(f"could not write the broker's files: {exc}") from None

    def reload(self) -> int | None:
        """Tell the broker to reread the files; the pid signalled, or None (no pid file, or no broker runs)."""
        return None if self.pid_file is None else reload_broker(self.pid_file)


def reload_broker(pid_file: Path) -> int | None:
    """SIGHUP to the broker whose pid is in `pid_file`: Mosquitto rereads its password and ACL files.

    Returns the pid, or None when no broker runs (no pid file, or no such process): it reads the
    files when it starts. A pid that belongs to another program is never signalled.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BrokerFileError(f"could not read the broker's pid file {pid_file}: {exc}") from None
    with contextlib.suppress(OSError):  # /proc is Linux's; elsewhere the pid file is trusted
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        if "mosquitto" not in name:
            raise BrokerFileError(f"pid {pid} in {pid_file} is {name!r}, not mosquitto: not reloaded")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None
    except OSError as exc:
        raise BrokerFileError(f"could not reload the broker (pid {pid} from {pid_file}): {exc}") from None
    return pid
