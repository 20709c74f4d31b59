"""`python -m bench.screen_analysis [--quick]`: screen analysis accuracy, CPU cost and worker throughput.

- Accuracy on the generated, labelled set (`app/services/screen_analysis_samples.py`) at 1080p:
  precision and recall of BLACK on single screenshots, the share of dark-but-real content called
  BLACK, and precision and recall of OK / BLACK / FROZEN over display sequences (static slides,
  slide changes, events that start while the screen stays, black screens).
- CPU: process time of `measure` per 1080p screenshot (JPEG; lossless and noised PNG), split into the
  decode and the statistics; best and median over rounds (the machine may be shared).
- Worker: the production worker on a SQLite database, draining a backlog of displays each with a
  new 1080p screenshot (as at start-up): analyses per second, with reading the files and the statements.
- Ingest with analysis on and off (alternating, `--repeats`): the app (in this process, PostgreSQL,
  its own Mosquitto) stores 1080p slide JPEGs of ~100 KB that 4 publisher processes send for 200
  displays (the ingest benchmark's publishers); screenshots/s from the first publish to the last row
  stored, the app's CPU, and how long the analysis of every display's latest screenshot takes after.
- `--fleet` only: a fleet's steady flow (2,000 displays' one screenshot per 5 minutes, and 4x that):
  every screenshot analysed, the delay from storing to analysis, the deepest backlog.

Results: bench/results/screen-analysis-<time>.json and .md, plus latest-screen-analysis.json/.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import text

from app.config import Settings
from app.main import create_app
from app.services.screen_analysis import ANALYSES, decode_grey, is_black, measure, measure_grey
from app.services.screen_analysis_queue import AnalysisQueue
from app.services.screen_analysis_samples import (
    DARK_REAL_KINDS,
    IMAGE_KINDS,
    SIZE_1080P,
    bright_slide_scene,
    images,
    replay,
    scenarios,
)
from app.services.screen_analysis_worker import ScreenAnalysisWorker
from app.services.screenshots import store_screenshot
from app.state import AppState
from bench.common import RESULTS_DIR, log, machine_info, pg_admin, pg_url
from bench.ingest import CLIENTS, Broker, publish

FROZEN_AFTER = 3


def _precision_recall(pairs: list[tuple[str, str]], label: str) -> dict[str, Any]:
    true_positive = sum(1 for expected, got in pairs if expected == label and got == label)
    predicted = sum(1 for _, got in pairs if got == label)
    actual = sum(1 for expected, _ in pairs if expected == label)
    return {
        "support": actual,
        "predicted": predicted,
        "precision": round(true_positive / predicted, 4) if predicted else None,
        "recall": round(true_positive / actual, 4) if actual else None,
    }


def accuracy(*, per_kind: int, sequences_per_kind: int) -> dict[str, Any]:
    labelled = list(images(per_kind=per_kind, size=SIZE_1080P))
    black = [is_black(measure(item.image)) for item in labelled]
    single = [(item.label, "BLACK" if found else "OK") for item, found in zip(labelled, black, strict=True)]
    called_black = Counter(item.kind for item, found in zip(labelled, black, strict=True) if found)
    dark = [item for item in labelled if item.kind in DARK_REAL_KINDS]
    dark_black = sum(called_black[kind] for kind in DARK_REAL_KINDS)
    outcomes: list[tuple[str, str, str]] = []
    for scenario in scenarios(per_kind=sequences_per_kind, size=SIZE_1080P):
        for step, (analysis, _) in zip(scenario.steps, replay(scenario.steps, frozen_after=FROZEN_AFTER), strict=True):
            outcomes.append((scenario.kind, step.label, analysis))
    pairs = [(expected, got) for _, expected, got in outcomes]
    static = [got for kind, _, got in outcomes if kind == "static_slide"]
    return {
        "images": len(labelled),
        "black_on_images": _precision_recall(single, "BLACK"),
        "called_black_by_kind": dict(called_black),
        "dark_real": len(dark),
        "dark_real_called_black": dark_black,
        "dark_real_called_black_share": round(dark_black / len(dark), 4) if dark else None,
        "sequence_screenshots": len(outcomes),
        "sequences": {label: _precision_recall(pairs, label) for label in ANALYSES},
        "static_slide_screenshots": len(static),
        "static_slide_called_frozen": static.count("FROZEN"),
        "errors": [list(item) for item in outcomes if item[1] != item[2]][:20],
    }


def _cpu_ms(samples: list[bytes], rounds: int) -> dict[str, Any]:
    """Process time per image of `measure` and of its two steps, over `rounds` rounds of every sample.

    The machine is shared, so each figure is given for the best round (the least disturbed) and as the
    median over the rounds; p95 is over every single measurement.
    """
    totals: list[float] = []
    round_means: dict[str, list[float]] = {"measure": [], "decode": [], "statistics": []}
    for _ in range(rounds):
        spent = dict.fromkeys(round_means, 0.0)
        for data in samples:
            started = time.process_time()
            measure(data)
            total = (time.process_time() - started) * 1000
            totals.append(total)
            spent["measure"] += total
            started = time.process_time()
            grey = decode_grey(data)
            decoded = time.process_time()
            measure_grey(grey)
            spent["decode"] += (decoded - started) * 1000
            spent["statistics"] += (time.process_time() - decoded) * 1000
        for name, value in spent.items():
            round_means[name].append(value / len(samples))
    totals.sort()
    return {
        "n": len(totals),
        "rounds": rounds,
        "best_ms": round(min(round_means["measure"]), 2),
        "median_ms": round(statistics.median(round_means["measure"]), 2),
        "p95_ms": round(totals[int(len(totals) * 0.95) - 1], 2),
        "decode_median_ms": round(statistics.median(round_means["decode"]), 2),
        "statistics_median_ms": round(statistics.median(round_means["statistics"]), 2),
        "mean_kb": round(statistics.fmean(len(data) for data in samples) / 1024, 1),
    }


def _png(data: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="PNG")
    return buffer.getvalue()


def _lossless_pngs(per_kind: int) -> list[bytes]:
    """Each kind's scene as a screen capture would save it: the rendered pixels, no noise, PNG."""
    rng = np.random.default_rng(3)
    shots = []
    for make, _ in IMAGE_KINDS.values():
        for _ in range(per_kind):
            buffer = io.BytesIO()
            pixels = np.clip(make(rng, SIZE_1080P).pixels, 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
            shots.append(buffer.getvalue())
    return shots


def cpu(*, per_kind: int, rounds: int) -> dict[str, Any]:
    """`measure` on 1080p screenshots of every kind of the labelled set: as JPEG (noised, as captured and
    compressed), the same noised images as PNG (the worst case: noise defeats PNG's filters and deflate),
    and the noise-free rendered scenes as PNG (a lossless screen capture)."""
    jpegs = [item.image for item in images(per_kind=per_kind, size=SIZE_1080P, seed=99)]
    return {
        "jpeg_1080p": _cpu_ms(jpegs, rounds),
        "png_1080p_lossless_capture": _cpu_ms(_lossless_pngs(max(per_kind // 3, 1)), rounds),
        "png_1080p_noised": _cpu_ms([_png(data) for data in jpegs[::3]], rounds),
    }


async def worker_throughput(displays: int) -> dict[str, Any]:
    """Displays each with a new 1080p screenshot, then the worker drains them all."""
    rng = np.random.default_rng(5)
    shots = [bright_slide_scene(rng, SIZE_1080P).capture(rng, quality=90) for _ in range(min(displays, 20))]
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DATA_DIR=Path(directory),
            MQTT_ENABLED=False,
            SCREEN_ANALYSIS_ENABLED=False,
            LOG_LEVEL="WARNING",
            INITIAL_SUPERADMIN_TOKEN="bench-screen-analysis-0123456789abcdef",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            state: AppState = app.state.monitor
            for number in range(displays):
                async with state.session_factory() as session, session.begin():
                    await store_screenshot(
                        session,
                        settings=settings,
                        client_uuid=f"display-{number:05d}",
                        image=shots[number % len(shots)],
                        screenshot_type="periodic",
                        captured_at=None,
                        now=state.now(),
                    )
            queue = AnalysisQueue(capacity=displays, enabled=True)
            worker = ScreenAnalysisWorker(
                settings=settings, session_factory=state.session_factory, clock=state.now, queue=queue
            )
            wall, cpu_started = time.perf_counter(), time.process_time()
            await worker.resume()
            while queue.depth:
                await worker.analyse_latest(await queue.take())
            assert worker.analysed == displays
            elapsed, cpu_used = time.perf_counter() - wall, time.process_time() - cpu_started
    return {
        "displays": displays,
        "mean_kb": round(statistics.fmean(len(data) for data in shots) / 1024, 1),
        "elapsed_s": round(elapsed, 2),
        "analyses_per_s": round(displays / elapsed, 1),
        "cpu_ms_per_analysis": round(cpu_used * 1000 / displays, 2),
        "needed_per_s_for_2000_displays_every_5_min": round(2000 / 300, 1),
    }


INGEST_DATABASE = "monitor_bench_screen_analysis"


async def _wait(predicate: Any, *, within: float = 300.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


def ingest_image() -> bytes:
    """What the ingest runs send: a 1080p slide as a ~100 KB JPEG (quality 85), the size the target names."""
    rng = np.random.default_rng(5)
    return bright_slide_scene(rng, SIZE_1080P).capture(rng, quality=85)


async def ingest_screenshots(total: int, *, analysis: bool, image: bytes) -> dict[str, Any]:
    """MQTT screenshot ingest through the real app with screen analysis on or off."""
    await pg_admin(f'DROP DATABASE IF EXISTS "{INGEST_DATABASE}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{INGEST_DATABASE}"')
    broker = Broker()
    broker.start()
    run = f"sa{int(time.time())}{int(analysis)}"
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                DATABASE_URL=pg_url(INGEST_DATABASE, driver="asyncpg"),
                DATA_DIR=Path(directory),
                MQTT_ENABLED=True,
                MQTT_HOST="127.0.0.1",
                MQTT_PORT=broker.port,
                MQTT_TOPIC_PREFIX=run,
                MQTT_CLIENT_ID=f"monitor-{run}",
                SCREEN_ANALYSIS_ENABLED=analysis,
                LOG_LEVEL="WARNING",
                INITIAL_SUPERADMIN_TOKEN="bench-screen-analysis-0123456789abcdef",
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                state: AppState = app.state.monitor

                async def scalar(sql: str) -> int:
                    async with state.session_factory() as session:
                        return int((await session.execute(text(sql))).scalar_one())

                async def connected() -> bool:
                    return state.mqtt.connected

                await _wait(connected, within=60)
                started: list[float] = []
                cpu_started = time.process_time()
                publishing = asyncio.get_running_loop().run_in_executor(
                    None, publish, broker.port, run, "screenshot", total, 4, run, started, image
                )

                async def stored() -> bool:
                    return await scalar("SELECT count(*) FROM screenshots") >= total

                complete = await _wait(stored)
                stored_at, cpu_stored = time.perf_counter(), time.process_time()
                await publishing
                unanalysed_latest = (
                    "SELECT count(*) FROM clients JOIN screenshots ON screenshots.id = clients.latest_screenshot_id"
                    " WHERE screenshots.analysis IS NULL"
                )
                backlog_at_end = await scalar(unanalysed_latest)

                async def analysed() -> bool:
                    return await scalar(unanalysed_latest) == 0

                drained = await _wait(analysed) if analysis else False
                drained_at, cpu_drained = time.perf_counter(), time.process_time()
                analysed_rows = await scalar("SELECT count(*) FROM screenshots WHERE analysis IS NOT NULL")
    finally:
        broker.stop()
        await pg_admin(f'DROP DATABASE IF EXISTS "{INGEST_DATABASE}" WITH (FORCE)')
    elapsed = stored_at - started[0]
    return {
        "analysis": analysis,
        "screenshots": total,
        "displays": CLIENTS,
        "all_stored": complete,
        "image_kb": round(len(image) / 1024, 1),
        "screenshots_per_s": round(total / elapsed, 1),
        # The app's process (the publishers are other processes): CPU while storing, and until drained.
        "cpu_ms_per_screenshot_stored": round((cpu_stored - cpu_started) * 1000 / total, 2),
        "cpu_s_after_last_stored": round(cpu_drained - cpu_stored, 2),
        "unanalysed_latest_when_all_stored": backlog_at_end,
        "analysed_screenshots": analysed_rows,
        "latest_analysed_s_after_last_stored": round(drained_at - stored_at, 2) if drained else None,
    }


FLEET_DISPLAYS = 2000
FLEET_PERIOD_S = 300.0


def _publish_paced(port: int, prefix: str, run: str, rate: float, total: int, image: bytes) -> None:
    """Publish `total` screenshots at `rate` per second, each from a display of its own (a fleet's steady flow)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-fleet-{run}", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    began = time.perf_counter()
    infos = []
    for number in range(total):
        delay = began + number / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        infos.append(client.publish(f"{prefix}/fleet-{run}-{number % FLEET_DISPLAYS:05d}/screenshot", image, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.disconnect()
    client.loop_stop()


async def fleet(*, scale: float, seconds: float, image: bytes) -> dict[str, Any]:
    """A fleet's steady flow, `scale` times 2,000 displays' one screenshot per 5 minutes, for `seconds`:
    is every screenshot analysed, how soon after it was stored, and how deep does the backlog get?"""
    rate = FLEET_DISPLAYS / FLEET_PERIOD_S * scale
    total = int(rate * seconds)
    await pg_admin(f'DROP DATABASE IF EXISTS "{INGEST_DATABASE}" WITH (FORCE)')
    await pg_admin(f'CREATE DATABASE "{INGEST_DATABASE}"')
    broker = Broker()
    broker.start()
    run = f"fl{int(time.time())}"
    depths: list[int] = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                DATABASE_URL=pg_url(INGEST_DATABASE, driver="asyncpg"),
                DATA_DIR=Path(directory),
                MQTT_ENABLED=True,
                MQTT_HOST="127.0.0.1",
                MQTT_PORT=broker.port,
                MQTT_TOPIC_PREFIX=run,
                MQTT_CLIENT_ID=f"monitor-{run}",
                SCREEN_ANALYSIS_ENABLED=True,
                LOG_LEVEL="WARNING",
                INITIAL_SUPERADMIN_TOKEN="bench-screen-analysis-0123456789abcdef",
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                state: AppState = app.state.monitor

                async def scalar(sql: str) -> int:
                    async with state.session_factory() as session:
                        return int((await session.execute(text(sql))).scalar_one())

                async def connected() -> bool:
                    return state.mqtt.connected

                await _wait(connected, within=60)
                context = multiprocessing.get_context("spawn")
                publisher = context.Process(target=_publish_paced, args=(broker.port, run, run, rate, total, image))
                cpu_started = time.process_time()
                publisher.start()

                async def analysed() -> bool:
                    depths.append(state.analysis.depth)
                    return await scalar("SELECT count(*) FROM screenshots WHERE analysis IS NOT NULL") >= total

                complete = await _wait(analysed, within=seconds + 120, interval=0.5)
                cpu_used = time.process_time() - cpu_started
                await asyncio.get_running_loop().run_in_executor(None, publisher.join, 60)
                async with state.session_factory() as session:
                    delays = sorted(
                        float(value)
                        for value in (
                            await session.execute(
                                text(
                                    "SELECT EXTRACT(EPOCH FROM analysed_at - received_at) FROM screenshots"
                                    " WHERE analysis IS NOT NULL"
                                )
                            )
                        ).scalars()
                    )
                stored = await scalar("SELECT count(*) FROM screenshots")
    finally:
        broker.stop()
        await pg_admin(f'DROP DATABASE IF EXISTS "{INGEST_DATABASE}" WITH (FORCE)')
    return {
        "scale": scale,
        "rate_per_s": round(rate, 2),
        "seconds": seconds,
        "screenshots": total,
        "stored": stored,
        "analysed": len(delays),
        "all_analysed": complete,
        "delay_p50_ms": round(delays[len(delays) // 2] * 1000, 1) if delays else None,
        "delay_p95_ms": round(delays[int(len(delays) * 0.95) - 1] * 1000, 1) if delays else None,
        "delay_max_ms": round(delays[-1] * 1000, 1) if delays else None,
        "max_backlog": max(depths, default=0),
        "cpu_ms_per_screenshot": round(cpu_used * 1000 / total, 2),
        "cpu_share_of_a_core": round(cpu_used / seconds, 3),
    }


def _fleet_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"## A fleet's steady flow ({FLEET_DISPLAYS:,} displays, one screenshot each per"
        f" {FLEET_PERIOD_S / 60:g} minutes, and multiples)",
        "",
        "Screenshots published at a steady rate over MQTT, each from a display of its own; delay = analysed_at -"
        " received_at. CPU: the app's process (ingest and analysis together).",
        "",
        "| scale | screenshots/s | s | screenshots | analysed | delay p50 ms | p95 ms | max ms | max backlog |"
        " CPU ms per screenshot | share of a core |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['scale']}× | {row['rate_per_s']} | {row['seconds']} | {row['screenshots']} | {row['analysed']} |"
            f" {row['delay_p50_ms']} | {row['delay_p95_ms']} | {row['delay_max_ms']} | {row['max_backlog']} |"
            f" {row['cpu_ms_per_screenshot']} | {row['cpu_share_of_a_core']} |"
        )
    return [*lines, ""]


def _accuracy_lines(acc: dict[str, Any]) -> list[str]:
    black = acc["black_on_images"]
    lines = [
        f"## Accuracy (generated set, 1080p, FROZEN_AFTER_SCREENSHOTS={FROZEN_AFTER})",
        "",
        "| set | class | support | predicted | precision | recall |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {acc['images']} single screenshots | BLACK | {black['support']} | {black['predicted']} |"
        f" {black['precision']} | {black['recall']} |",
    ]
    for label, scores in acc["sequences"].items():
        lines.append(
            f"| {acc['sequence_screenshots']} screenshots in sequences | {label} | {scores['support']} |"
            f" {scores['predicted']} | {scores['precision']} | {scores['recall']} |"
        )
    return [
        *lines,
        "",
        f"Dark but real content called BLACK: {acc['dark_real_called_black']} of {acc['dark_real']}"
        f" ({acc['dark_real_called_black_share']}). Static slides (no event change) called FROZEN:"
        f" {acc['static_slide_called_frozen']} of {acc['static_slide_screenshots']}.",
        "",
    ]


def _cpu_lines(cost: dict[str, Any]) -> list[str]:
    lines = [
        "## CPU per screenshot (`measure`: decode to a small grey copy, then statistics and perceptual hash)",
        "",
        "Process time per image: the best round and the median of the rounds (the machine is shared), p95 over"
        " every measurement, and the median round split into the decode (`decode_grey`) and the rest.",
        "",
        "| image | n | rounds | mean KB | best ms | median ms | p95 ms | decode ms | statistics + hash ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in cost.items():
        lines.append(
            f"| {name} | {row['n']} | {row['rounds']} | {row['mean_kb']} | {row['best_ms']} | {row['median_ms']} |"
            f" {row['p95_ms']} | {row['decode_median_ms']} | {row['statistics_median_ms']} |"
        )
    return [*lines, ""]


def _worker_lines(worker: dict[str, Any]) -> list[str]:
    return [
        "## Worker (SQLite, the production worker draining a backlog)",
        "",
        f"{worker['displays']} displays with a new {worker['mean_kb']} KB 1080p JPEG each: drained in"
        f" {worker['elapsed_s']} s, {worker['analyses_per_s']} analyses/s, {worker['cpu_ms_per_analysis']} ms"
        f" of process CPU per analysis (2,000 displays every 5 minutes need"
        f" {worker['needed_per_s_for_2000_displays_every_5_min']}/s).",
        "",
    ]


def _ingest_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best and median screenshots/s with analysis off and on over the repeated runs."""
    summary: dict[str, Any] = {}
    for analysis in (False, True):
        rates = [row["screenshots_per_s"] for row in rows if row["analysis"] is analysis]
        if rates:
            summary["on" if analysis else "off"] = {
                "runs": len(rates),
                "best_per_s": max(rates),
                "median_per_s": round(statistics.median(rates), 1),
            }
    return summary


def _ingest_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## MQTT screenshot ingest with analysis off and on (PostgreSQL)",
        "",
        f"Each screenshot a {rows[0]['image_kb']} KB 1080p JPEG; runs alternate off and on. CPU: the app's"
        " process per screenshot while storing, and after the last was stored until every display's latest"
        " was analysed.",
        "",
        "| analysis | screenshots | screenshots/s | CPU ms per screenshot | latest unanalysed when all stored |"
        " analysed rows | latest all analysed after (s) | CPU s after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {'on' if row['analysis'] else 'off'} | {row['screenshots']} | {row['screenshots_per_s']} |"
            f" {row['cpu_ms_per_screenshot_stored']} | {row['unanalysed_latest_when_all_stored']} |"
            f" {row['analysed_screenshots']} | {row['latest_analysed_s_after_last_stored']} |"
            f" {row['cpu_s_after_last_stored']} |"
        )
    lines.append("")
    for mode, scores in _ingest_summary(rows).items():
        lines.append(
            f"Analysis {mode}: best {scores['best_per_s']}/s, median {scores['median_per_s']}/s over"
            f" {scores['runs']} runs."
        )
    return [*lines, ""]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Screen analysis ({results['mode']}, {results['started_at']})",
        "",
        f"Machine: {results['machine'].get('cpu')}, {results['machine'].get('cores')} cores.",
        "",
    ]
    if "accuracy" in results:
        lines += _accuracy_lines(results["accuracy"])
    if "cpu" in results:
        lines += _cpu_lines(results["cpu"])
    if "worker" in results:
        lines += _worker_lines(results["worker"])
    if "ingest" in results:
        lines += _ingest_lines(results["ingest"])
    if "fleet" in results:
        lines += _fleet_lines(results["fleet"])
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.screen_analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller set (about two minutes)")
    parser.add_argument("--only-ingest", action="store_true", help="only the MQTT ingest with analysis off and on")
    parser.add_argument("--no-ingest", action="store_true", help="skip the MQTT ingest (no PostgreSQL or Mosquitto)")
    parser.add_argument("--only-cpu", action="store_true", help="only the CPU per screenshot")
    parser.add_argument(
        "--fleet", action="store_true", help="only a fleet's steady flow (2,000 displays per 5 minutes, x1 and x4)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="ingest runs per mode, off and on alternating")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": mode,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    if args.fleet:
        results["fleet"] = []
        for scale in (1.0, 4.0):
            log(f"screen analysis: a fleet's steady flow x{scale:g}")
            results["fleet"].append(
                asyncio.run(fleet(scale=scale, seconds=30 if args.quick else 90, image=ingest_image()))
            )
    elif args.only_cpu:
        log("screen analysis: CPU per screenshot")
        results["cpu"] = cpu(per_kind=4 if args.quick else 10, rounds=5)
    elif not args.only_ingest:
        log("screen analysis: accuracy on the generated set")
        results["accuracy"] = accuracy(per_kind=15 if args.quick else 40, sequences_per_kind=8 if args.quick else 25)
        log("screen analysis: CPU per screenshot")
        results["cpu"] = cpu(per_kind=4 if args.quick else 10, rounds=5)
        log("screen analysis: worker throughput")
        results["worker"] = asyncio.run(worker_throughput(100 if args.quick else 500))
    if not (args.no_ingest or args.only_cpu or args.fleet):
        results["ingest"] = []
        image = ingest_image()
        repeats = args.repeats or (1 if args.quick else 3)
        for _ in range(repeats):
            for analysis in (False, True):
                log(f"screen analysis: MQTT screenshot ingest, analysis {'on' if analysis else 'off'}")
                total = 600 if args.quick else 3000
                results["ingest"].append(asyncio.run(ingest_screenshots(total, analysis=analysis, image=image)))
        results["ingest_summary"] = _ingest_summary(results["ingest"])
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    partial = args.only_ingest or args.only_cpu or args.fleet
    names = [f"screen-analysis-{mode}-{stamp}"] + ([] if partial else ["latest-screen-analysis"])
    for name in names:
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS_DIR / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
