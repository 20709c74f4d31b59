"""The orphan sweep: screenshot files without a row go, once old enough; everything else stays."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.metrics import REGISTRY
from app.services.sweep import ORPHAN_MIN_AGE_SECONDS, sweep_orphan_files
from app.state import AppState
from tests.conftest import Clock, StatementCounter
from tests.mqtt.conftest import eventually
from tests.services.test_screenshots import files_in, make_image, store

pytestmark = pytest.mark.usefixtures("backend")

OLD = ORPHAN_MIN_AGE_SECONDS + 60
NEW = ORPHAN_MIN_AGE_SECONDS - 60


def removed_total() -> float:
    return REGISTRY.get_sample_value("infoscreen_orphan_screenshot_files_removed_total") or 0.0


def place(directory: Path, name: str, *, age: float, data: bytes = b"x") -> str:
    """A file of `age` seconds (by its modification time)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return name


def stored_name(extension: str = "jpg") -> str:
    return f"{uuid.uuid4().hex}.{extension}"


def age(directory: Path, name: str, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(directory / name, (moment, moment))


class TestSweep:
    async def test_removes_exactly_the_old_files_without_a_row(self, state: AppState, clock: Clock) -> None:
        directory = state.settings.screenshots_dir
        kept_with_row_old = (await store(state, clock, make_image(color=(1, 2, 3)))).written_file
        kept_with_row_new = (await store(state, clock, make_image(color=(4, 5, 6)))).written_file
        age(directory, kept_with_row_old, OLD)
        old_orphans = {
            place(directory, stored_name("jpg"), age=OLD),
            place(directory, stored_name("png"), age=OLD),
            place(directory, f".tmp-{uuid.uuid4().hex}", age=OLD),
        }
        young = {
            place(directory, stored_name("jpg"), age=NEW),
            place(directory, f".tmp-{uuid.uuid4().hex}", age=NEW),
        }
        foreign = {
            place(directory, "README", age=OLD),
            place(directory, f"{uuid.uuid4().hex}.gif", age=OLD),
            place(directory, "ABCDEF0123456789ABCDEF0123456789.jpg", age=OLD),
        }
        (directory / "nested").mkdir()
        before = removed_total()

        removed = await sweep_orphan_files(state.session_factory, directory=directory, now=time.time())

        assert removed == len(old_orphans)
        assert files_in(directory) == {kept_with_row_old, kept_with_row_new, "nested"} | young | foreign
        assert removed_total() == before + len(old_orphans)

    async def test_one_statement_whatever_the_number_of_files(
        self, state: AppState, clock: Clock, statement_counter: StatementCounter
    ) -> None:
        directory = state.settings.screenshots_dir
        for number in range(5):
            age(directory, (await store(state, clock, make_image(color=(number, 0, 0)))).written_file, OLD)
        orphans = {place(directory, stored_name(), age=OLD) for _ in range(300)}
        statement_counter.counting = True
        removed = await sweep_orphan_files(state.session_factory, directory=directory, now=time.time())
        statement_counter.counting = False
        assert removed == len(orphans)
        assert statement_counter.count == 1, statement_counter.statements
        assert len(files_in(directory)) == 5

    async def test_nothing_old_costs_no_statement(self, state: AppState, statement_counter: StatementCounter) -> None:
        directory = state.settings.screenshots_dir
        place(directory, stored_name(), age=NEW)
        statement_counter.counting = True
        assert await sweep_orphan_files(state.session_factory, directory=directory, now=time.time()) == 0
        statement_counter.counting = False
        assert statement_counter.count == 0

    async def test_a_missing_directory_is_nothing_to_do(self, state: AppState, tmp_path: Path) -> None:
        assert await sweep_orphan_files(state.session_factory, directory=tmp_path / "absent", now=time.time()) == 0


class TestStartUpSweep:
    async def test_the_service_sweeps_at_start_up_and_keeps_the_task(self, settings: Settings) -> None:
        directory = settings.screenshots_dir
        orphan = place(directory, stored_name(), age=OLD)
        young = place(directory, stored_name(), age=NEW)
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            state: AppState = application.state.monitor
            assert any(task.get_name() == "screenshot-sweep" for task in state.tasks)
            await eventually(lambda: orphan not in files_in(directory), what="the start-up sweep")
            assert files_in(directory) == {young}
