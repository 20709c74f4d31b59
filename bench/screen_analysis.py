"""`python -m bench.screen_analysis [--quick]`: screen analysis accuracy, CPU cost and worker throughput.

- Accuracy on the generated, labelled set (`app/services/screen_analysis_samples.py`) at 1080p:
  precision and recall of BLACK on single screenshots, the share of dark-but-real content called
  BLACK, and precision and recall of OK / BLACK / FROZEN over display sequences (static slides,
  slide changes, events that start while the screen stays, black screens).
- CPU: process time of `measure` (decode, statistics, hash) per 1080p JPEG and PNG screenshot.
- Worker: the production worker on a SQLite database, draining a backlog of displays each with a
  new 1080p screenshot (as at start-up): analyses per second, with reading the files and the statements.

Results: bench/results/screen-analysis-<time>.json and .md, plus latest-screen-analysis.json/.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.config import Settings
from app.main import create_app
from app.services.screen_analysis import ANALYSES, is_black, measure
from app.services.screen_analysis_queue import AnalysisQueue
from app.services.screen_analysis_samples import (
    DARK_REAL_KINDS,
    SIZE_1080P,
    bright_slide_scene,
    images,
    replay,
    scenarios,
)
from app.services.screen_analysis_worker import ScreenAnalysisWorker
from app.services.screenshots import store_screenshot
from app.state import AppState
from bench.common import RESULTS_DIR, log, machine_info

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
    timings = []
    for _ in range(rounds):
        for data in samples:
            started = time.process_time()
            measure(data)
            timings.append((time.process_time() - started) * 1000)
    timings.sort()
    return {
        "n": len(timings),
        "mean_ms": round(statistics.fmean(timings), 2),
        "p50_ms": round(timings[len(timings) // 2], 2),
        "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2),
        "mean_kb": round(statistics.fmean(len(data) for data in samples) / 1024, 1),
    }


def _png(data: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="PNG")
    return buffer.getvalue()


def cpu(*, per_kind: int, rounds: int) -> dict[str, Any]:
    jpegs = [item.image for item in images(per_kind=per_kind, size=SIZE_1080P, seed=99)]
    return {"jpeg_1080p": _cpu_ms(jpegs, rounds), "png_1080p": _cpu_ms([_png(data) for data in jpegs[::3]], 1)}


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


def markdown(results: dict[str, Any]) -> str:
    acc, cost, worker = results["accuracy"], results["cpu"], results["worker"]
    lines = [
        f"# Screen analysis ({results['mode']}, {results['started_at']})",
        "",
        f"Machine: {results['machine'].get('cpu')}, {results['machine'].get('cores')} cores.",
        "",
        f"## Accuracy (generated set, 1080p, FROZEN_AFTER_SCREENSHOTS={FROZEN_AFTER})",
        "",
        "| set | class | support | predicted | precision | recall |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    black = acc["black_on_images"]
    lines.append(
        f"| {acc['images']} single screenshots | BLACK | {black['support']} | {black['predicted']} |"
        f" {black['precision']} | {black['recall']} |"
    )
    for label, scores in acc["sequences"].items():
        lines.append(
            f"| {acc['sequence_screenshots']} screenshots in sequences | {label} | {scores['support']} |"
            f" {scores['predicted']} | {scores['precision']} | {scores['recall']} |"
        )
    lines += [
        "",
        f"Dark but real content called BLACK: {acc['dark_real_called_black']} of {acc['dark_real']}"
        f" ({acc['dark_real_called_black_share']}). Static slides (no event change) called FROZEN:"
        f" {acc['static_slide_called_frozen']} of {acc['static_slide_screenshots']}.",
        "",
        "## CPU per screenshot (`measure`: decode, statistics, perceptual hash)",
        "",
        "| image | n | mean KB | mean ms | p50 ms | p95 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in cost.items():
        lines.append(
            f"| {name} | {row['n']} | {row['mean_kb']} | {row['mean_ms']} | {row['p50_ms']} | {row['p95_ms']} |"
        )
    lines += [
        "",
        "## Worker (SQLite, the production worker draining a backlog)",
        "",
        f"{worker['displays']} displays with a new {worker['mean_kb']} KB 1080p JPEG each: drained in"
        f" {worker['elapsed_s']} s, {worker['analyses_per_s']} analyses/s, {worker['cpu_ms_per_analysis']} ms"
        f" of process CPU per analysis (2,000 displays every 5 minutes need"
        f" {worker['needed_per_s_for_2000_displays_every_5_min']}/s).",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.screen_analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller set (about a minute)")
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
    log("screen analysis: accuracy on the generated set")
    results["accuracy"] = accuracy(per_kind=15 if args.quick else 40, sequences_per_kind=8 if args.quick else 25)
    log("screen analysis: CPU per screenshot")
    results["cpu"] = cpu(per_kind=4 if args.quick else 10, rounds=3)
    log("screen analysis: worker throughput")
    results["worker"] = asyncio.run(worker_throughput(100 if args.quick else 500))
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"screen-analysis-{mode}-{stamp}", "latest-screen-analysis"):
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS_DIR / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
