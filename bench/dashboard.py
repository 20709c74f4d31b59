"""`python -m bench.dashboard`: how soon the dashboard is usable at 2,000 displays, measured in chromium.

A fresh PostgreSQL database, the service (`python -m app serve`, production settings), a fleet put in
over the HTTP ingest API (heartbeats, some crashed or warning displays, a few event screenshots),
then Debian's chromium (Playwright) signs in and loads `/dashboard` again and again. Measured: from
the navigation's start to the page's `fleet-drawn` mark (set on the frame after the first overview
was drawn: every tile and the counters), by the browser's own clock. Target (issue 9): <= 1.5 s.

With `--burst`, the service also ingests MQTT from its own Mosquitto, and then: the page stays open on
the live stream while healthy displays are crashed over MQTT (`<prefix>/<uuid>/health`,
{"process_status": "crashed"}, QoS 1: the service's batched ingest), published at `--burst-rate` status
changes per second for `--burst-seconds` by one paho client in its own thread. For every `status` event
the page applies, its lag is the page's clock at that moment minus the moment that change was published
(one machine, one clock); the lag behind the event's own `at` (written by the service) is kept too.
The rate achieved is the status events the page applied per second, from the first publish to the
last event applied. Target (issue 9): 200 changes/s, p95 lag <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright

from app.simulate import render_jpeg
from bench.common import RESULTS_DIR, log, pg_admin, pg_url
from bench.ingest import Broker, _ready, _wait_until
from bench.service import ServiceServer, superadmin_token

CHROMIUM = "/usr/bin/chromium"
CONCURRENCY = 16


async def put_fleet(url: str, token: str, displays: int) -> None:
    """Every display sends a heartbeat; every 10th crashes, every 7th warns, every 50th sends an event screenshot."""
    shot = render_jpeg(["bench", "event"], color=(200, 120, 0))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(displays):
        queue.put_nowait(number)

    async def worker(api: httpx.AsyncClient) -> None:
        while not queue.empty():
            number = queue.get_nowait()
            base = f"/api/clients/bench-{number:05d}"
            heartbeat = {"hostname": f"screen-{number:05d}", "process_status": "running"}
            (await api.post(f"{base}/heartbeat", json=heartbeat)).raise_for_status()
            if number % 10 == 0:
                (await api.post(f"{base}/health", json={"process_status": "crashed"})).raise_for_status()
            if number % 7 == 0:
                (await api.post(f"{base}/logs", json={"level": "WARN", "message": "disk 91% full"})).raise_for_status()
            if number % 50 == 0:
                response = await api.post(
                    f"{base}/screenshot",
                    params={"screenshot_type": "event_start"},
                    content=shot,
                    headers={"Content-Type": "image/jpeg"},
                )
                response.raise_for_status()

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        await asyncio.gather(*(worker(api) for _ in range(CONCURRENCY)))


def healthy(number: int) -> bool:
    """A display `put_fleet` left healthy (so crashing it is a status change)."""
    return number % 10 != 0 and number % 7 != 0


def publish_paced(port: int, prefix: str, numbers: list[int], rate: int) -> tuple[float, list[float]]:
    """Crash `numbers` over MQTT, the i-th at `start + i / rate`; wait for every PUBACK.

    Returns the wall-clock start (seconds) and each message's publish time (wall clock, seconds). Runs in
    a thread: paho's network loop has its own thread, so the page's polling does not disturb the pacing.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-burst-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(30):
            raise RuntimeError("the burst publisher never connected to mosquitto")
        payload = json.dumps({"process_status": "crashed"}).encode()
        started = time.monotonic()
        wall_started = time.time()
        sent: list[float] = []
        infos = []
        for index, number in enumerate(numbers):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.time())
            infos.append(client.publish(f"{prefix}/bench-{number:05d}/health", payload, qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)
        return wall_started, sent
    finally:
        client.disconnect()
        client.loop_stop()


def percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(ordered[len(ordered) // 2], 3),
        "p95": round(ordered[max(0, -(-len(ordered) * 95 // 100) - 1)], 3),
        "max": round(ordered[-1], 3),
    }


async def measure_burst(
    page: Page, url: str, broker: tuple[int, str], displays: int, rate: int, seconds: int
) -> dict[str, Any]:
    """Status changes over MQTT at `rate` per second while the page is open; the lag of each as the page applied it."""
    await page.goto(f"{url}/dashboard")
    await page.wait_for_function("performance.getEntriesByName('fleet-drawn').length > 0", timeout=60_000)
    await page.wait_for_function("document.querySelector('#connection').dataset.connection === 'live'")
    await page.evaluate(
        """() => {
          window.benchApplied = [];
          window.addEventListener("fleet-event", (event) => {
            const data = event.detail.data;
            if (event.detail.kind !== "status") return;
            window.benchApplied.push([data.uuid, data.new, Date.now(), Date.parse(data.at)]);
          });
        }"""
    )
    targets = [number for number in range(displays) if healthy(number)][: rate * seconds]
    if len(targets) < rate * seconds:
        raise RuntimeError(f"only {len(targets)} healthy displays for {rate * seconds} changes")
    port, prefix = broker
    load_before = os.getloadavg()
    wall_started, sent = await asyncio.to_thread(publish_paced, port, prefix, targets, rate)
    sent_seconds = sent[-1] - wall_started
    published_at = {f"bench-{number:05d}": moment for number, moment in zip(targets, sent, strict=True)}
    deadline = time.monotonic() + 60
    applied: dict[str, tuple[str, float, float]] = {}
    while time.monotonic() < deadline:
        rows = await page.evaluate("window.benchApplied")
        applied = {row[0]: (row[1], row[2] / 1000, row[3] / 1000) for row in rows if row[0] in published_at}
        if len(applied) >= len(targets):
            break
        await asyncio.sleep(0.2)
    lag_publish = [at - published_at[name] for name, (_, at, _) in applied.items()]
    lag_event = [at - event_at for _, at, event_at in applied.values()]
    last_applied = max((at for _, at, _ in applied.values()), default=wall_started)
    statuses = sorted({status for status, _, _ in applied.values()})
    from_publish = percentiles(lag_publish)
    from_event = percentiles(lag_event)
    return {
        "transport": "mqtt (QoS 1, <prefix>/<uuid>/health)",
        "changes_sent": len(targets),
        "sent_in_seconds": round(sent_seconds, 2),
        "sent_per_second": round(len(targets) / sent_seconds, 1) if sent_seconds > 0 else None,
        "status_events_applied": len(applied),
        "applied_statuses": statuses,
        "applied_in_seconds": round(last_applied - wall_started, 2),
        "applied_per_second": round(len(applied) / (last_applied - wall_started), 1) if applied else None,
        "lag_p50_seconds": from_publish["p50"],
        "lag_p95_seconds": from_publish["p95"],
        "lag_max_seconds": from_publish["max"],
        "lag_behind_event_at": from_event,
        "target_p95_seconds": 2.0,
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }


async def measure(
    url: str,
    token: str,
    displays: int,
    runs: int,
    burst: tuple[int, int] | None,
    broker: tuple[int, str] | None,
) -> tuple[list[float], dict[str, Any] | None]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # bypass_csp: Playwright polls `wait_for_function` with eval, which the page's policy forbids.
            page = await browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
            await page.goto(f"{url}/login")
            await page.fill('input[name="token"]', token)
            async with page.expect_navigation():
                await page.click('button[type="submit"]')
            timings = []
            for _ in range(runs + 1):  # the first load warms the service's and the browser's caches
                await page.goto(f"{url}/dashboard")
                await page.wait_for_function("performance.getEntriesByName('fleet-drawn').length > 0", timeout=60_000)
                drawn = await page.evaluate("performance.getEntriesByName('fleet-drawn')[0].startTime")
                tiles = await page.locator(".tile").count()
                total = await page.locator("[data-summary=totalClients] .value").inner_text()
                if tiles != displays or total != str(displays):
                    raise RuntimeError(f"drawn {tiles} tiles, counter {total}; expected {displays}")
                timings.append(float(drawn) / 1000)
            lag = await measure_burst(page, url, broker, displays, *burst) if burst and broker else None
            return timings[1:], lag
        finally:
            await browser.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--displays", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--burst", action="store_true", help="then measure the lag of a burst of status changes")
    parser.add_argument("--burst-rate", type=int, default=200, help="status changes per second")
    parser.add_argument("--burst-seconds", type=int, default=5)
    args = parser.parse_args()
    name = f"monitor_bench_dashboard_{uuid.uuid4().hex[:8]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    database_url = pg_url(name, driver="asyncpg")
    broker = Broker() if args.burst else None
    mqtt_env = None
    if broker is not None:
        broker.start()
        run_id = uuid.uuid4().hex[:6]
        mqtt_env = {
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(broker.port),
            "MQTT_CLIENT_ID": f"bench-dashboard-{run_id}",
            "MQTT_TOPIC_PREFIX": f"dash-{run_id}",
        }
    server = ServiceServer(database_url, mqtt=mqtt_env)
    try:
        server.start()  # uvicorn listens once the lifespan (migrations included) has started
        if broker is not None and not await _wait_until(lambda: asyncio.to_thread(_ready, server.port), within=60):
            raise RuntimeError("the service never reported mqtt connected")
        token = await superadmin_token(database_url)
        log(f"putting in {args.displays} displays")
        await put_fleet(f"http://127.0.0.1:{server.port}", token, args.displays)
        burst = (args.burst_rate, args.burst_seconds) if args.burst else None
        mqtt_target = (broker.port, mqtt_env["MQTT_TOPIC_PREFIX"]) if broker and mqtt_env else None
        timings, lag = await measure(
            f"http://127.0.0.1:{server.port}", token, args.displays, args.runs, burst, mqtt_target
        )
    finally:
        server.stop()
        server.cleanup()
        if broker is not None:
            broker.stop()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result: dict[str, Any] = {
        "benchmark": "dashboard first draw",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "displays": args.displays,
        "runs_seconds": [round(value, 3) for value in timings],
        "median_seconds": round(statistics.median(timings), 3),
        "max_seconds": round(max(timings), 3),
        "target_seconds": 1.5,
        "burst": lag,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "dashboard-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    log(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
