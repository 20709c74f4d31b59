"""Screenshot files without a row: what a crash between writing a file and committing its row leaves.

A screenshot's file is written before its row is committed (readers never see a row without its
file), and the unit of work removes the file again if the transaction fails; a process killed in
between leaves the file behind. This sweep, at start-up and then periodically, removes stored
screenshot files that no row names, and temporary files of interrupted writes. Only files older
than `ORPHAN_MIN_AGE_SECONDS` are touched: a younger file may belong to a transaction still
running, here or in another replica on the same shared directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.metrics import ORPHAN_FILES_REMOVED
from app.models import Screenshot
from app.services.retention import run_periodically
from app.services.thumbnails import cached_hashes
from app.services.unit_of_work import remove_files
from app.state import AppState

logger = logging.getLogger(__name__)

# Far longer than any transaction that writes a screenshot takes.
ORPHAN_MIN_AGE_SECONDS = 600.0
SWEEP_INTERVAL_SECONDS = 3600.0
# The names `store_screenshot` and `write_atomically` give; anything else in the directory is left alone.
_STORED_NAME = re.compile(r"[0-9a-f]{32}\.(?:jpg|png)")
_TEMPORARY_NAME = re.compile(r"\.tmp-[0-9a-f]{32}")


def _old_files(directory: Path, *, modified_before: float) -> tuple[list[str], list[str]]:
    """(stored screenshot names, temporary names) of the files last modified before `modified_before`."""
    stored: list[str] = []
    temporary: list[str] = []
    if not directory.is_dir():
        return stored, temporary
    with os.scandir(directory) as entries:
        for entry in entries:
            kind = stored if _STORED_NAME.fullmatch(entry.name) else None
            kind = temporary if _TEMPORARY_NAME.fullmatch(entry.name) else kind
            if kind is None or not entry.is_file(follow_symlinks=False):
                continue
            try:
                modified = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:  # removed meanwhile (pruned, or by another replica's sweep)
                continue
            if modified < modified_before:
                kind.append(entry.name)
    return stored, temporary


async def sweep_orphan_files(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    directory: Path,
    now: float,
    min_age: float = ORPHAN_MIN_AGE_SECONDS,
) -> int:
    """Remove the old files of `directory` that no screenshot row names; returns how many.

    `now` is the wall clock in seconds (file times are the file system's, not the app's clock).
    One statement whatever the number of files: the names of all rows, read once.
    """
    stored, temporary = await asyncio.to_thread(_old_files, directory, modified_before=now - min_age)
    orphans = temporary
    if stored:
        async with session_factory() as session:
            known = set((await session.execute(select(col(Screenshot.filename)))).scalars())
        orphans = orphans + [name for name in stored if name not in known]
    await remove_files(directory, orphans)
    ORPHAN_FILES_REMOVED.inc(len(orphans))
    if orphans:
        logger.info("removed %d screenshot files without a row (left by an interrupted write)", len(orphans))
    return len(orphans)


async def sweep_thumbnails(session_factory: async_sessionmaker[AsyncSession], *, cache_dir: Path) -> int:
    """Remove cached thumbnails whose screenshot is gone (pruned, or its display deleted); returns how many.

    One statement: which of the cached hashes still have a screenshot.
    """
    cached = await asyncio.to_thread(cached_hashes, cache_dir)
    if not cached:
        return 0
    async with session_factory() as session:
        kept = set(
            (
                await session.execute(
                    select(col(Screenshot.hash)).where(col(Screenshot.hash).in_(list(cached))).distinct()
                )
            ).scalars()
        )
    stale = [name for digest, names in cached.items() if digest not in kept for name in names]
    await remove_files(cache_dir, stale)
    return len(stale)


def start_sweep_task(state: AppState) -> asyncio.Task[None]:
    """Sweep now (start-up) and then every `SWEEP_INTERVAL_SECONDS`; kept in `state.tasks`."""

    async def sweep() -> int:
        directory = state.settings.screenshots_dir
        removed = await sweep_orphan_files(state.session_factory, directory=directory, now=time.time())
        return removed + await sweep_thumbnails(state.session_factory, cache_dir=state.settings.thumbnails_dir)

    task = asyncio.create_task(
        run_periodically(sweep, first_delay=0.0, interval=SWEEP_INTERVAL_SECONDS, name="screenshot sweep"),
        name="screenshot-sweep",
    )
    state.tasks.append(task)
    return task
