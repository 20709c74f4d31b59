"""The screen analysis worker (SPEC §14): a lifespan task that analyses stored screenshots.

Storing a screenshot never waits for it: the ingest paths only `submit` the display after their
commit (`screen_analysis_queue.py`). The worker takes one display at a time, reads its latest
screenshot and the ones before it, measures the images in a worker thread (Pillow and numpy release
the GIL for the decoding and the arithmetic, so the event loop keeps serving), classifies, and
stores the verdict with its measurements on the screenshot and as the display's detected screen health.

At start-up it picks up every display whose latest screenshot has not been analysed (a restart, or
screenshots stored while analysis was off or behind).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.errors import NotFound
from app.models import Client, Screenshot, UTCDateTime
from app.schemas.screenshots import ScreenAnalysis as Analysis
from app.services import events
from app.services.screen_analysis import REASONS, Measurements, Previous, classify, measure
from app.services.screen_analysis_queue import AnalysisQueue
from app.services.screenshots import read_file
from app.state import AppState

logger = logging.getLogger(__name__)

# While at least REST_BACKLOG displays wait (a burst, or the start-up backlog), the worker rests
# REST_FACTOR times as long as each analysis took (at most MAX_REST_S). A shorter backlog (a fleet's
# steady flow) is drained at full speed.
REST_BACKLOG = 10
REST_FACTOR = 1.0
MAX_REST_S = 1.0

_SHOTS = Screenshot.__table__  # type: ignore[attr-defined]
_CLIENTS = Client.__table__  # type: ignore[attr-defined]

# The display's newest screenshots, newest first, with its event now (one statement, on the
# (client_uuid, received_at, id) index).
_RECENT = (
    select(_SHOTS, _CLIENTS.c.current_event_id.label("current_event_id"))
    .join(_CLIENTS, _CLIENTS.c.uuid == _SHOTS.c.client_uuid)
    .where(_SHOTS.c.client_uuid == bindparam("uuid_"))
    .order_by(_SHOTS.c.received_at.desc(), _SHOTS.c.id.desc())
    .limit(bindparam("count"))
)
_STORE_ANALYSIS = (
    update(_SHOTS)
    .where(_SHOTS.c.id == bindparam("id_"))
    .values(
        analysis=bindparam("analysis"),
        analysed_at=bindparam("analysed_at"),
        luminance_mean=bindparam("luminance_mean"),
        luminance_spread=bindparam("luminance_spread"),
        luminance_p99=bindparam("luminance_p99"),
        bright_share=bindparam("bright_share"),
        perceptual_hash=bindparam("perceptual_hash"),
        event_id=bindparam("event_id"),
    )
)
# An older screenshot's verdict (a late analysis) never replaces a newer one's.
_STORE_DETECTED = (
    update(_CLIENTS)
    .where(
        _CLIENTS.c.uuid == bindparam("uuid_"),
        or_(_CLIENTS.c.detected_screenshot_id.is_(None), _CLIENTS.c.detected_screenshot_id <= bindparam("id_")),
    )
    .values(
        detected_screen_health=bindparam("analysis"),
        detected_screen_health_reason=bindparam("reason"),
        detected_screenshot_id=bindparam("id_"),
        # A changed verdict is a cue for the status evaluator.
        changed_at=case(
            (
                _CLIENTS.c.detected_screen_health.is_distinct_from(bindparam("analysis")),
                bindparam("now", type_=UTCDateTime()),
            ),
            else_=_CLIENTS.c.changed_at,
        ),
    )
)
# Displays whose latest screenshot is not analysed yet.
_UNANALYSED = (
    select(_CLIENTS.c.uuid)
    .join(_SHOTS, _SHOTS.c.id == _CLIENTS.c.latest_screenshot_id)
    .where(_SHOTS.c.analysis.is_(None))
    .order_by(_SHOTS.c.received_at, _SHOTS.c.id)
)


def _measure_all(images: Sequence[bytes | None]) -> list[Measurements | None]:
    """Measure each image (None for a missing or undecodable one); runs in the worker thread."""
    results: list[Measurements | None] = []
    for image in images:
        if image is None:
            results.append(None)
            continue
        try:
            results.append(measure(image))
        except Exception as exc:  # a stored file that Pillow cannot decode is skipped, never fatal
            logger.warning("screenshot could not be analysed: %r", exc)
            results.append(None)
    return results


class ScreenAnalysisWorker:
    """Drains an `AnalysisQueue`; one display at a time, never dies on a bad image or a database error."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        queue: AnalysisQueue,
        rest: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.clock = clock
        self.queue = queue
        self.rest = rest
        self.analysed = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="screen-analysis")

    async def resume(self) -> int:
        """Queue every display whose latest screenshot is not analysed; returns how many."""
        async with self.session_factory() as session:
            uuids = list((await session.execute(_UNANALYSED)).scalars())
        self.queue.submit_all(uuids)
        if uuids:
            logger.info("screen analysis: %d displays with an unanalysed latest screenshot", len(uuids))
        return len(uuids)

    async def run(self) -> None:
        """Analyse what is submitted until cancelled.

        While `REST_BACKLOG` or more displays wait (a burst of screenshots, or the start-up backlog) the
        worker rests after each analysis for as long as the analysis took: it is at work at most half
        the time, and does less work the busier the event loop and the database are (their work
        stretches each analysis, and the rest with it), so ingest keeps its pace; the backlog coalesces
        meanwhile (each display's newest screenshot wins). A shorter backlog is drained without rest,
        so a steady flow is analysed within milliseconds.
        """
        try:
            while True:
                client_uuid = await self.queue.take()
                started = time.monotonic()
                try:
                    await self.analyse_latest(client_uuid)
                except Exception:
                    # Left unanalysed: the display's next screenshot or the next start-up retries.
                    logger.exception("screen analysis of %s failed", client_uuid)
                if self.queue.depth >= REST_BACKLOG:
                    await self.rest(min((time.monotonic() - started) * REST_FACTOR, MAX_REST_S))
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def analyse_latest(self, client_uuid: str) -> Analysis | None:
        """Analyse the display's latest screenshot unless that is done; the verdict, or None."""
        count = max(self.settings.FROZEN_AFTER_SCREENSHOTS, 2)
        async with self.session_factory() as session:
            rows = (await session.execute(_RECENT, {"uuid_": client_uuid, "count": count})).all()
        if not rows or rows[0].analysis is not None:
            return None
        newest, earlier = rows[0], rows[1:]
        # The new image, and the earlier ones that have no hash yet (skipped while analysis was behind).
        wanted = [newest, *(row for row in earlier if row.perceptual_hash is None)]
        images = [await self._read(row.filename) for row in wanted]
        loop = asyncio.get_running_loop()
        measured = await loop.run_in_executor(self._executor, _measure_all, images)
        by_id = {row.id: result for row, result in zip(wanted, measured, strict=True)}
        current = by_id[newest.id]
        if current is None:
            return None
        analysis = classify(
            current,
            screenshot_type=newest.screenshot_type,
            event_id=newest.current_event_id,
            previous=[_previous(row, by_id.get(row.id)) for row in earlier],
            frozen_after=self.settings.FROZEN_AFTER_SCREENSHOTS,
        )
        await self._store(client_uuid, newest.id, analysis, current, event_id=newest.current_event_id)
        self.analysed += 1
        return analysis

    async def _read(self, filename: str) -> bytes | None:
        try:
            return await read_file(self.settings.screenshots_dir, filename)
        except NotFound:  # pruned meanwhile
            return None

    async def _store(
        self, client_uuid: str, screenshot_id: int, analysis: Analysis, measured: Measurements, *, event_id: int | None
    ) -> None:
        async with self.session_factory() as session, session.begin():
            connection = await session.connection()
            await connection.execute(
                _STORE_ANALYSIS,
                {
                    "id_": screenshot_id,
                    "analysis": analysis,
                    "analysed_at": self.clock(),
                    "luminance_mean": measured.luminance_mean,
                    "luminance_spread": measured.luminance_spread,
                    "luminance_p99": measured.luminance_p99,
                    "bright_share": measured.bright_share,
                    "perceptual_hash": measured.perceptual_hash,
                    "event_id": event_id,
                },
            )
            await connection.execute(
                _STORE_DETECTED,
                {
                    "uuid_": client_uuid,
                    "id_": screenshot_id,
                    "analysis": analysis,
                    "reason": REASONS[analysis],
                    "now": self.clock(),
                },
            )
            # A detected BLACK or FROZEN screen (or its end) changes the display's status: the live feed says so.
            events.check_status(session, [client_uuid], now=self.clock())
            wrote_events = await events.flush_events(session, grace_seconds=self.settings.heartbeat_grace_seconds)
        if wrote_events:
            events.wake_after_commit(session)


def _previous(row: Any, measured: Measurements | None) -> Previous:
    """An earlier screenshot for the rules: its stored hash, or the one just measured for it."""
    perceptual_hash = row.perceptual_hash or (measured.perceptual_hash if measured is not None else None)
    return Previous(
        perceptual_hash=perceptual_hash,
        screenshot_type=row.screenshot_type,
        event_id=row.event_id,
        analysed=row.analysis is not None,
        analysis=row.analysis,
    )


async def start_screen_analysis(state: AppState) -> ScreenAnalysisWorker:
    """Enable the queue, queue what was left unanalysed, and start the worker task (kept in `state.tasks`)."""
    settings = state.settings
    state.analysis = AnalysisQueue(capacity=settings.SCREEN_ANALYSIS_BACKLOG, enabled=True)
    worker = ScreenAnalysisWorker(
        settings=settings, session_factory=state.session_factory, clock=state.now, queue=state.analysis
    )
    try:
        await worker.resume()
    except Exception:  # never blocks start-up; the next screenshots are analysed anyway
        logger.exception("screen analysis could not look for unanalysed screenshots")
    state.tasks.append(asyncio.create_task(worker.run(), name="screen-analysis"))
    return worker
