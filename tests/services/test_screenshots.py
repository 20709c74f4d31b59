"""store_screenshot on both backends: validation, the file on disk, client metadata, history pruning."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from app.models import Client, Screenshot
from app.services.screenshots import (
    INLINE_CHECK_BYTES,
    StoredScreenshot,
    detect_image_format,
    is_whole_image,
    store_screenshot,
    write_atomically,
)
from app.services.unit_of_work import unit_of_work
from app.state import AppState
from tests.conftest import Clock

UUID = "display-1"


def make_image(image_format: str = "JPEG", *, color: tuple[int, int, int] = (200, 30, 30), size: int = 8) -> bytes:
    """A real, decodable image; a different color gives different bytes (and hash)."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format=image_format)
    return buffer.getvalue()


def make_noise_png(size: int) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about 3 * size**2 bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), random.Random(size).randbytes(3 * size * size)).save(buffer, format="PNG")
    return buffer.getvalue()


def files_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()} if directory.exists() else set()


async def store(
    state: AppState,
    clock: Clock,
    image: bytes,
    screenshot_type: str = "periodic",
    *,
    client_uuid: str = UUID,
    captured_at: datetime | None = None,
) -> StoredScreenshot:
    """One screenshot in its own committed unit of work, pruned files deleted after commit."""
    async with unit_of_work(
        state.session_factory,
        screenshots_dir=state.settings.screenshots_dir,
        grace_seconds=state.settings.heartbeat_grace_seconds,
    ) as session:
        return await store_screenshot(
            session,
            settings=state.settings,
            client_uuid=client_uuid,
            image=image,
            screenshot_type=screenshot_type,
            captured_at=captured_at,
            now=clock(),
        )


async def client_row(session: AsyncSession, client_uuid: str = UUID) -> Client:
    session.expire_all()
    client = (await session.execute(select(Client).where(col(Client.uuid) == client_uuid))).scalar_one()
    return client


async def history_ids(session: AsyncSession, client_uuid: str = UUID) -> list[int]:
    rows = await session.execute(
        select(col(Screenshot.id)).where(col(Screenshot.client_uuid) == client_uuid).order_by(col(Screenshot.id))
    )
    return [int(value) for value in rows.scalars()]


class TestDetectImageFormat:
    def test_jpeg_and_png_by_magic_bytes(self) -> None:
        assert detect_image_format(make_image("JPEG")) == "jpeg"
        assert detect_image_format(make_image("PNG")) == "png"

    @pytest.mark.parametrize("data", [b"", b"GIF89a....", b"<html>", b"\xff\xd8", b"\x89PNG"])
    def test_anything_else_is_none(self, data: bytes) -> None:
        assert detect_image_format(data) is None

    def test_gif_and_webp_are_refused(self) -> None:
        for image_format in ("GIF", "WEBP"):
            assert detect_image_format(make_image(image_format)) is None


def png_with_bad_crc() -> bytes:
    data = bytearray(make_image("PNG"))
    data[29] ^= 0xFF  # the IHDR chunk's CRC (8 bytes of signature, 4 length, 4 type, 13 data)
    return bytes(data)


class TestWholeImage:
    @pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
    def test_a_whole_image_passes(self, image_format: str) -> None:
        for image in (make_image(image_format), make_image(image_format, size=640), make_noise_png(64)):
            image_kind = detect_image_format(image)
            assert image_kind is not None
            assert is_whole_image(image, image_kind)

    @pytest.mark.parametrize(
        ("data", "image_format"),
        [
            (b"\xff\xd8\xff<script>alert(document.cookie)</script>", "jpeg"),
            (b"\xff\xd8\xff<script>alert(1)</script>\xff\xd9", "jpeg"),
            (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", "png"),
            (make_image("JPEG", size=64)[:-100], "jpeg"),
            (make_image("JPEG")[:-2], "jpeg"),
            (make_image("PNG", size=64)[:-30], "png"),
            (make_image("PNG")[:-1], "png"),
            (make_image("JPEG") + b"<script>alert(1)</script>", "jpeg"),
            (make_image("PNG") + b"<script>alert(1)</script>", "png"),
            (png_with_bad_crc(), "png"),
            (make_image("PNG"), "jpeg"),
        ],
        ids=[
            "jpeg-signature-then-script",
            "jpeg-signature-script-eoi",
            "png-signature-then-html",
            "truncated-jpeg",
            "jpeg-without-eoi",
            "truncated-png",
            "png-without-its-last-byte",
            "jpeg-then-script",
            "png-then-script",
            "png-bad-crc",
            "png-as-jpeg",
        ],
    )
    def test_anything_else_is_refused(self, data: bytes, image_format: str) -> None:
        assert not is_whole_image(data, image_format)

    async def test_a_truncated_image_is_415_and_writes_nothing(
        self, backend: str, state: AppState, clock: Clock
    ) -> None:
        with pytest.raises(UnsupportedMediaType):
            await store(state, clock, make_image("JPEG", size=64)[:-100])
        assert files_in(state.settings.screenshots_dir) == set()

    async def test_a_large_png_is_checked_off_the_event_loop_and_stored(
        self, backend: str, state: AppState, clock: Clock
    ) -> None:
        large = make_noise_png(600)
        assert len(large) > INLINE_CHECK_BYTES
        stored = await store(state, clock, large)
        assert stored.hash == hashlib.sha256(large).hexdigest()
        with pytest.raises(UnsupportedMediaType):
            await store(state, clock, large[:-1000])


class TestValidation:
    async def test_unknown_type_is_400_and_writes_nothing(self, backend: str, state: AppState, clock: Clock) -> None:
        with pytest.raises(BadRequest):
            await store(state, clock, make_image(), "sometimes")
        assert files_in(state.settings.screenshots_dir) == set()

    async def test_not_an_image_is_415(self, backend: str, state: AppState, clock: Clock) -> None:
        with pytest.raises(UnsupportedMediaType):
            await store(state, clock, b"GIF89a not what we take")
        assert files_in(state.settings.screenshots_dir) == set()

    async def test_bad_uuid_is_400(self, backend: str, state: AppState, clock: Clock) -> None:
        with pytest.raises(BadRequest):
            await store(state, clock, make_image(), client_uuid="../etc")
        assert files_in(state.settings.screenshots_dir) == set()


class TestTooLarge:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"MAX_SCREENSHOT_BYTES": 2000}

    async def test_over_the_limit_is_413(self, backend: str, state: AppState, clock: Clock) -> None:
        big = make_noise_png(40)
        assert len(big) > 2000
        with pytest.raises(PayloadTooLarge):
            await store(state, clock, big)
        assert files_in(state.settings.screenshots_dir) == set()


class TestStore:
    async def test_file_row_and_client_metadata(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        image = make_image("PNG")
        captured = datetime(2026, 3, 9, 20, 59, 30, tzinfo=UTC)
        stored = await store(state, clock, image, captured_at=captured)

        digest = hashlib.sha256(image).hexdigest()
        assert stored.hash == digest
        assert stored.received_at == clock()
        assert stored.files_to_delete == []
        directory = state.settings.screenshots_dir
        assert files_in(directory) == {stored.written_file}
        assert (directory / stored.written_file).read_bytes() == image
        assert stored.written_file.endswith(".png")
        assert UUID not in stored.written_file

        row = (await session.execute(select(Screenshot))).scalar_one()
        assert (row.id, row.hash, row.size, row.format, row.filename) == (
            stored.id,
            digest,
            len(image),
            "png",
            stored.written_file,
        )
        assert row.received_at == clock()
        assert row.captured_at == captured

        client = await client_row(session)
        assert client.last_alive == clock()
        assert client.registration_time == clock()
        assert client.last_screenshot_hash == digest
        assert client.last_screenshot_analyzed == clock()
        assert client.latest_screenshot_type == "periodic"
        assert client.latest_screenshot_id == stored.id
        assert client.last_priority_screenshot_id is None
        assert client.last_priority_received_at is None

    async def test_priority_sets_priority_state_and_periodic_keeps_it(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        start = await store(state, clock, make_image(color=(1, 2, 3)), "event_start")
        priority_time = clock()
        clock.advance(10)
        periodic = await store(state, clock, make_image(color=(9, 9, 9)), "periodic")

        client = await client_row(session)
        assert client.latest_screenshot_type == "periodic"
        assert client.latest_screenshot_id == periodic.id
        assert client.last_screenshot_hash == periodic.hash
        assert client.last_priority_screenshot_type == "event_start"
        assert client.last_priority_screenshot_id == start.id
        assert client.last_priority_screenshot_hash == start.hash
        assert client.last_priority_received_at == priority_time
        assert client.last_alive == clock()

    async def test_known_client_keeps_its_fields(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        session.add(Client(uuid=UUID, hostname="lobby", registration_time=clock() - timedelta(days=3)))
        await session.commit()
        await store(state, clock, make_image())
        client = await client_row(session)
        assert client.hostname == "lobby"
        assert client.registration_time == clock() - timedelta(days=3)
        assert client.last_alive == clock()

    async def test_fixed_number_of_statements(
        self, backend: str, state: AppState, clock: Clock, statement_counter: Any
    ) -> None:
        counts = []
        # The display's first screenshot also announces its status (one more statement): not counted here.
        # Nor is a heartbeat at the very instant of a status input's change (checked again, to be safe).
        await store(state, clock, make_image(color=(255, 255, 0)))
        clock.advance(1)
        for index in range(6):
            statement_counter.reset()
            statement_counter.counting = True
            await store(state, clock, make_image(color=(index, 0, 0)))
            statement_counter.counting = False
            counts.append(len([s for s in statement_counter.statements if not s.lstrip().upper().startswith("PRAGMA")]))
            clock.advance(1)
        assert len(set(counts)) == 1, counts


class TestHistoryPruning:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"SCREENSHOT_HISTORY_PER_CLIENT": 3}

    async def test_keeps_newest_n_plus_latest_priority(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        priority = await store(state, clock, make_image(color=(0, 0, 255)), "event_stop")
        stored = []
        for index in range(6):
            clock.advance(5)
            stored.append(await store(state, clock, make_image(color=(index * 20, 0, 0))))

        expected = sorted([priority.id, *(s.id for s in stored[-3:])])
        assert await history_ids(session) == expected
        rows = (await session.execute(select(col(Screenshot.filename)))).scalars().all()
        assert files_in(state.settings.screenshots_dir) == set(rows)
        pruned = {name for s in stored for name in s.files_to_delete}
        assert pruned == {s.written_file for s in stored[:3]}

    async def test_new_priority_releases_the_old_one(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        first = await store(state, clock, make_image(color=(0, 0, 1)), "event_start")
        for index in range(3):
            clock.advance(5)
            await store(state, clock, make_image(color=(index, 50, 0)))
        assert first.id in await history_ids(session)
        clock.advance(5)
        second = await store(state, clock, make_image(color=(0, 0, 2)), "event_stop")
        ids = await history_ids(session)
        assert first.id not in ids
        assert second.id in ids
        assert len(ids) == 3

    async def test_pruning_is_per_client(
        self, backend: str, state: AppState, clock: Clock, session: AsyncSession
    ) -> None:
        other = await store(state, clock, make_image(), client_uuid="display-2")
        for index in range(5):
            clock.advance(1)
            await store(state, clock, make_image(color=(index, 1, 1)))
        assert await history_ids(session, "display-2") == [other.id]
        assert len(await history_ids(session)) == 3


class TestAtomicWrite:
    async def test_no_temporary_files_are_left(self, backend: str, state: AppState, clock: Clock) -> None:
        for index in range(3):
            await store(state, clock, make_image(color=(index, 2, 3)))
        assert not [name for name in files_in(state.settings.screenshots_dir) if name.startswith(".")]

    async def test_failed_rename_leaves_no_temporary_file(self, tmp_path: Path) -> None:
        (tmp_path / "taken.png").mkdir()  # a directory in the way: the rename fails
        with pytest.raises(IsADirectoryError):
            await write_atomically(tmp_path, "taken.png", make_image("PNG"))
        assert files_in(tmp_path) == {"taken.png"}
        await write_atomically(tmp_path, "fresh.png", b"\x89PNG\r\n\x1a\n...")
        assert (tmp_path / "fresh.png").read_bytes() == b"\x89PNG\r\n\x1a\n..."
        assert files_in(tmp_path) == {"taken.png", "fresh.png"}

    async def test_failed_database_write_removes_the_written_file(
        self, backend: str, state: AppState, clock: Clock
    ) -> None:
        async def store_in_read_only_transaction() -> None:
            async with unit_of_work(
                state.session_factory,
                screenshots_dir=state.settings.screenshots_dir,
                grace_seconds=state.settings.heartbeat_grace_seconds,
            ) as session:
                # A read-only transaction: the file gets written, then the first INSERT fails.
                if backend == "sqlite":
                    await session.execute(text("PRAGMA query_only = ON"))
                else:
                    await session.execute(text("SET TRANSACTION READ ONLY"))
                try:
                    await store_screenshot(
                        session,
                        settings=state.settings,
                        client_uuid=UUID,
                        image=make_image(),
                        screenshot_type="periodic",
                        captured_at=None,
                        now=clock(),
                    )
                finally:
                    if backend == "sqlite":
                        await session.execute(text("PRAGMA query_only = OFF"))

        with pytest.raises(DBAPIError):
            await store_in_read_only_transaction()
        assert files_in(state.settings.screenshots_dir) == set()
