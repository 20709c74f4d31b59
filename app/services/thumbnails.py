"""Screenshot thumbnails for the dashboard's tiles (SPEC §11): small JPEGs made once, kept on disk.

A thumbnail is named by the screenshot's hash and its width, so it never changes: the cache under
`DATA_DIR/thumbnails` needs no invalidation, only a sweep of the ones whose screenshot is gone
(`sweep_thumbnails`, in the periodic screenshot sweep). Pillow decodes and scales in a worker
thread, off the event loop; JPEGs are decoded at a reduced scale (`draft`), which is most of the saving.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from pathlib import Path

from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models import Screenshot
from app.services.screenshots import read_file, write_atomically

logger = logging.getLogger(__name__)

THUMBNAIL_WIDTHS = (160, 320, 640)
DEFAULT_WIDTH = 320
JPEG_QUALITY = 80
HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_CACHED_NAME = re.compile(r"^([0-9a-f]{64})-(\d+)\.jpg$")
_SHOTS = Screenshot.__table__  # type: ignore[attr-defined]


def thumbnail_name(digest: str, width: int) -> str:
    return f"{digest}-{width}.jpg"


def render_thumbnail(image: bytes, width: int) -> bytes:
    """A JPEG `width` pixels wide (never wider than the image), the aspect ratio kept."""
    with Image.open(io.BytesIO(image)) as source:
        source.draft("RGB", (width, max(1, width * source.height // max(1, source.width))))
        picture = source.convert("RGB")
    if picture.width > width:
        height = max(1, round(picture.height * width / picture.width))
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    output = io.BytesIO()
    picture.save(output, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return output.getvalue()


async def screenshot_file(session: AsyncSession, *, digest: str) -> str:
    """The stored file name of a screenshot with this hash; 404 when none is kept (unknown or pruned)."""
    if not HASH_PATTERN.fullmatch(digest):
        raise NotFound("Screenshot not found")
    filename = (
        await session.execute(select(_SHOTS.c.filename).where(_SHOTS.c.hash == digest).limit(1))
    ).scalar_one_or_none()
    if filename is None:
        raise NotFound("Screenshot not found")
    return str(filename)


async def thumbnail(
    session: AsyncSession, *, digest: str, width: int, screenshots_dir: Path, cache_dir: Path
) -> tuple[bytes, bool]:
    """(the thumbnail's JPEG bytes, whether it was just rendered): from the cache, or made and cached.

    The screenshot is looked up every time (one statement), so a pruned screenshot's thumbnail is a 404
    even while its cached file waits for the sweep.
    """
    filename = await screenshot_file(session, digest=digest)
    cached = cache_dir / thumbnail_name(digest, width)
    try:
        return await asyncio.to_thread(cached.read_bytes), False
    except FileNotFoundError:
        pass
    image = await read_file(screenshots_dir, filename)
    try:
        data = await asyncio.to_thread(render_thumbnail, image, width)
    except Exception as exc:  # a stored file Pillow cannot decode: nothing to show
        logger.warning("thumbnail of %s could not be made: %r", digest, exc)
        raise NotFound("Screenshot not found") from None
    await asyncio.to_thread(cache_dir.mkdir, parents=True, exist_ok=True)
    await write_atomically(cache_dir, cached.name, data)
    return data, True


def cached_hashes(cache_dir: Path) -> dict[str, list[str]]:
    """The cached thumbnails' file names by screenshot hash."""
    found: dict[str, list[str]] = {}
    if not cache_dir.is_dir():
        return found
    with os.scandir(cache_dir) as entries:
        for entry in entries:
            match = _CACHED_NAME.fullmatch(entry.name)
            if match:
                found.setdefault(match.group(1), []).append(entry.name)
    return found
