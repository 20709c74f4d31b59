"""Screen analysis (SPEC §14): is a screenshot black, frozen or OK? Pure functions, no I/O.

`measure` turns image bytes into `Measurements` (luminance statistics and a perceptual hash) on a
downscaled grey image; `classify` decides from the measurements of the new screenshot and the
display's screenshots before it. The worker that feeds them lives in `screen_analysis_worker.py`.

BLACK is "dark and near-uniform", judged by several statistics, not the mean alone: a night-theme
slide or a dark video still is dark on average too, but it has spread (text, gradients, texture)
or a small share of bright pixels (a logo), and either keeps it from being BLACK.

FROZEN needs an event change that the screen did not follow (a static slide that simply stays is
fine): an `event_start` screenshot that looks like the display's previous screenshot, or
`frozen_after` screenshots in a row that look alike although the display's event changed among
them. A screen found frozen stays FROZEN while it keeps looking the same.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import numpy as np
from PIL import Image

from app.schemas.screenshots import ScreenAnalysis as Analysis

# `Analysis` is a named alias (TypeAliasType, for OpenAPI) of a Literal: its values are in `__value__`.
ANALYSES: tuple[Analysis, ...] = get_args(Analysis.__value__)
# The reasons of SPEC §12 that a detected screen health gives (an OK screen gives none).
REASONS: dict[Analysis, str | None] = {"OK": None, "BLACK": "screen_black", "FROZEN": "screen_frozen"}

# Statistics are taken on a grey image about this wide: JPEG decodes straight to it (DCT scaling).
ANALYSIS_WIDTH = 240
# The perceptual hash: the grey image averaged into this grid, one byte per cell (hex in the database).
HASH_GRID = (32, 18)
# A pixel at least this bright (0-255) is content, not black (a logo, text, a lit window).
BRIGHT_LUMA = 64


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind the rules; pinned by tests/services/test_screen_analysis.py."""

    # BLACK: mean luminance at most this, spread (standard deviation) at most this, and at most
    # this share of bright pixels.
    black_mean_max: float = 40.0
    black_spread_max: float = 4.0
    black_bright_share_max: float = 0.0005
    # Two screenshots look the same when their hash cells differ by at most `same_mean_diff_max`
    # on average and none by more than `same_cell_diff_max`: compression noise moves a cell (the
    # average of thousands of pixels) by a level or two, a line of changed text by far more.
    same_mean_diff_max: float = 2.0
    same_cell_diff_max: float = 8.0


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Measurements:
    """What the rules look at in one screenshot."""

    luminance_mean: float
    luminance_spread: float
    luminance_p99: float
    bright_share: float
    perceptual_hash: str


@dataclass(frozen=True)
class Previous:
    """One of the display's earlier screenshots, newest first, as the rules need it."""

    perceptual_hash: str | None
    screenshot_type: str
    # Known only for analysed screenshots (the event at analysis time); `analysed` says which.
    event_id: int | None
    analysed: bool
    analysis: str | None


def decode_grey(data: bytes) -> Image.Image:
    """The image as 8-bit grey, about `ANALYSIS_WIDTH` wide, decoded as little as possible.

    Nearly all of `measure`'s time: for a JPEG ~1 ms at 1080p (luma only, DCT-scaled); for a PNG the
    whole image is inflated and unfiltered first (no format shortcut), ~9-17 ms at 1080p.
    """
    image: Image.Image = Image.open(io.BytesIO(data))
    # JPEG: decode only the luma, at 1/2, 1/4 or 1/8 scale (DCT scaling); a no-op for PNG.
    image.draft("L", (ANALYSIS_WIDTH, max(1, image.height * ANALYSIS_WIDTH // max(1, image.width))))
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    factor = image.width // ANALYSIS_WIDTH
    # Reduce before converting: the conversion then touches 1/factor² of the pixels.
    reduced = image.reduce(factor) if factor > 1 else image
    return reduced.convert("L")


def measure(data: bytes) -> Measurements:
    """Luminance statistics and the perceptual hash of a JPEG or PNG image (CPU-bound: run off the loop)."""
    return measure_grey(decode_grey(data))


def measure_grey(grey: Image.Image) -> Measurements:
    """The measurements of a grey copy from `decode_grey` (~0.3 ms: 32,400 pixels)."""
    pixels = np.asarray(grey, dtype=np.float32)
    cells = grey.resize(HASH_GRID, Image.Resampling.BOX)
    return Measurements(
        luminance_mean=round(float(pixels.mean()), 2),
        luminance_spread=round(float(pixels.std()), 2),
        luminance_p99=round(float(np.percentile(pixels, 99)), 2),
        bright_share=round(float(np.count_nonzero(pixels >= BRIGHT_LUMA)) / pixels.size, 6),
        perceptual_hash=cells.tobytes().hex(),
    )


def is_black(measured: Measurements, thresholds: Thresholds = THRESHOLDS) -> bool:
    """Dark, near-uniform, and (almost) no bright pixel."""
    return (
        measured.luminance_mean <= thresholds.black_mean_max
        and measured.luminance_spread <= thresholds.black_spread_max
        and measured.bright_share <= thresholds.black_bright_share_max
    )


def looks_same(first: str, second: str, thresholds: Thresholds = THRESHOLDS) -> bool:
    """Whether two perceptual hashes show the same picture (compression noise aside)."""
    a = np.frombuffer(bytes.fromhex(first), dtype=np.uint8).astype(np.int16)
    b = np.frombuffer(bytes.fromhex(second), dtype=np.uint8).astype(np.int16)
    if a.size != b.size or a.size == 0:
        return False
    difference = np.abs(a - b)
    return bool(
        float(difference.mean()) <= thresholds.same_mean_diff_max
        and int(difference.max()) <= thresholds.same_cell_diff_max
    )


def classify(
    measured: Measurements,
    *,
    screenshot_type: str,
    event_id: int | None,
    previous: Sequence[Previous],
    frozen_after: int,
    thresholds: Thresholds = THRESHOLDS,
) -> Analysis:
    """BLACK, FROZEN or OK for a new screenshot, given the display's earlier ones (newest first)."""
    if is_black(measured, thresholds):
        return "BLACK"
    last = previous[0] if previous else None
    if last is None or last.perceptual_hash is None:
        return "OK"
    same_as_last = looks_same(measured.perceptual_hash, last.perceptual_hash, thresholds)
    if not same_as_last:
        return "OK"
    if screenshot_type == "event_start" or last.analysis == "FROZEN":
        return "FROZEN"
    row = list(previous[: max(frozen_after - 1, 0)])
    if frozen_after < 2 or len(row) < frozen_after - 1 or not all(item.analysed for item in row):
        return "OK"
    if not all(
        item.perceptual_hash is not None and looks_same(measured.perceptual_hash, item.perceptual_hash, thresholds)
        for item in row
    ):
        return "OK"
    events = {event_id, *(item.event_id for item in row)}
    return "FROZEN" if len(events) > 1 else "OK"
