"""Screenshot files and metadata (SPEC §7)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

import aiofiles.os

logger = logging.getLogger(__name__)


async def delete_files(directory: Path, filenames: Iterable[str]) -> None:
    """Remove stored screenshot files; a file already gone is fine."""
    for name in filenames:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(directory / Path(name).name)
