"""The MQTT ingestion task (SPEC §6.1): connect, subscribe, batch, store, and only then acknowledge.

Delivery is at-least-once without loss. aiomqtt acknowledges a QoS 1 message as soon as it is
queued, so manual acknowledgement is switched on in the underlying paho client and every message
is acknowledged only after the transaction holding it has committed (or, for a message that can
never be stored, after it was dropped and counted). A crash in between leaves the message
unacknowledged in the broker's persistent session (fixed client id, no clean start, a session
expiry interval), which delivers it again; log `message_id`s make that repeat harmless.

Backpressure: the CONNECT `ReceiveMaximum` bounds how many unacknowledged messages the broker
sends us, and the client stops reading its socket above that many waiting messages (for brokers
that ignore it). That is the bounded in-memory buffer: while the database is slow or down nothing
is acknowledged, so the broker stops sending and keeps the rest queued (its `max_queued_messages`).

Scale-out: replicas share one `MQTT_SHARED_GROUP` (`$share/<group>/...` subscriptions, MQTT v5)
and each needs its own fixed `MQTT_CLIENT_ID`: two connections with one id take the session from
each other in a loop.

The topic table and payload validation live in `mqtt_topics.py`, the unit of work in
`mqtt_batch.py`, the client with manual ack and socket backpressure in `mqtt_client.py`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.metrics import (
    DATABASE_ERRORS,
    INGEST_BATCH_COMMIT,
    INGEST_BUFFER_DEPTH,
    INGEST_WAITING,
    MQTT_MESSAGES,
    MQTT_RECONNECTS,
)
from app.services.mqtt_batch import apply_actions
from app.services.mqtt_client import IngestClient
from app.services.mqtt_connection import MqttConfigurationError, describe_failure, tls_context
from app.services.mqtt_topics import Action, Parsed, Rejected, ScreenshotUpload, parse_message, subscription_filters
from app.services.screen_analysis_queue import AnalysisQueue
from app.services.unit_of_work import unit_of_work
from app.state import AppState, MqttState

logger = logging.getLogger(__name__)

# The broker keeps our session (subscriptions and queued messages) this long while we are away.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
# Unacknowledged QoS 1 messages the broker may have in flight to us: the in-memory buffer bound.
RECEIVE_MAXIMUM = 200
# A batch closes at this many messages, this many payload bytes, or this long after its first message.
BATCH_MAX_BYTES = 32 * 1024 * 1024
BATCH_WINDOW_SECONDS = 0.01
# A batch that fails with a "transient" error while the database answers is retried this often,
# then treated as containing a poison message.
TRANSIENT_ATTEMPTS = 5
# Stages at which the (test-only) fault hook is called.
BEFORE_COMMIT, AFTER_COMMIT = "before_commit", "after_commit"


# Dropped messages are logged once per reason per interval (the first at once), not once each.
DROP_LOG_INTERVAL_SECONDS = 10.0


class DroppedMessageLog:
    """Log lines about dropped messages that a flood cannot multiply; the counters stay exact elsewhere.

    The first message dropped for a reason is logged at once, with its topic. Later ones are
    counted, and at most one line per reason and interval reports how many there were since the
    last line, with one of their topics as an example.
    """

    def __init__(
        self, *, interval: float = DROP_LOG_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._logged_at: dict[str, float] = {}
        self._pending: dict[str, tuple[int, str]] = {}

    def dropped(self, topic: str, reason: str, *, exc_info: bool = False) -> None:
        """One message dropped for `reason`."""
        now = self.clock()
        if reason not in self._logged_at:
            self._logged_at[reason] = now
            logger.warning("dropped MQTT message on %r: %s", topic[:200], reason, exc_info=exc_info)
            return
        count, example = self._pending.get(reason, (0, topic))
        self._pending[reason] = (count + 1, example)
        self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Log the summary of every reason whose interval has passed since its last line."""
        now = self.clock() if now is None else now
        for reason, (count, example) in list(self._pending.items()):
            since = now - self._logged_at[reason]
            if since >= self.interval:
                logger.warning(
                    "dropped %d MQTT messages (%s) in the %.0f s since the last report, e.g. on %r",
                    count,
                    reason,
                    since,
                    example[:200],
                )
                self._logged_at[reason] = now
                del self._pending[reason]


class AbortConnection(Exception):
    """Raised by a fault hook to drop the broker connection without acknowledging (tests)."""


@dataclass(frozen=True)
class Received:
    """One message as it arrived, with what it asks for (or why it is refused)."""

    message: aiomqtt.Message
    topic: str
    result: Parsed | Rejected
    size: int


FaultHook = Callable[[str, Sequence[Received]], Awaitable[None]]


def _count(kind: str, outcome: str, amount: int = 1) -> None:
    MQTT_MESSAGES.labels(kind, outcome).inc(amount)


def _is_transient(exc: BaseException) -> bool:
    """A database failure that retrying may cure (connection lost, lock timeout, deadlock)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)


class MqttIngest:
    """One subscriber: reconnects forever, never dies on bad input; cancel the task to stop it."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        mqtt_state: MqttState,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        receive_maximum: int = RECEIVE_MAXIMUM,
        batch_window: float = BATCH_WINDOW_SECONDS,
        fault_hook: FaultHook | None = None,
        dropped_log: DroppedMessageLog | None = None,
        analysis: AnalysisQueue | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.clock = clock
        self.mqtt_state = mqtt_state
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.receive_maximum = receive_maximum
        self.batch_window = batch_window
        self.fault_hook = fault_hook
        self.dropped_log = dropped_log or DroppedMessageLog()
        self.analysis = analysis or AnalysisQueue()
        self._subscribed = False

    @classmethod
    def from_state(cls, state: AppState, **options: object) -> MqttIngest:
        return cls(
            settings=state.settings,
            session_factory=state.session_factory,
            clock=state.now,
            mqtt_state=state.mqtt,
            analysis=state.analysis,
            **options,  # type: ignore[arg-type]
        )

    # -- connection ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, consume, and on any failure reconnect with exponential backoff and jitter."""
        delay = self.backoff_initial
        while True:
            self._subscribed = False
            try:
                await self._connection()
            except AbortConnection:
                logger.warning("MQTT connection aborted by the fault hook; reconnecting")
            except MqttConfigurationError as exc:
                logger.error("%s", exc)
            except aiomqtt.MqttError as exc:
                level, line = describe_failure(exc, host=self.settings.MQTT_HOST, port=self.settings.MQTT_PORT)
                logger.log(level, "%s", line)
            except Exception:  # the loop never dies: log and reconnect
                logger.exception("MQTT ingestion failed; reconnecting")
            finally:
                self.mqtt_state.connected = False
                # Unacknowledged messages are the broker's again (redelivered): nothing of ours waits.
                INGEST_WAITING.waiting_since = None
            MQTT_RECONNECTS.inc()
            if self._subscribed:
                delay = self.backoff_initial
            pause = delay * random.uniform(0.8, 1.2)
            logger.info("reconnecting to the MQTT broker in %.1f s", pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, self.backoff_max)

    def _client(self) -> IngestClient:
        """A new client per attempt: persistent session, bounded in-flight window, manual ack.

        The TLS context is built per attempt too, so fixed certificate files are picked up.
        """
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # A per-run development id is never resumed: a kept session would only pile up queued messages.
        properties.SessionExpiryInterval = 0 if self.settings.mqtt_client_id_is_per_run else SESSION_EXPIRY_SECONDS
        properties.ReceiveMaximum = self.receive_maximum
        settings = self.settings
        client = IngestClient(
            settings.MQTT_HOST,
            settings.MQTT_PORT,
            high_water=self.receive_maximum,
            on_connection_lost=self._connection_lost,
            identifier=settings.MQTT_CLIENT_ID,
            username=settings.MQTT_USERNAME,
            password=settings.MQTT_PASSWORD,
            protocol=aiomqtt.ProtocolVersion.V5,
            # Never a clean start: aiomqtt's default wipes the session (and its queue) at first connect.
            clean_start=False,
            properties=properties,
            tls_context=tls_context(settings),
            keepalive=30,
            timeout=10,
        )
        return client

    def _connection_lost(self) -> None:
        self.mqtt_state.connected = False

    async def _connection(self) -> None:
        """One connection's life; it ends only by raising (connection lost)."""
        async with self._client() as client:
            await self._subscribe(client)
            # Connected only once subscribed: `/readyz` must not claim a connection that ingests nothing.
            self._subscribed = self.mqtt_state.connected = True
            logger.info("MQTT connected to %s:%s", self.settings.MQTT_HOST, self.settings.MQTT_PORT)
            await self._consume(client)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        group = self.settings.MQTT_SHARED_GROUP
        filters = subscription_filters(self.settings.MQTT_TOPIC_PREFIX)
        if group:
            filters = [f"$share/{group}/{topic}" for topic in filters]
        # retainHandling=2: a retained message is old state (an old `offline`), not something to apply.
        granted = await client.subscribe([(topic, SubscribeOptions(qos=1, retainHandling=2)) for topic in filters])
        for topic, code in zip(filters, granted, strict=False):
            value = code.value if isinstance(code, ReasonCode) else code
            if not isinstance(value, int) or value >= 0x80:
                raise aiomqtt.MqttError(f"subscription to {topic} refused: {code}")

    # -- consumption ---------------------------------------------------------------------------

    async def _consume(self, client: IngestClient) -> None:
        messages = client.messages
        client.flow_control = True
        while True:
            batch = await self._gather(messages)
            if INGEST_WAITING.waiting_since is None:
                INGEST_WAITING.waiting_since = time.monotonic()
            INGEST_BUFFER_DEPTH.set(len(batch) + len(messages))
            store_started = time.monotonic()
            await self._store(batch)
            if self.fault_hook is not None:
                await self.fault_hook(AFTER_COMMIT, batch)
            for item in batch:
                client.ack(item.message)
            client.resume_reading()
            INGEST_BUFFER_DEPTH.set(len(messages))
            self.dropped_log.flush()
            # What is still queued arrived while this batch was stored: at the earliest when that began.
            INGEST_WAITING.waiting_since = store_started if len(messages) else None

    async def _gather(self, messages: aiomqtt.client.MessagesIterator) -> list[Received]:
        """The next batch: wait for one message, then take what arrives within the window.

        Only queued messages are taken after the first (never a cancelled wait, which could lose one).
        """
        batch = [self._receive(await anext(messages))]
        size = batch[0].size
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_window
        while len(batch) < self.receive_maximum and size < BATCH_MAX_BYTES:
            if len(messages):
                batch.append(self._receive(await anext(messages)))
                size += batch[-1].size
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 0.001))
        return batch

    def _receive(self, message: aiomqtt.Message) -> Received:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        try:
            result = parse_message(topic, payload, settings=self.settings, received_at=self.clock())
        except Exception:  # a parser bug must not stop the loop either
            result = Rejected("unknown", "parse_error")
            self.dropped_log.dropped(topic, result.reason, exc_info=True)
        else:
            if isinstance(result, Rejected):
                self.dropped_log.dropped(topic, result.reason)
        return Received(message, topic, result, len(payload))

    async def _store(self, batch: list[Received]) -> None:
        for item in batch:
            if isinstance(item.result, Rejected):
                _count(item.result.kind, item.result.reason)
        usable = [item for item in batch if isinstance(item.result, Parsed)]
        if usable:
            await self._write_with_retry(usable)

    async def _write_with_retry(self, items: list[Received]) -> None:
        """Write until it commits; split a batch that fails on its content; drop a poison message."""
        delay = self.backoff_initial
        attempts = 0
        while True:
            attempts += 1
            started = time.perf_counter()
            try:
                await self._write(items)
            except AbortConnection:
                raise
            except Exception as exc:
                DATABASE_ERRORS.labels("mqtt").inc()
                answers = await self._database_answers()
                if answers and (not _is_transient(exc) or attempts >= TRANSIENT_ATTEMPTS):
                    if len(items) > 1:
                        logger.warning("a batch of %d failed (%r); storing its messages one by one", len(items), exc)
                        for item in items:
                            await self._write_with_retry([item])
                        return
                    item = items[0]
                    logger.error("dropped MQTT message on %r: could not be stored: %r", item.topic[:200], exc)
                    _count(item.result.kind, "store_failed")
                    return
                logger.warning("database unavailable (%r); retrying %d messages in %.1f s", exc, len(items), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            else:
                INGEST_BATCH_COMMIT.observe(time.perf_counter() - started)
                for item in items:
                    assert isinstance(item.result, Parsed)
                    _count(item.result.kind, item.result.outcome)
                return

    async def _write(self, items: list[Received]) -> None:
        """One transaction for every message of `items`; screenshot files follow its fate."""
        actions: list[Action] = []
        for item in items:
            assert isinstance(item.result, Parsed)
            actions.extend(item.result.actions)
        now = self.clock()
        async with unit_of_work(
            self.session_factory,
            screenshots_dir=self.settings.screenshots_dir,
            grace_seconds=self.settings.heartbeat_grace_seconds,
        ) as session:
            await apply_actions(session, actions, settings=self.settings, now=now)
            if self.fault_hook is not None:
                await self.fault_hook(BEFORE_COMMIT, items)
        # Screen analysis (SPEC §14): after the commit, never awaited by the batch.
        self.analysis.submit_all(action.client_uuid for action in actions if isinstance(action, ScreenshotUpload))

    async def _database_answers(self) -> bool:
        try:
            async with self.session_factory() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True


def start_mqtt_ingest(state: AppState, **options: object) -> asyncio.Task[None]:
    """Start the ingestion task for the lifespan; it is kept in `state.tasks` (never fire-and-forget)."""
    state.mqtt.enabled = True
    task = asyncio.create_task(MqttIngest.from_state(state, **options).run(), name="mqtt-ingest")
    state.tasks.append(task)
    return task
