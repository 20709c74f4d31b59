"""Each app instance's event feed (SPEC §11): reads new events and fans them out to its open streams.

Events are written by any replica (`app/services/events.py`). The feed of an instance is woken
after its own commits (in process) and, on PostgreSQL, by the notifications of every replica's
commits on its one LISTEN connection (raw asyncpg, `listen_for_notifications`); it then reads the
rows after the last id it saw and offers them to every subscriber. A periodic read covers
notifications lost while the LISTEN connection reconnects.

Ids are not committed in order on PostgreSQL: a transaction that took id 104 may commit after one
that took 105. When the feed sees 105 before 104, it remembers 104 as a gap and asks for it again
on each read for `GAP_SECONDS` (ids of rolled-back transactions never come and are then forgotten).
A stream resumed with `Last-Event-ID` reads what it missed from the table (`events_after`).

Subscribers get a bounded queue: one that falls `QUEUE_SIZE` events behind is closed (its stream
ends; the page reconnects with `Last-Event-ID` and reads the rest from the table), so a slow
consumer never makes memory grow. `close()` ends every stream (the server is shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.services.events import (
    NOTIFY_CHANNEL,
    FeedEvent,
    events_after,
    newest_event_id,
    register_waker,
    unregister_waker,
)

logger = logging.getLogger(__name__)

# Events a stream may be behind before it is closed.
QUEUE_SIZE = 1000
# How long a missing id is asked for again (far longer than a transaction takes from insert to commit).
GAP_SECONDS = 30.0
MAX_GAPS = 1000
# Rows read per query; more are read at once after a full page.
READ_LIMIT = 500
# Without a wake-up the feed reads anyway this often (notifications lost during a LISTEN reconnect).
POLL_SECONDS = 2.0
LISTEN_BACKOFF_MAX = 30.0
# The feed's reads name themselves in the engine's log lines (and statement counts can tell them apart).
BACKGROUND = {"logging_token": "event-feed"}


class Subscription:
    """One stream's queue; `None` in it means the stream must end."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue(size + 1)
        self.size = size
        self.closed = False
        self.overflowed = False

    def offer(self, event: FeedEvent) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.size:
            self.overflowed = True
            self.close()
            return
        self.queue.put_nowait(event)

    def close(self) -> None:
        """End the stream: what is queued is dropped (a reconnect reads it from the table)."""
        if self.closed:
            return
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class EventFeed:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        poll_seconds: float = POLL_SECONDS,
        gap_seconds: float = GAP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_factory = session_factory
        self.poll_seconds = poll_seconds
        self.gap_seconds = gap_seconds
        self.clock = clock
        self.subscribers: set[Subscription] = set()
        # The highest id seen, and ids below it not seen yet (with when to stop asking for them).
        self.cursor: int | None = None
        self.gaps: dict[int, float] = {}
        self.listening = False
        self.closed = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def subscribe(self, size: int = QUEUE_SIZE) -> Subscription:
        subscription = Subscription(size)
        if self.closed:
            subscription.close()
        else:
            self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    def close(self) -> None:
        """End every open stream and refuse new ones (the app is shutting down)."""
        self.closed = True
        for subscription in list(self.subscribers):
            subscription.close()
        self.subscribers.clear()

    async def start(self) -> None:
        """Begin after the newest event: a new stream gets what happens from now on."""
        async with self.session_factory() as session:
            await session.connection(execution_options=BACKGROUND)
            self.cursor = await newest_event_id(session)

    async def run(self) -> None:
        """Read and fan out on every wake-up (and every `poll_seconds`) until cancelled."""
        try:
            while True:
                # `asyncio.timeout`, not `wait_for`: Python 3.11's `wait_for` can swallow a cancellation that
                # arrives as the wait ends, and this loop would then outlive the app's shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.read_new()
                except Exception:  # the database may be away: the next wake-up or poll retries
                    logger.warning("event feed: reading new events failed", exc_info=True)
                    await asyncio.sleep(self.poll_seconds)
        finally:
            self.close()

    async def read_new(self) -> int:
        """Read the events after the cursor (and the gaps) and offer them to every subscriber; how many."""
        if self.cursor is None:
            await self.start()
            return 0
        assert self.cursor is not None
        now = self.clock()
        self.gaps = {gap: until for gap, until in self.gaps.items() if until > now}
        async with self.session_factory() as session:
            await session.connection(execution_options=BACKGROUND)
            rows = await events_after(session, after_id=self.cursor, gaps=sorted(self.gaps), limit=READ_LIMIT)
        for event in rows:
            if event.id in self.gaps:
                del self.gaps[event.id]
            elif event.id > self.cursor:
                # A jump larger than that is no gap (an empty table after a restart, the sequence far ahead).
                if event.id - self.cursor <= MAX_GAPS:
                    for missing in range(self.cursor + 1, event.id):
                        self.gaps[missing] = now + self.gap_seconds
                self.cursor = event.id
            else:
                continue
            for subscription in list(self.subscribers):
                subscription.offer(event)
                if subscription.closed:
                    self.subscribers.discard(subscription)
        if len(self.gaps) > MAX_GAPS:
            for gap in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[gap]
        if len(rows) >= READ_LIMIT:
            self.wake()
        return len(rows)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _connection: event.set()


def listen_dsn(database_url: str) -> str:
    """The database URL as a plain asyncpg DSN."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_for_notifications(feed: EventFeed, dsn: str, *, backoff_initial: float = 1.0) -> None:
    """Keep one LISTEN connection open and wake the feed on every notification; reconnect when it drops."""
    delay = backoff_initial
    while True:
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(dsn, timeout=10)
            lost = asyncio.Event()
            connection.add_termination_listener(_setter(lost))
            await connection.add_listener(NOTIFY_CHANNEL, lambda *_notification: feed.wake())
            feed.listening = True
            delay = backoff_initial
            feed.wake()  # what was committed while no connection listened
            while not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await lost.wait()
            logger.warning("event feed: the LISTEN connection was lost; reconnecting")
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            logger.warning("event feed: LISTEN connection failed (%r); retrying in %.0f s", exc, delay)
        finally:
            feed.listening = False
            if connection is not None:
                connection.terminate()  # never waits: shutdown must not hang on a dead server
        await asyncio.sleep(delay)
        delay = min(delay * 2, LISTEN_BACKOFF_MAX)


async def start_event_feed(feed: EventFeed, engine: AsyncEngine, database_url: str, tasks: list[object]) -> None:
    """Start the feed (and its LISTEN connection on PostgreSQL); the tasks go to `tasks` for the lifespan."""
    try:
        await feed.start()
    except Exception:  # never blocks start-up: the feed's first read starts it
        logger.warning("event feed: could not read the newest event at start-up", exc_info=True)
    register_waker(engine.sync_engine, feed.wake)
    tasks.append(asyncio.create_task(feed.run(), name="event-feed"))
    if engine.dialect.name == "postgresql":
        tasks.append(
            asyncio.create_task(listen_for_notifications(feed, listen_dsn(database_url)), name="event-feed-listen")
        )


def stop_event_feed(feed: EventFeed, engine: AsyncEngine) -> None:
    unregister_waker(engine.sync_engine)
    feed.close()
