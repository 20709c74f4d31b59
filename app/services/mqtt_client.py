"""aiomqtt's client adjusted for at-least-once ingestion: manual acknowledgement and backpressure.

aiomqtt 2.x acknowledges a QoS 1 message as soon as it is queued and has no manual-ack API, so
manual acknowledgement is switched on in the underlying paho client and `ack()` sends the PUBACK
once the message is stored.

The in-memory buffer is bounded twice. The CONNECT `ReceiveMaximum` asks the broker to keep at
most that many unacknowledged messages in flight to us. A broker that ignores it (mosquitto
before 2.0.13 refills the whole window on every PUBACK) is stopped by TCP instead: above the
high-water mark the client stops reading its socket, the broker's send buffer fills, and what
is left waits in the broker's queue; reading resumes once the consumer has caught up. A message
is never dropped here: a QoS 1 message dropped unacknowledged would hold an in-flight slot until
the next reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.types import PahoSocket


class _InboundQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue, unbounded for QoS 1; only QoS 0 beyond `maxsize` is dropped."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize=0)
        self.qos0_limit = maxsize

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if item.qos == 0 and self.qos0_limit and self.qsize() >= self.qos0_limit:
            raise asyncio.QueueFull
        super().put_nowait(item)


class IngestClient(aiomqtt.Client):
    """An aiomqtt client that acknowledges only on request and pauses reading above `high_water`."""

    def __init__(
        self, *args: Any, high_water: int, on_connection_lost: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(
            *args,
            queue_type=_InboundQueue,
            # QoS 0 is not bounded by ReceiveMaximum; this caps a flood of it.
            max_queued_incoming_messages=high_water * 4,
            **kwargs,
        )
        self._client.manual_ack_set(True)
        self.high_water = high_water
        self.paused = False
        # Off until the consumer runs: a resumed session floods us before the SUBACK, which must be read.
        self.flow_control = False
        self._socket_fd: int | None = None
        self.on_connection_lost = on_connection_lost

    def ack(self, message: aiomqtt.Message) -> None:
        """Send the PUBACK of a stored message (a no-op for QoS 0, or once the connection is gone)."""
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def resume_reading(self) -> None:
        """Read the socket again once the consumer has taken the backlog below the high-water mark."""
        if self.paused and self._socket_fd is not None and self._queue.qsize() < self.high_water:
            self.paused = False
            self._loop.add_reader(self._socket_fd, self._read)
            # TLS may hold already-decrypted bytes that the selector cannot see.
            self._loop.call_soon(self._read)

    def _pause_reading(self) -> None:
        if self.flow_control and not self.paused and self._socket_fd is not None:
            self.paused = True
            self._loop.remove_reader(self._socket_fd)

    def _read(self) -> None:
        """What aiomqtt's reader callback does, stopping as soon as reading is paused."""
        try:
            while not self.paused:
                self._client.loop_read()
                pending = getattr(self._client._sock, "pending", None)
                if pending is None or pending() <= 0:
                    break
        except Exception as exc:
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        super()._on_message(client, userdata, message)
        if self._queue.qsize() >= self.high_water:
            self._pause_reading()

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: PahoSocket) -> None:
        self._socket_fd = sock.fileno()
        super()._on_socket_open(client, userdata, sock)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: PahoSocket) -> None:
        self._socket_fd = None
        super()._on_socket_close(client, userdata, sock)
        # At once, even while the consumer is busy retrying the database: `/readyz` reads it.
        if self.on_connection_lost is not None:
            self.on_connection_lost()
