"""One unit of work for HTTP and MQTT: a transaction, and the screenshot files that follow its fate.

A request or an MQTT batch runs inside `unit_of_work(...)`: it commits when the block ends without an
error and rolls back otherwise. Screenshot files are written before their rows (readers never see a
row without its file), so the files are part of the unit of work too: a file written in it is
removed if the transaction rolls back (or its commit fails), and history files pruned in it are
removed only once the commit succeeded (a rollback keeps their rows, so it must keep their files).
Services record those effects with `file_effects(session)`; they never commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles.os
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services import events

_FILE_EFFECTS = "screenshot_files"


@dataclass
class FileEffects:
    """Screenshot file names: `written` go if the transaction rolls back, `to_delete` go after its commit."""

    written: list[str] = field(default_factory=list)
    to_delete: list[str] = field(default_factory=list)


def file_effects(session: AsyncSession) -> FileEffects:
    """The file effects recorded so far in this session's unit of work."""
    effects = session.info.get(_FILE_EFFECTS)
    if effects is None:
        effects = session.info[_FILE_EFFECTS] = FileEffects()
    assert isinstance(effects, FileEffects)
    return effects


async def remove_files(directory: Path, filenames: Iterable[str]) -> None:
    """Remove stored screenshot files; a file already gone is fine."""
    for name in filenames:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(directory / Path(name).name)


@asynccontextmanager
async def unit_of_work(
    session_factory: async_sessionmaker[AsyncSession], *, screenshots_dir: Path, grace_seconds: int
) -> AsyncIterator[AsyncSession]:
    """A session that commits at the end of the block (or rolls back), with its file effects applied.

    The commit happens here, before the caller answers: a 2xx (or an MQTT acknowledgement) sent
    after the block means committed, and a failed commit raises to the caller instead. The live
    feed's events of the unit of work are written in its transaction, just before the commit
    (`grace_seconds` is the heartbeat grace its status events are worked out with).
    """
    async with session_factory() as session:
        try:
            yield session
            wrote_events = await events.flush_events(session, grace_seconds=grace_seconds)
            await session.commit()
        except BaseException:
            await session.rollback()
            await remove_files(screenshots_dir, file_effects(session).written)
            raise
        if wrote_events:
            events.wake_after_commit(session)
        await remove_files(screenshots_dir, file_effects(session).to_delete)
