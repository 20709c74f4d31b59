"""The screen analysis rules (SPEC §14) on the generated, labelled set, with the thresholds pinned."""

from __future__ import annotations

import io
from collections import Counter
from functools import cache

import numpy as np
import pytest
from PIL import Image

from app.config import SettingsError, load_settings
from app.services.screen_analysis import (
    ANALYSES,
    HASH_GRID,
    REASONS,
    THRESHOLDS,
    Measurements,
    Previous,
    Thresholds,
    classify,
    is_black,
    looks_same,
    measure,
)
from app.services.screen_analysis_queue import AnalysisQueue
from app.services.screen_analysis_samples import (
    DARK_REAL_KINDS,
    LabelledImage,
    Scenario,
    bright_slide_scene,
    images,
    replay,
    scenarios,
)

# Small frames keep the set fast; the bench runs it at 1080p (docs/performance.md).
SIZE = (480, 270)


@cache
def labelled_images() -> tuple[LabelledImage, ...]:
    return tuple(images(per_kind=10, size=SIZE))


@cache
def labelled_scenarios() -> tuple[Scenario, ...]:
    return tuple(scenarios(per_kind=6, size=SIZE))


def precision_recall(pairs: list[tuple[str, str]], label: str) -> tuple[float, float]:
    """(precision, recall) of `label` over (expected, got) pairs."""
    true_positive = sum(1 for expected, got in pairs if expected == label and got == label)
    predicted = sum(1 for _, got in pairs if got == label)
    actual = sum(1 for expected, _ in pairs if expected == label)
    return (true_positive / predicted if predicted else 1.0), (true_positive / actual if actual else 1.0)


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def previous(measured: Measurements, *, event_id: int | None, analysis: str = "OK", kind: str = "periodic") -> Previous:
    return Previous(measured.perceptual_hash, kind, event_id, analysed=True, analysis=analysis)


class TestThresholds:
    def test_pinned(self) -> None:
        """Changing a threshold is a decision: re-run `python -m bench.screen_analysis` and update this."""
        assert Thresholds() == THRESHOLDS
        assert THRESHOLDS == Thresholds(
            black_mean_max=40.0,
            black_spread_max=4.0,
            black_bright_share_max=0.0005,
            same_mean_diff_max=2.0,
            same_cell_diff_max=8.0,
        )
        assert HASH_GRID == (32, 18)

    def test_every_verdict_is_listed_with_its_reason(self) -> None:
        # The bench's per-class precision and recall iterate over ANALYSES: an empty tuple hid them.
        assert ANALYSES == ("OK", "BLACK", "FROZEN")
        assert set(REASONS) == set(ANALYSES)


class TestSettings:
    def test_defaults(self) -> None:
        settings = load_settings(_env_file=None)
        assert settings.SCREEN_ANALYSIS_ENABLED is True
        assert settings.FROZEN_AFTER_SCREENSHOTS == 3
        assert settings.SCREEN_ANALYSIS_BACKLOG == 10_000

    @pytest.mark.parametrize(("name", "value"), [("FROZEN_AFTER_SCREENSHOTS", "1"), ("SCREEN_ANALYSIS_BACKLOG", "0")])
    def test_values_out_of_range_name_the_variable(self, name: str, value: str) -> None:
        with pytest.raises(SettingsError, match=name):
            load_settings(_env_file=None, **{name: value})


class TestBlackOnTheSet:
    def test_black_precision_and_recall(self) -> None:
        pairs = [(item.label, "BLACK" if is_black(measure(item.image)) else "OK") for item in labelled_images()]
        precision, recall = precision_recall(pairs, "BLACK")
        assert precision >= 0.98
        assert recall >= 0.95

    def test_dark_but_real_content_is_never_black(self) -> None:
        dark = [item for item in labelled_images() if item.kind in DARK_REAL_KINDS]
        assert len(dark) >= 40
        called_black = [item.kind for item in dark if is_black(measure(item.image))]
        assert called_black == []

    def test_black_is_judged_by_spread_and_bright_pixels_not_the_mean_alone(self) -> None:
        dark_gradient = Image.linear_gradient("L").resize((640, 360)).point(lambda value: value // 6)
        measured = measure(jpeg(dark_gradient.convert("RGB")))
        assert measured.luminance_mean <= THRESHOLDS.black_mean_max
        assert not is_black(measured)
        logo = Image.new("RGB", (640, 360), (0, 0, 0))
        logo.paste((255, 200, 0), (20, 20, 60, 50))
        measured = measure(jpeg(logo))
        assert measured.luminance_mean < 5
        assert measured.bright_share > THRESHOLDS.black_bright_share_max
        assert not is_black(measured)

    def test_video_black_with_noise_and_png_are_black(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (1920, 1080), (16, 16, 16)).save(buffer, format="PNG")
        assert is_black(measure(buffer.getvalue()))


@cache
def scenario_outcomes() -> tuple[tuple[str, str, str], ...]:
    """(scenario kind, expected, got) for every screenshot of every scenario."""
    results = []
    for scenario in labelled_scenarios():
        analysed = replay(scenario.steps, frozen_after=3)
        for step, (analysis, _) in zip(scenario.steps, analysed, strict=True):
            results.append((scenario.kind, step.label, analysis))
    return tuple(results)


@cache
def two_slides() -> tuple[Measurements, Measurements, Measurements]:
    """Two captures of one slide (different JPEG quality) and another slide."""
    rng = np.random.default_rng(3)
    scene = bright_slide_scene(rng, SIZE)
    other = bright_slide_scene(rng, SIZE)
    return measure(scene.capture(rng, quality=60)), measure(scene.capture(rng, quality=90)), measure(other.capture(rng))


class TestFrozenOnTheSet:
    @pytest.fixture
    def outcomes(self) -> tuple[tuple[str, str, str], ...]:
        return scenario_outcomes()

    def test_frozen_precision_and_recall(self, outcomes: tuple[tuple[str, str, str], ...]) -> None:
        pairs = [(expected, got) for _, expected, got in outcomes]
        assert Counter(expected for expected, _ in pairs)["FROZEN"] >= 15
        precision, recall = precision_recall(pairs, "FROZEN")
        assert precision >= 0.98
        assert recall >= 0.95

    def test_a_static_slide_without_event_change_is_never_frozen(
        self, outcomes: tuple[tuple[str, str, str], ...]
    ) -> None:
        static = [got for kind, _, got in outcomes if kind == "static_slide"]
        assert len(static) >= 20
        assert set(static) == {"OK"}

    def test_every_screenshot_as_labelled(self, outcomes: tuple[tuple[str, str, str], ...]) -> None:
        wrong = [(kind, expected, got) for kind, expected, got in outcomes if expected != got]
        assert wrong == []


class TestRules:
    @pytest.fixture
    def slide(self) -> tuple[Measurements, Measurements, Measurements]:
        return two_slides()

    def test_compression_noise_looks_the_same_another_slide_does_not(
        self, slide: tuple[Measurements, Measurements, Measurements]
    ) -> None:
        first, again, other = slide
        assert looks_same(first.perceptual_hash, again.perceptual_hash)
        assert not looks_same(first.perceptual_hash, other.perceptual_hash)
        assert not looks_same(first.perceptual_hash, "00")

    def test_event_start_like_the_previous_screenshot_is_frozen(
        self, slide: tuple[Measurements, Measurements, Measurements]
    ) -> None:
        first, again, other = slide
        before = [previous(first, event_id=1)]
        assert classify(again, screenshot_type="event_start", event_id=2, previous=before, frozen_after=3) == "FROZEN"
        assert classify(other, screenshot_type="event_start", event_id=2, previous=before, frozen_after=3) == "OK"
        assert classify(again, screenshot_type="event_start", event_id=2, previous=[], frozen_after=3) == "OK"

    def test_periodic_look_alikes_are_frozen_only_across_an_event_change(
        self, slide: tuple[Measurements, Measurements, Measurements]
    ) -> None:
        first, again, _ = slide
        same_event = [previous(first, event_id=1), previous(first, event_id=1)]
        changed = [previous(first, event_id=2), previous(first, event_id=1)]
        assert classify(again, screenshot_type="periodic", event_id=1, previous=same_event, frozen_after=3) == "OK"
        assert classify(again, screenshot_type="periodic", event_id=2, previous=same_event, frozen_after=3) == "FROZEN"
        assert classify(again, screenshot_type="periodic", event_id=2, previous=changed, frozen_after=3) == "FROZEN"
        # Fewer look-alikes than FROZEN_AFTER_SCREENSHOTS: not yet.
        assert classify(again, screenshot_type="periodic", event_id=2, previous=changed, frozen_after=4) == "OK"
        assert classify(again, screenshot_type="periodic", event_id=3, previous=changed[:1], frozen_after=2) == "FROZEN"

    def test_unanalysed_predecessors_prove_no_event_change(
        self, slide: tuple[Measurements, Measurements, Measurements]
    ) -> None:
        first, again, _ = slide
        unknown = Previous(first.perceptual_hash, "periodic", None, analysed=False, analysis=None)
        before = [previous(first, event_id=1), unknown]
        assert classify(again, screenshot_type="periodic", event_id=2, previous=before, frozen_after=3) == "OK"

    def test_frozen_stays_until_the_screen_changes(
        self, slide: tuple[Measurements, Measurements, Measurements]
    ) -> None:
        first, again, other = slide
        stuck = [previous(first, event_id=2, analysis="FROZEN", kind="event_start")]
        assert classify(again, screenshot_type="periodic", event_id=2, previous=stuck, frozen_after=3) == "FROZEN"
        assert classify(other, screenshot_type="periodic", event_id=2, previous=stuck, frozen_after=3) == "OK"

    def test_black_wins_over_frozen(self) -> None:
        black = measure(jpeg(Image.new("RGB", SIZE, (0, 0, 0))))
        before = [previous(black, event_id=1, analysis="BLACK")]
        assert classify(black, screenshot_type="event_start", event_id=2, previous=before, frozen_after=3) == "BLACK"


class TestQueue:
    async def test_one_entry_per_display_oldest_first(self) -> None:
        queue = AnalysisQueue(capacity=10, enabled=True)
        queue.submit_all(["a", "b", "a", "c", "b"])
        assert queue.depth == 3
        assert [await queue.take(), await queue.take(), await queue.take()] == ["a", "b", "c"]
        assert queue.depth == 0

    async def test_full_backlog_drops_the_oldest_display(self) -> None:
        queue = AnalysisQueue(capacity=2, enabled=True)
        queue.submit_all(["a", "b", "c"])
        assert queue.dropped == 1
        assert [await queue.take(), await queue.take()] == ["b", "c"]

    async def test_disabled_queue_takes_nothing(self) -> None:
        queue = AnalysisQueue()
        queue.submit("a")
        assert queue.depth == 0
