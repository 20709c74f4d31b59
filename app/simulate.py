"""A simulated display fleet over MQTT: `python -m app simulate --displays N`.

Each display is its own MQTT v5 connection with a last will (`offline` on its status topic) and
publishes `online` when it connects. Every tick it sends a heartbeat and a few log lines (with
`message_id`s), now and then a health change, a real JPEG periodic screenshot, and around
scheduled events an `event_start` / `event_stop` priority screenshot (on the screenshot or the
dashboard topic). A share of the fleet misbehaves: crashing players, black or frozen screens,
warnings, displays going dark (heartbeats stop) and displays dropping off (their will fires).

On a broker with accounts (deploy/mosquitto.conf) each display logs in as itself: `credentials` maps
each uuid to its MQTT password, read from the lines `python -m app devices add UUID --json` printed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import logging
import random
import ssl
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from PIL import Image, ImageDraw

from app.services.mqtt_connection import describe_failure

logger = logging.getLogger("app.simulate")

# What share of the fleet behaves how; the rest is healthy.
BEHAVIOURS = (
    ("crashing", 0.08),
    ("black_screen", 0.05),
    ("frozen_screen", 0.05),
    ("warning", 0.12),
    ("dark", 0.05),
    ("drop_off", 0.05),
)
LEVELS_BY_BEHAVIOUR = {
    "healthy": ("info", "debug"),
    "warning": ("info", "debug", "warn", "warning"),
    "crashing": ("info", "error", "warn", "debug"),
}
MESSAGES = {
    "info": ("playlist advanced", "content synced", "schedule loaded", "display woke up"),
    "debug": ("render took 12 ms", "cache hit ratio 0.93", "mqtt keepalive"),
    "warn": ("network latency high", "disk 91% full", "content download retried"),
    "warning": ("temperature 71 C", "clock drift 2 s"),
    "error": ("player crashed: segmentation fault", "content download failed", "HDMI link lost"),
}
SCREENSHOT_EVERY_TICKS = 6


@dataclass
class SimulationOptions:
    displays: int
    host: str = "localhost"
    port: int = 1883
    rate: float = 0.2  # ticks per second per display
    duration: float = 60.0
    prefix: str = "infoscreen"
    username: str | None = None
    password: str | None = None
    seed: int | None = None
    # uuid -> MQTT password: each display then connects as itself (the fleet is these displays).
    credentials: dict[str, str] | None = None
    tls: ssl.SSLContext | None = None


class CredentialsError(ValueError):
    """A credentials file that cannot be read as `devices add --json` output."""


def load_credentials(path: Path) -> dict[str, str]:
    """uuid -> MQTT password from `devices add --json` lines (or a JSON array of them, or a uuid->password map)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from None
    try:
        value: Any = json.loads(text)
        entries: list[Any] = value if isinstance(value, list) else [value]
    except ValueError:
        try:  # JSON lines, as `devices add --json >> file` appends them
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise CredentialsError(f"{path} is not JSON (lines from `devices add --json`): {exc}") from None
    credentials: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("mqtt_password"), str):
            username = entry.get("mqtt_username") or entry.get("uuid")
            if isinstance(username, str):
                credentials[username] = entry["mqtt_password"]
                continue
        if isinstance(entry, dict) and entry and all(isinstance(v, str) for v in entry.values()):
            credentials.update(entry)  # a plain {"uuid": "password", ...} map
            continue
        raise CredentialsError(f"{path}: expected objects with mqtt_username and mqtt_password, got {entry!r:.80}")
    if not credentials:
        raise CredentialsError(f"{path} holds no credentials")
    return credentials


@dataclass
class Stats:
    published: Counter[str] = field(default_factory=Counter)
    failures: int = 0


def assign_behaviours(count: int, rng: random.Random) -> list[str]:
    """Exact shares (at least one display each when the fleet is big enough), shuffled."""
    behaviours: list[str] = []
    for name, share in BEHAVIOURS:
        behaviours += [name] * max(1 if count >= 2 * len(BEHAVIOURS) else 0, round(count * share))
    behaviours = behaviours[:count]
    behaviours += ["healthy"] * (count - len(behaviours))
    rng.shuffle(behaviours)
    return behaviours


def sample_jpeg() -> bytes:
    """A screenshot like the simulator's, to post over HTTP (`simulate --write-jpeg shot.jpg`)."""
    return render_jpeg(["infoscreen-lobby", datetime.now(UTC).strftime("%H:%M:%S UTC"), "sample"], color=(40, 60, 140))


def render_jpeg(lines: list[str], *, color: tuple[int, int, int]) -> bytes:
    """A small real JPEG (320x180) showing what the display would show."""
    image = Image.new("RGB", (320, 180), color)
    draw = ImageDraw.Draw(image)
    for number, text in enumerate(lines):
        draw.text((12, 12 + 22 * number), text, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


class SimulatedDisplay:
    def __init__(
        self,
        number: int,
        behaviour: str,
        options: SimulationOptions,
        rng: random.Random,
        identity: tuple[str, str] | None = None,
    ) -> None:
        generated = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # With an identity (uuid, password) the display logs in as itself; else the shared account, if any.
        self.uuid = identity[0] if identity else generated
        self.username = identity[0] if identity else options.username
        self.password = identity[1] if identity else options.password
        self.hostname = f"infoscreen-{number:04d}"
        self.ip = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
        self.behaviour = behaviour
        self.options = options
        self.rng = rng
        self.topic = f"{options.prefix}/{self.uuid}"
        self.sequence = itertools.count()
        self.event_id: int | None = None
        self.pid = rng.randint(300, 30000)
        self.process_status = "running"
        # Misbehaviour starts somewhere in the first half of the run.
        self.trouble_at = time.monotonic() + rng.uniform(0.1, 0.5) * options.duration

    def client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.options.host,
            self.options.port,
            identifier=f"display-{self.uuid}",
            username=self.username,
            password=self.password,
            tls_context=self.options.tls,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(f"{self.topic}/status", b"offline", qos=1),
            keepalive=30,
            timeout=10,
        )

    async def run(self, stats: Stats, stop_at: float) -> None:
        try:
            async with self.client() as client:
                await self._publish(client, stats, "status", b"online")
                await self._publish(client, stats, "heartbeat", self._heartbeat(model=True))
                await self._loop(client, stats, stop_at)
        except aiomqtt.MqttError as exc:
            stats.failures += 1
            _, line = describe_failure(exc, host=self.options.host, port=self.options.port)
            logger.warning("display %s (%s): %s", self.hostname, self.uuid, line)
        except Exception:  # one display's bug must not end the whole simulation
            stats.failures += 1
            logger.exception("display %s failed", self.hostname)

    async def _loop(self, client: aiomqtt.Client, stats: Stats, stop_at: float) -> None:
        interval = 1.0 / self.options.rate
        await asyncio.sleep(self.rng.uniform(0, interval))
        for tick in itertools.count():
            if time.monotonic() >= stop_at:
                return
            troubled = time.monotonic() >= self.trouble_at
            if troubled and self.behaviour == "drop_off":
                # A disconnect "with will message" (MQTT v5 reason 4): the broker publishes our `offline`.
                client._client.disconnect(  # noqa: SLF001 - aiomqtt has no reason-code disconnect
                    reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
                )
                stats.published["dropped_off"] += 1
                return
            # A dark display stays connected but sends nothing (its agent hangs): offline after the grace.
            if not (troubled and self.behaviour == "dark"):
                await self._publish(client, stats, "heartbeat", self._heartbeat())
                await self._logs(client, stats, troubled)
                await self._health(client, stats, troubled, tick)
                await self._events(client, stats)
                if tick % SCREENSHOT_EVERY_TICKS == 0:
                    await self._screenshot(client, stats, "periodic")
            await asyncio.sleep(interval * self.rng.uniform(0.8, 1.2))

    def _heartbeat(self, *, model: bool = False) -> bytes:
        body: dict[str, object] = {
            "hostname": self.hostname,
            "ip": self.ip,
            "current_process": "chromium-kiosk",
            "process_pid": self.pid,
            "process_status": self.process_status,
        }
        if model:
            body["model"] = self.rng.choice(("Raspberry Pi 4", "Intel NUC", "Odroid N2"))
        if self.event_id is not None:
            body["current_event_id"] = self.event_id
        return json.dumps(body).encode()

    async def _logs(self, client: aiomqtt.Client, stats: Stats, troubled: bool) -> None:
        kind = self.behaviour if troubled and self.behaviour in LEVELS_BY_BEHAVIOUR else "healthy"
        for _ in range(self.rng.randint(1, 3)):
            level = self.rng.choice(LEVELS_BY_BEHAVIOUR[kind])
            message = self.rng.choice(MESSAGES[level])
            body = {
                "message": message,
                "context": {"hostname": self.hostname, "uptime": int(time.monotonic())},
                "timestamp": datetime.now(UTC).isoformat(),
                "message_id": f"{self.uuid[:8]}-{next(self.sequence)}",
            }
            if self.rng.random() < 0.1:
                # Some displays still send plain-string logs.
                await self._publish(client, stats, f"logs/{level}", message.encode(), kind="logs")
            else:
                await self._publish(client, stats, f"logs/{level}", json.dumps(body).encode(), kind="logs")

    def screen_status(self) -> str:
        if time.monotonic() < self.trouble_at:
            return "OK"
        return {"black_screen": "BLACK", "frozen_screen": "FROZEN"}.get(self.behaviour, "OK")

    async def _health(self, client: aiomqtt.Client, stats: Stats, troubled: bool, tick: int) -> None:
        if tick % 3:
            return
        if troubled and self.behaviour == "crashing":
            self.process_status = "crashed"  # until a technician restarts it
        elif troubled and self.behaviour == "warning":
            self.process_status = self.rng.choice(("starting", "stopped"))
        health = {
            "process_status": self.process_status,
            "screen_health_status": self.screen_status(),
            "process_pid": self.pid,
        }
        await self._publish(client, stats, "health", json.dumps(health).encode())

    async def _events(self, client: aiomqtt.Client, stats: Stats) -> None:
        """Scheduled events start and stop now and then, each with its priority screenshot."""
        if self.event_id is None and self.rng.random() < 0.08:
            self.event_id = self.rng.randint(1000, 9999)
            await self._screenshot(client, stats, "event_start")
        elif self.event_id is not None and self.rng.random() < 0.15:
            await self._screenshot(client, stats, "event_stop")
            self.event_id = None

    async def _screenshot(self, client: aiomqtt.Client, stats: Stats, screenshot_type: str) -> None:
        black = self.screen_status() == "BLACK"
        image = render_jpeg(
            [self.hostname, datetime.now(UTC).strftime("%H:%M:%S UTC"), f"event {self.event_id or '-'}"],
            color=(0, 0, 0) if black else (20 + zlib.crc32(self.uuid.encode()) % 120, 60, 140),
        )
        captured = datetime.now(UTC).isoformat()
        body: dict[str, object]
        choice = self.rng.random()
        if screenshot_type == "periodic" and choice < 0.4:
            await self._publish(client, stats, "screenshot", image, kind="screenshot_raw")
        elif choice < 0.7:
            body = {
                "image": base64.b64encode(image).decode(),
                "screenshot_type": screenshot_type,
                "timestamp": captured,
            }
            await self._publish(
                client, stats, "screenshot", json.dumps(body).encode(), kind=f"screenshot_{screenshot_type}"
            )
        else:
            body = {
                "screenshot": {"data": base64.b64encode(image).decode(), "timestamp": captured},
                "screenshot_type": screenshot_type,
                "health": {"screen_health_status": self.screen_status(), "process_status": self.process_status},
            }
            await self._publish(
                client, stats, "dashboard", json.dumps(body).encode(), kind=f"dashboard_{screenshot_type}"
            )

    async def _publish(
        self, client: aiomqtt.Client, stats: Stats, suffix: str, payload: bytes, *, kind: str | None = None
    ) -> None:
        await client.publish(f"{self.topic}/{suffix}", payload, qos=1)
        stats.published[kind or suffix] += 1


async def simulate(options: SimulationOptions) -> Stats:
    """Run the fleet for `options.duration` seconds; returns what was published."""
    rng = random.Random(options.seed)
    identities: list[tuple[str, str] | None] = [None] * options.displays
    if options.credentials:
        identities = list(options.credentials.items())
    behaviours = assign_behaviours(len(identities), rng)
    displays = [
        SimulatedDisplay(number, behaviour, options, rng, identity)
        for number, (behaviour, identity) in enumerate(zip(behaviours, identities, strict=True))
    ]
    logger.info(
        "simulating %d displays against %s:%d under %r for %.0f s: %s",
        len(displays),
        options.host,
        options.port,
        options.prefix,
        options.duration,
        dict(Counter(behaviours)),
    )
    stats = Stats()
    stop_at = time.monotonic() + options.duration
    async with asyncio.TaskGroup() as group:
        for display in displays:
            group.create_task(display.run(stats, stop_at))
    logger.info(
        "published %d messages: %s (%d connection failures)",
        stats.published.total(),
        dict(stats.published),
        stats.failures,
    )
    return stats
