"""The typed state the lifespan builds and every request reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import utcnow
from app.services.event_feed import EventFeed
from app.services.screen_analysis_queue import AnalysisQueue


@dataclass
class MqttState:
    """What `/readyz` and `/metrics` report about the broker connection."""

    enabled: bool = False
    connected: bool = False


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = utcnow
    mqtt: MqttState = field(default_factory=MqttState)
    # Displays whose latest screenshot waits for screen analysis (disabled until the lifespan starts it).
    analysis: AnalysisQueue = field(default_factory=AnalysisQueue)
    # Set when notifications were written to the outbox: the delivery task wakes at once.
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Long-lived tasks the lifespan started; kept so their exceptions are never lost.
    tasks: list[Any] = field(default_factory=list)
    # The live event feed of this instance (SPEC §11): what `/api/events` streams subscribe to.
    events: EventFeed = field(init=False)

    def __post_init__(self) -> None:
        self.events = EventFeed(self.session_factory)

    def now(self) -> datetime:
        return self.clock()
