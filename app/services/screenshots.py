"""Screenshot files and metadata (SPEC §7).

`store_screenshot` is the one place that applies a screenshot, whether it came over MQTT or HTTP.
It never commits: it records the file it wrote and the history files it pruned in the session's
unit of work (`app/services/unit_of_work.py`), which removes the new file if the transaction rolls
back and the pruned ones once it committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiofiles
import aiofiles.os
from PIL import Image
from sqlalchemy import and_, bindparam, delete, insert, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.config import Settings
from app.errors import BadRequest, ClientNotFound, NotFound, PayloadTooLarge, UnsupportedMediaType
from app.metrics import SCREENSHOT_BYTES_STORED, count_after_commit
from app.models import PRIORITY_SCREENSHOT_TYPES, SCREENSHOT_TYPES, Client, Incident, Screenshot, StatusChange
from app.services import events
from app.services.ingest import check_uuid, record_heartbeat
from app.services.unit_of_work import file_effects

logger = logging.getLogger(__name__)

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG"}
# EOI, and the IEND chunk with its CRC: the last bytes of a whole JPEG or PNG.
_END_MARKERS = {"jpeg": b"\xff\xd9", "png": b"IEND\xaeB`\x82"}
# Checking an image costs time in proportion to its size for a PNG (every chunk's CRC); above this
# many bytes the check runs in a worker thread instead of on the event loop.
INLINE_CHECK_BYTES = 512 * 1024
_EXTENSIONS = {"jpeg": "jpg", "png": "png"}
_TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoredScreenshot:
    id: int
    client_uuid: str
    hash: str
    screenshot_type: str
    received_at: datetime
    # The new file's name: removed by the unit of work if its transaction rolls back.
    written_file: str
    # History files pruned in this session: removed by the unit of work after its commit.
    files_to_delete: list[str]


def detect_image_format(data: bytes) -> str | None:
    """`jpeg` or `png` by the file's magic bytes, else None (the Content-Type is not trusted)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


def is_whole_image(data: bytes, image_format: str) -> bool:
    """Whether `data` is one whole image of `image_format`, from its signature to its last byte.

    Pillow parses the headers (for a JPEG every marker segment up to the image data, for a PNG
    every chunk with its CRC up to IEND) without decoding the pixels, which would cost a hundred
    times more; the end marker must be the last bytes, so a truncated image or one with something
    appended is refused. Anything Pillow raises means "not an image" here.
    """
    try:
        with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[image_format]]) as image:
            image.verify()
    except Exception:
        return False
    return data.endswith(_END_MARKERS[image_format])


def check_screenshot(*, settings: Settings, image: bytes, screenshot_type: str) -> str:
    """The image's format, or the 400 / 413 / 415 that refuses it (the Content-Type is not trusted)."""
    if screenshot_type not in SCREENSHOT_TYPES:
        raise BadRequest(f"Invalid screenshot_type: must be one of {', '.join(SCREENSHOT_TYPES)}")
    if len(image) > settings.MAX_SCREENSHOT_BYTES:
        raise PayloadTooLarge(f"Screenshot too large: at most {settings.MAX_SCREENSHOT_BYTES} bytes")
    image_format = detect_image_format(image)
    if image_format is None or not is_whole_image(image, image_format):
        raise UnsupportedMediaType("Unsupported media type: the screenshot must be a whole JPEG or PNG image")
    return image_format


async def check_screenshot_off_loop(*, settings: Settings, image: bytes, screenshot_type: str) -> str:
    """`check_screenshot`, in a worker thread for an image large enough to hold the event loop up."""
    if len(image) <= INLINE_CHECK_BYTES:
        return check_screenshot(settings=settings, image=image, screenshot_type=screenshot_type)
    return await asyncio.to_thread(check_screenshot, settings=settings, image=image, screenshot_type=screenshot_type)


async def write_atomically(directory: Path, filename: str, data: bytes) -> None:
    """Write to a temporary name in the same directory, then rename: readers never see half a file."""
    temporary = directory / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        async with aiofiles.open(temporary, "wb") as handle:
            await handle.write(data)
        await aiofiles.os.replace(temporary, directory / filename)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(temporary)
        raise


async def store_screenshot(
    session: AsyncSession,
    *,
    settings: Settings,
    client_uuid: str,
    image: bytes,
    screenshot_type: str,
    captured_at: datetime | None,
    now: datetime,
) -> StoredScreenshot:
    """Validate, write the file, record the row and the client's metadata, prune the history.

    Four statements whatever the history length. A screenshot is a sign of life (`last_alive = now`).
    """
    check_uuid(client_uuid)
    image_format = await check_screenshot_off_loop(settings=settings, image=image, screenshot_type=screenshot_type)
    digest = hashlib.sha256(image).hexdigest()
    # Server-generated name only: nothing the display sent goes into a path.
    filename = f"{uuid.uuid4().hex}.{_EXTENSIONS[image_format]}"
    directory = settings.screenshots_dir
    await aiofiles.os.makedirs(directory, exist_ok=True)
    await write_atomically(directory, filename, image)
    effects = file_effects(session)
    effects.written.append(filename)
    stored_id, pruned = await _record(
        session,
        settings=settings,
        client_uuid=client_uuid,
        screenshot_type=screenshot_type,
        digest=digest,
        size=len(image),
        image_format=image_format,
        filename=filename,
        captured_at=captured_at,
        now=now,
    )
    effects.to_delete.extend(pruned)
    count_after_commit(session, SCREENSHOT_BYTES_STORED, len(image))
    _note_screenshot_events(
        session, settings=settings, client_uuid=client_uuid, screenshot_type=screenshot_type, digest=digest, now=now
    )
    return StoredScreenshot(
        id=stored_id,
        client_uuid=client_uuid,
        hash=digest,
        screenshot_type=screenshot_type,
        received_at=now,
        written_file=filename,
        files_to_delete=pruned,
    )


def _note_screenshot_events(
    session: AsyncSession, *, settings: Settings, client_uuid: str, screenshot_type: str, digest: str, now: datetime
) -> None:
    """The live feed's `screenshot` event, and `priority` (active) for an event_start/event_stop one."""
    data = {"uuid": client_uuid, "type": screenshot_type, "hash": digest, "receivedAt": now}
    events.note_event(session, kind="screenshot", client_uuid=client_uuid, data=data, at=now)
    if screenshot_type in PRIORITY_SCREENSHOT_TYPES:
        expires_at = now + timedelta(seconds=settings.PRIORITY_SCREENSHOT_TTL_SECONDS)
        priority = {**data, "active": True, "expiresAt": expires_at}
        events.note_event(session, kind="priority", client_uuid=client_uuid, data=priority, at=now)


async def _record(
    session: AsyncSession,
    *,
    settings: Settings,
    client_uuid: str,
    screenshot_type: str,
    digest: str,
    size: int,
    image_format: str,
    filename: str,
    captured_at: datetime | None,
    now: datetime,
) -> tuple[int, list[str]]:
    priority = screenshot_type in PRIORITY_SCREENSHOT_TYPES
    fields: dict[str, object] = {
        "last_screenshot_hash": digest,
        "last_screenshot_analyzed": now,
        "latest_screenshot_type": screenshot_type,
    }
    if priority:
        fields |= {
            "last_priority_screenshot_type": screenshot_type,
            "last_priority_received_at": now,
            "last_priority_screenshot_hash": digest,
        }
    # 1: register or update the client (this also locks its row, so one client's screenshots queue up).
    await record_heartbeat(session, client_uuid=client_uuid, fields=fields, now=now)
    connection = await session.connection()
    # 2: the history row.
    stored_id = (
        await connection.execute(
            _INSERT_SHOT,
            {
                "client_uuid": client_uuid,
                "screenshot_type": screenshot_type,
                "received_at": now,
                "captured_at": captured_at,
                "hash": digest,
                "size": size,
                "format": image_format,
                "filename": filename,
            },
        )
    ).scalar_one()
    # 3: point the client at it; read back the latest priority id, which the pruning must keep.
    priority_id = (
        await connection.execute(
            _POINT_PRIORITY if priority else _POINT_LATEST, {"uuid_": client_uuid, "id_": stored_id}
        )
    ).scalar_one()
    # 4: prune beyond the newest N, always keeping the latest and the latest priority screenshot.
    keep = [stored_id] + ([int(priority_id)] if priority_id is not None else [])
    pruned = await connection.execute(
        _PRUNE, {"uuid_": client_uuid, "keep": keep, "history": settings.SCREENSHOT_HISTORY_PER_CLIENT}
    )
    return stored_id, [str(name) for name in pruned.scalars().all()]


# The statements of `_record`, built once (Core, bound parameters): a screenshot costs no
# statement construction or compilation, which was most of the MQTT screenshot path's time.
_SHOTS = Screenshot.__table__  # type: ignore[attr-defined]
_CLIENTS = Client.__table__  # type: ignore[attr-defined]
_INSERT_SHOT = insert(_SHOTS).returning(_SHOTS.c.id)
_POINT_LATEST = (
    update(_CLIENTS)
    .where(_CLIENTS.c.uuid == bindparam("uuid_"))
    .values(latest_screenshot_id=bindparam("id_"))
    .returning(_CLIENTS.c.last_priority_screenshot_id)
)
_POINT_PRIORITY = _POINT_LATEST.values(last_priority_screenshot_id=bindparam("id_"))
_NEWEST = (
    select(_SHOTS.c.id)
    .where(_SHOTS.c.client_uuid == bindparam("uuid_"))
    .order_by(_SHOTS.c.received_at.desc(), _SHOTS.c.id.desc())
    .limit(bindparam("history"))
)
_HISTORY = StatusChange.__table__  # type: ignore[attr-defined]
_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
# The screenshots of the moments the status history and the incidents recorded (SPEC §12): kept whatever
# the history limit, as long as the transition or the incident is listed. On the (client_uuid, ...)
# indexes; NULLs left out (NOT IN a NULL would keep everything).
_RECORDED = union(
    *(
        select(table.c[name]).where(table.c.client_uuid == bindparam("uuid_"), table.c[name].is_not(None))
        for table in (_HISTORY, _INCIDENTS)
        for name in ("screenshot_hash", "priority_screenshot_hash")
    )
)
_PRUNE = (
    delete(_SHOTS)
    .where(
        _SHOTS.c.client_uuid == bindparam("uuid_"),
        _SHOTS.c.id.not_in(bindparam("keep", expanding=True)),
        _SHOTS.c.id.not_in(_NEWEST),
        _SHOTS.c.hash.not_in(_RECORDED),
    )
    .returning(_SHOTS.c.filename)
)


@dataclass(frozen=True)
class ScreenshotFile:
    """A stored screenshot to serve: its row and, for the priority path, whether it is the fallback."""

    screenshot: Screenshot
    fallback: bool = False

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.screenshot.format]


async def latest_screenshot(session: AsyncSession, *, client_uuid: str, priority: bool) -> ScreenshotFile:
    """The latest screenshot, or with `priority` the latest priority one (falling back to the latest).

    One statement; 404 `Client not found` or `Screenshot not found`.
    """
    latest = aliased(Screenshot, name="latest")
    latest_priority = aliased(Screenshot, name="latest_priority")
    row = (
        await session.execute(
            select(col(Client.uuid), latest, latest_priority)
            .outerjoin(latest, col(latest.id) == col(Client.latest_screenshot_id))
            .outerjoin(latest_priority, col(latest_priority.id) == col(Client.last_priority_screenshot_id))
            .where(col(Client.uuid) == client_uuid)
        )
    ).one_or_none()
    if row is None:
        raise ClientNotFound()
    if priority and row[2] is not None:
        return ScreenshotFile(row[2])
    if row[1] is None:
        raise NotFound("Screenshot not found")
    return ScreenshotFile(row[1], fallback=priority)


async def history_screenshot(session: AsyncSession, *, client_uuid: str, screenshot_id: int) -> ScreenshotFile:
    """One screenshot of a client's history, by id (one statement)."""
    row = (
        await session.execute(
            select(col(Client.uuid), Screenshot)
            .outerjoin(
                Screenshot,
                and_(col(Screenshot.client_uuid) == col(Client.uuid), col(Screenshot.id) == screenshot_id),
            )
            .where(col(Client.uuid) == client_uuid)
        )
    ).one_or_none()
    if row is None:
        raise ClientNotFound()
    if row[1] is None:
        raise NotFound("Screenshot not found")
    return ScreenshotFile(row[1])


async def history(session: AsyncSession, *, client_uuid: str) -> list[Screenshot]:
    """A client's screenshot history, newest first (one statement; 404 for an unknown client)."""
    rows = (
        await session.execute(
            select(col(Client.uuid), Screenshot)
            .outerjoin(Screenshot, col(Screenshot.client_uuid) == col(Client.uuid))
            .where(col(Client.uuid) == client_uuid)
            .order_by(col(Screenshot.received_at).desc(), col(Screenshot.id).desc())
        )
    ).all()
    if not rows:
        raise ClientNotFound()
    return [row[1] for row in rows if row[1] is not None]


async def read_file(directory: Path, filename: str) -> bytes:
    """The stored bytes; a file pruned meanwhile by another request is a 404."""
    try:
        async with aiofiles.open(directory / Path(filename).name, "rb") as handle:
            return await handle.read()
    except FileNotFoundError:
        raise NotFound("Screenshot not found") from None
