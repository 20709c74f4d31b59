"""The bounded backlog of screen analysis: displays whose latest screenshot waits to be analysed.

Fed after a screenshot's transaction has committed (HTTP upload and MQTT batch) and drained by the
worker in `screen_analysis_worker.py`. One entry per display, oldest first: when analysis falls
behind, a display's newer screenshots join its waiting entry and the worker analyses the newest
(the latest screenshot when it gets there). Beyond `capacity` displays the oldest entry is dropped;
its screenshot stays unanalysed until the display's next one, or the next start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)


class AnalysisQueue:
    """In memory and per process; `enabled=False` (analysis off) makes `submit` a no-op."""

    def __init__(self, *, capacity: int = 1, enabled: bool = False) -> None:
        self.capacity = capacity
        self.enabled = enabled
        self.dropped = 0
        # An insertion-ordered dict used as an ordered set of display uuids.
        self._pending: dict[str, None] = {}
        self._ready = asyncio.Event()

    @property
    def depth(self) -> int:
        """Displays waiting (the `/metrics` backlog gauge)."""
        return len(self._pending)

    def submit(self, client_uuid: str) -> None:
        """Ask for the analysis of the display's latest screenshot (call after the commit; never blocks)."""
        if not self.enabled or client_uuid in self._pending:
            return
        if len(self._pending) >= self.capacity:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            self.dropped += 1
            logger.warning("screen analysis backlog full (%d displays): skipped %s", self.capacity, oldest)
        self._pending[client_uuid] = None
        self._ready.set()

    def submit_all(self, client_uuids: Iterable[str]) -> None:
        for client_uuid in client_uuids:
            self.submit(client_uuid)

    async def take(self) -> str:
        """The display that has waited longest (waits while there is none)."""
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        client_uuid = next(iter(self._pending))
        del self._pending[client_uuid]
        return client_uuid
