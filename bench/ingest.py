"""The ingest benchmark through a real Mosquitto: backlog drain and live rates, against a bare consumer.

- Backlog: the service starts once (its persistent session and subscriptions exist), stops; N QoS 1
  log messages are published while it is away; it starts again and the clock runs until all N are
  stored. The bare consumer (aiomqtt, counts only, acknowledges on receipt) does the same with its
  own persistent session: that is the ceiling this broker and machine allow.
- Live: with the service (or the bare consumer) connected, several publisher processes send logs,
  heartbeats and 100 KB JPEG screenshots as fast as QoS 1 lets them; the clock runs from the first
  publish until the last message is stored (counted).
- Logs carry no message_id, so a redelivered log would be stored twice: duplicated = rows - distinct
  sequence numbers, lost = sent - distinct. Heartbeats and screenshots are counted by the service's
  own `infoscreen_mqtt_messages_total{kind,outcome}` (stored and any other outcome).
- The service's peak RSS (VmHWM) over every process it ran in this benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import time
import urllib.request
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import asyncpg
import orjson

from bench.common import WORK_DIR, free_port, log, pg_admin, pg_url, stop_process, wait_for_port
from bench.service import ServiceServer

MOSQUITTO = os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DATABASE = "monitor_bench_ingest"
CLIENTS = 200
DEADLINE = 300.0


@dataclass(frozen=True)
class Sizes:
    backlog_logs: int
    live_logs: int
    heartbeats: int
    screenshots: int
    publishers: int = 4


QUICK = Sizes(backlog_logs=3000, live_logs=3000, heartbeats=3000, screenshots=300)
FULL = Sizes(backlog_logs=50_000, live_logs=30_000, heartbeats=30_000, screenshots=3000)


class Broker:
    """Our own mosquitto on a free port (persistence on, a queue far above the default 1000)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = WORK_DIR / f"mosquitto-{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{user}"
            f"persistence true\npersistence_location {self.directory}/\nautosave_interval 60\n"
            "max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 200\n"
            "message_size_limit 8388608\n"
            f"log_dest file {self.directory}/mosquitto.log\nlog_type error\nlog_type warning\n"
        )
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdin=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


# --- publishers (separate processes) ----------------------------------------------------------------


def _jpeg(size: int) -> bytes:
    """A JPEG of about `size` bytes: noise compresses badly, so the byte count follows the pixel count."""
    from PIL import Image

    side = 64
    while True:
        image = Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        if buffer.tell() >= size:
            return buffer.getvalue()
        side = int(side * 1.2) + 1


def _publish(
    port: int, prefix: str, kind: str, start: int, count: int, run: str, barrier: Any, image: bytes | None = None
) -> None:
    """Publish `count` QoS 1 messages of one kind, up to 200 in flight; return when all are acknowledged.

    Connection and payloads are ready before the barrier, so the clock only sees publishing. Screenshots
    are `image`, or a ~100 KB noise JPEG when None.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{run}-{kind}-{start}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if image is None:
        image = _jpeg(100 * 1024) if kind == "screenshot" else b""
    messages = []
    for sequence in range(start, start + count):
        client_uuid = f"bench-{run}-{sequence % CLIENTS:04d}"
        if kind == "logs":
            topic = f"{prefix}/{client_uuid}/logs/{('info', 'warn', 'error', 'debug')[sequence % 4]}"
            payload = orjson.dumps({"message": f"{run} seq {sequence}", "context": {"sequence": sequence}})
        elif kind == "heartbeat":
            topic = f"{prefix}/{client_uuid}/heartbeat"
            payload = orjson.dumps({"process_status": "running", "process_pid": sequence})
        else:
            topic = f"{prefix}/{client_uuid}/screenshot"
            payload = image
        messages.append((topic, payload))
    barrier.wait()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=DEADLINE)
    client.disconnect()
    client.loop_stop()


def publish(
    port: int,
    prefix: str,
    kind: str,
    total: int,
    processes: int,
    run: str,
    started: list[float] | None = None,
    image: bytes | None = None,
) -> float:
    """Publish with several processes at once; returns the seconds from the first publish to the last PUBACK.

    `started` (if given) receives the moment publishing began (time.perf_counter()); `image` (if given)
    is the screenshot payload instead of the default noise JPEG.
    """
    context = multiprocessing.get_context("spawn")
    share = -(-total // processes)
    starts = list(range(0, total, share))
    barrier = context.Barrier(len(starts) + 1)
    workers = [
        context.Process(
            target=_publish, args=(port, prefix, kind, start, min(share, total - start), run, barrier, image)
        )
        for start in starts
    ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    began = time.perf_counter()
    if started is not None:
        started.append(began)
    for worker in workers:
        worker.join(DEADLINE)
    return time.perf_counter() - began


# --- counting -------------------------------------------------------------------------------------


async def _log_counts(connection: Any) -> tuple[int, int]:
    row = await connection.fetchrow("SELECT count(*) AS n, count(DISTINCT message) AS distinct_n FROM client_logs")
    return int(row["n"]), int(row["distinct_n"])


def _metrics(port: int) -> dict[tuple[str, str], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[tuple[str, str], float] = {}
    for match in re.finditer(
        r'^infoscreen_mqtt_messages_total\{kind="([^"]+)",outcome="([^"]+)"\} ([0-9.e+]+)$', text, re.M
    ):
        out[(match.group(1), match.group(2))] = float(match.group(3))
    return out


def _ready(port: int) -> bool:
    with contextlib.suppress(OSError, ValueError):
        body = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read())
        return bool(body.get("mqtt") == "connected")
    return False


async def _wait_until(predicate: Callable[[], Any], *, within: float = DEADLINE, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


class StallWatch:
    """Stop waiting once a count has not moved for `patience` seconds (something was lost)."""

    def __init__(self, patience: float = 20.0) -> None:
        self.patience = patience
        self.last = -1.0
        self.moved = time.monotonic()

    def stalled(self, value: float) -> bool:
        if value != self.last:
            self.last, self.moved = value, time.monotonic()
        return time.monotonic() - self.moved > self.patience


# --- the bare consumer ----------------------------------------------------------------------------


class BareConsumer:
    """aiomqtt, persistent session, counts distinct payload hashes per kind; no parsing, no database."""

    def __init__(self, port: int, prefix: str, run: str) -> None:
        self.port = port
        self.prefix = prefix
        self.identifier = f"bench-bare-{run}"
        self.received = 0
        self.seen: set[int] = set()
        self.task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = 200
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
        )

    async def _run(self) -> None:
        async with self._client() as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self.subscribed.set()
            async for message in client.messages:
                self.received += 1
                self.seen.add(hash((str(message.topic), bytes(message.payload))))  # type: ignore[arg-type]

    async def start(self) -> None:
        self.subscribed = asyncio.Event()
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 30)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self.task
            self.task = None

    def reset(self) -> None:
        self.received = 0
        self.seen = set()


async def _bare_backlog(broker: Broker, sizes: Sizes, run: str) -> dict[str, Any]:
    prefix = f"bare-{run}"
    consumer = BareConsumer(broker.port, prefix, run)
    await consumer.start()  # the session and its subscription exist
    await consumer.stop()
    publish(broker.port, prefix, "logs", sizes.backlog_logs, sizes.publishers, run)
    started = time.perf_counter()
    await consumer.start()
    watch = StallWatch()

    async def done() -> bool:
        return consumer.received >= sizes.backlog_logs or watch.stalled(consumer.received)

    await _wait_until(done, interval=0.01)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return {"elapsed_s": round(elapsed, 2), "received": consumer.received, "distinct": len(consumer.seen)}


async def _bare_live(broker: Broker, kind: str, total: int, sizes: Sizes, run: str) -> dict[str, Any]:
    prefix = f"barelive-{kind}-{run}"
    consumer = BareConsumer(broker.port, prefix, f"{run}-{kind}")
    await consumer.start()
    began: list[float] = []
    publisher = asyncio.get_running_loop().run_in_executor(
        None, publish, broker.port, prefix, kind, total, sizes.publishers, run, began
    )
    watch = StallWatch()

    async def done() -> bool:
        return consumer.received >= total or watch.stalled(consumer.received)

    await _wait_until(done, interval=0.01)
    finished = time.perf_counter()
    publish_s = await publisher
    elapsed = finished - began[0]
    await consumer.stop()
    return {
        "elapsed_s": round(elapsed, 2),
        "publish_s": round(publish_s, 2),
        "received": consumer.received,
        "distinct": len(consumer.seen),
    }


# --- the service ----------------------------------------------------------------------------------


async def _service_backlog(
    broker: Broker, sizes: Sizes, run: str, mqtt_env: dict[str, str], rss: list[int]
) -> dict[str, Any]:
    database_url = pg_url(DATABASE, driver="asyncpg")
    service = ServiceServer(database_url, mqtt=mqtt_env)
    with service:  # first start: migrations, persistent session, subscriptions
        if not await _wait_until(lambda: asyncio.to_thread(_ready, service.port), within=60):
            raise RuntimeError("the service never reported mqtt connected")
    rss.append(service.peak_rss)
    service.cleanup()
    publish(broker.port, mqtt_env["MQTT_TOPIC_PREFIX"], "logs", sizes.backlog_logs, sizes.publishers, run)
    connection = await asyncpg.connect(pg_url(DATABASE))
    try:
        service = ServiceServer(database_url, mqtt=mqtt_env, port=service.port)
        started = time.perf_counter()
        service.start()
        connected_at = None
        watch = StallWatch()
        stored = distinct = 0

        async def done() -> bool:
            nonlocal connected_at, stored, distinct
            if connected_at is None and await asyncio.to_thread(_ready, service.port):
                connected_at = time.perf_counter()
            stored, distinct = await _log_counts(connection)
            service.sample_rss()
            return distinct >= sizes.backlog_logs or watch.stalled(stored)

        await _wait_until(done, interval=0.1)
        finished = time.perf_counter()
        metrics = _metrics(service.port)
        service.stop()
        rss.append(service.peak_rss)
        service.cleanup()
    finally:
        await connection.close()
    return {
        "elapsed_s": round(finished - started, 2),
        "elapsed_since_connected_s": round(finished - (connected_at or started), 2),
        "stored": stored,
        "distinct": distinct,
        "metrics": {f"{kind}/{outcome}": value for (kind, outcome), value in metrics.items()},
    }


async def _service_live(
    service: ServiceServer, broker: Broker, kind: str, total: int, sizes: Sizes, run: str, prefix: str
) -> dict[str, Any]:
    connection = await asyncpg.connect(pg_url(DATABASE))
    try:
        before_rows, before_distinct = await _log_counts(connection)
        before = _metrics(service.port)
        began: list[float] = []
        publisher = asyncio.get_running_loop().run_in_executor(
            None, publish, broker.port, prefix, kind, total, sizes.publishers, f"{run}{kind[0]}", began
        )
        watch = StallWatch()
        state: dict[str, Any] = {}

        async def done() -> bool:
            metrics = await asyncio.to_thread(_metrics, service.port)
            handled = sum(value - before.get(key, 0) for key, value in metrics.items() if key[0] == kind)
            state.update(metrics=metrics, handled=handled)
            if kind == "logs":
                rows, distinct = await _log_counts(connection)
                state.update(stored=rows - before_rows, distinct=distinct - before_distinct)
                progress = state["stored"]
            else:
                stored = metrics.get((kind, "stored"), 0) - before.get((kind, "stored"), 0)
                state.update(stored=int(stored), distinct=int(stored))
                progress = handled
            service.sample_rss()
            return progress >= total or watch.stalled(progress)

        await _wait_until(done, interval=0.05)
        finished = time.perf_counter()
        publish_s = await publisher
        elapsed = finished - began[0]
    finally:
        await connection.close()
    outcomes = {f"{k}/{o}": value - before.get((k, o), 0) for (k, o), value in state["metrics"].items() if k == kind}
    return {
        "elapsed_s": round(elapsed, 2),
        "publish_s": round(publish_s, 2),
        "stored": state["stored"],
        "distinct": state["distinct"],
        "outcomes": outcomes,
    }


def _row(
    name: str, messages: int, service: dict[str, Any], bare: dict[str, Any], *, since_connected: bool
) -> dict[str, Any]:
    service_elapsed = service["elapsed_since_connected_s" if since_connected else "elapsed_s"]
    service_rate = round(messages / service_elapsed) if service_elapsed else None
    bare_rate = round(messages / bare["elapsed_s"]) if bare["elapsed_s"] else None
    distinct = service["distinct"]
    return {
        "name": name,
        "messages": messages,
        "service_rate": service_rate,
        "bare_rate": bare_rate,
        "service_vs_bare": round(service_rate / bare_rate, 2) if service_rate and bare_rate else None,
        "stored": service["stored"],
        "lost": messages - distinct,
        "duplicated": service["stored"] - distinct,
        "bare_lost": messages - bare["distinct"],
        "bare_duplicated": bare["received"] - bare["distinct"],
        "service": service,
        "bare": bare,
    }


async def run(*, quick: bool) -> dict[str, Any]:
    if not shutil.which(MOSQUITTO):
        return {"skipped": f"no mosquitto at {MOSQUITTO}"}
    if importlib.util.find_spec("app.services.mqtt") is None:
        return {"skipped": "app.services.mqtt is not there yet"}
    sizes = QUICK if quick else FULL
    run_id = uuidlib.uuid4().hex[:6]
    await pg_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{DATABASE}"')
    broker = Broker()
    broker.start()
    rss: list[int] = []
    scenarios = []
    try:
        mqtt_env = {
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(broker.port),
            "MQTT_CLIENT_ID": f"bench-service-{run_id}",
            "MQTT_TOPIC_PREFIX": f"svc-{run_id}",
        }
        log(f"ingest: backlog of {sizes.backlog_logs} logs, bare consumer")
        bare = await _bare_backlog(broker, sizes, run_id)
        log(f"ingest: backlog of {sizes.backlog_logs} logs, service")
        service_result = await _service_backlog(broker, sizes, run_id, mqtt_env, rss)
        scenarios.append(_row("log backlog drain", sizes.backlog_logs, service_result, bare, since_connected=True))

        live = [("logs", sizes.live_logs), ("heartbeat", sizes.heartbeats), ("screenshot", sizes.screenshots)]
        service = ServiceServer(pg_url(DATABASE, driver="asyncpg"), mqtt=mqtt_env)
        with service:
            if not await _wait_until(lambda: asyncio.to_thread(_ready, service.port), within=60):
                raise RuntimeError("the service never reported mqtt connected")
            for kind, total in live:
                log(f"ingest: live {kind} x {total}, bare consumer")
                bare = await _bare_live(broker, kind, total, sizes, run_id)
                log(f"ingest: live {kind} x {total}, service")
                result = await _service_live(service, broker, kind, total, sizes, run_id, mqtt_env["MQTT_TOPIC_PREFIX"])
                scenarios.append(_row(f"live {kind}", total, result, bare, since_connected=False))
        rss.append(service.peak_rss)
        service.cleanup()
    finally:
        broker.stop()
        await pg_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    notes = [
        f"{sizes.publishers} publisher processes (paho, QoS 1, 200 in flight each), {CLIENTS} displays;"
        " screenshots are ~100 KB JPEGs sent as raw bytes.",
        "Backlog rate counts from the moment the service reports MQTT connected (its start-up is excluded);"
        " live rates from the first publish to the last message stored.",
        "The bare consumer acknowledges on receipt and stores nothing: the ceiling of broker + client library.",
    ]
    return {
        "sizes": sizes.__dict__,
        "scenarios": scenarios,
        "service_peak_rss_mb": round(max(rss, default=0) / 2**20, 1),
        "notes": notes,
    }
