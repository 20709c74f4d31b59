"""Screenshot upload (SPEC §6.2) and reads (SPEC §7) over HTTP, on both backends."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Client
from app.state import AppState
from tests.conftest import Clock, TokenMaker
from tests.services.test_screenshots import files_in, make_image, make_noise_png

UUID = "display-1"
JPEG = make_image("JPEG", color=(10, 20, 30))
PNG = make_image("PNG", color=(40, 50, 60))


@pytest.fixture
async def device(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("device")


@pytest.fixture
async def user(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("user")


async def upload(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    image: bytes,
    screenshot_type: str | None = None,
    *,
    client_uuid: str = UUID,
    content_type: str = "image/jpeg",
) -> httpx.Response:
    params = {"screenshot_type": screenshot_type} if screenshot_type else {}
    return await http.post(
        f"/api/clients/{client_uuid}/screenshot",
        params=params,
        content=image,
        headers={**headers, "Content-Type": content_type},
    )


async def uploaded(
    http: httpx.AsyncClient, headers: dict[str, str], image: bytes, screenshot_type: str = "periodic", **kwargs: Any
) -> dict[str, Any]:
    response = await upload(http, headers, image, screenshot_type, **kwargs)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


class TestUpload:
    async def test_raw_jpeg_is_accepted(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], clock: Clock, session: AsyncSession
    ) -> None:
        response = await upload(client, device, JPEG)
        assert response.status_code == 202
        assert response.json() == {
            "hash": hashlib.sha256(JPEG).hexdigest(),
            "screenshot_type": "periodic",
            "received_at": clock().isoformat(),
        }
        row = (await session.execute(select(Client).where(col(Client.uuid) == UUID))).scalar_one()
        assert row.last_alive == clock()
        assert row.last_screenshot_hash == hashlib.sha256(JPEG).hexdigest()

    async def test_multipart_png_is_accepted(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/api/clients/{UUID}/screenshot",
            params={"screenshot_type": "event_start"},
            files={"file": ("shot.png", PNG, "image/png")},
            headers=device,
        )
        assert response.status_code == 202, response.text
        assert response.json()["screenshot_type"] == "event_start"
        served = await client.get(f"/screenshots/{UUID}", headers=user)
        assert served.content == PNG
        assert served.headers["content-type"] == "image/png"

    async def test_multipart_without_file_field_is_400(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/api/clients/{UUID}/screenshot", files={"image": ("shot.png", PNG, "image/png")}, headers=device
        )
        assert response.status_code == 400
        assert "file" in response.json()["error"]

    @pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/octet-stream"])
    async def test_not_an_image_is_415_whatever_the_content_type(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], state: AppState, content_type: str
    ) -> None:
        response = await upload(client, device, b"GIF89a\x01\x00 not ours", content_type=content_type)
        assert response.status_code == 415
        assert "error" in response.json()
        assert files_in(state.settings.screenshots_dir) == set()

    @pytest.mark.parametrize(
        "body",
        [b"\xff\xd8\xff<script>alert(1)</script>", JPEG[:-10], PNG[:-10], PNG + b"<script>alert(1)</script>"],
        ids=["signature-then-script", "truncated-jpeg", "truncated-png", "png-then-script"],
    )
    async def test_a_signature_in_front_of_something_else_is_415(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], state: AppState, body: bytes
    ) -> None:
        raw = await upload(client, device, body)
        multipart = await client.post(
            f"/api/clients/{UUID}/screenshot", files={"file": ("x.jpg", body, "image/jpeg")}, headers=device
        )
        for response in (raw, multipart):
            assert response.status_code == 415
            assert response.json() == {
                "error": "Unsupported media type: the screenshot must be a whole JPEG or PNG image"
            }
        assert files_in(state.settings.screenshots_dir) == set()
        assert (await client.get(f"/screenshots/{UUID}", headers=device)).status_code in (403, 404)

    async def test_images_and_every_other_answer_say_nosniff(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        await uploaded(client, device, PNG)
        answers = [
            await client.get(f"/screenshots/{UUID}", headers=user),
            await client.get(f"/screenshots/{UUID}/priority", headers=user),
            await client.get(f"/api/clients/{UUID}/screenshots", headers=user),
            await client.get("/screenshots/nobody", headers=user),
            await client.get("/healthz"),
            await client.get("/nowhere"),
            await upload(client, device, b"not an image"),
        ]
        assert answers[0].headers["content-type"] == "image/png"
        for response in answers:
            assert response.headers["x-content-type-options"] == "nosniff", response.request.url

    async def test_multipart_non_image_is_415(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/api/clients/{UUID}/screenshot", files={"file": ("x.png", b"<svg/>", "image/png")}, headers=device
        )
        assert response.status_code == 415

    async def test_unknown_type_is_400(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        response = await upload(client, device, JPEG, "sometimes")
        assert response.status_code == 400
        assert "screenshot_type" in response.json()["error"]
        assert files_in(state.settings.screenshots_dir) == set()

    async def test_bound_token_may_upload_for_its_own_client_only(
        self, backend: str, client: httpx.AsyncClient, make_token: TokenMaker, state: AppState
    ) -> None:
        bound = await make_token("device", client_uuid=UUID)
        assert (await upload(client, bound, JPEG)).status_code == 202
        other = await upload(client, bound, JPEG, client_uuid="display-2")
        assert other.status_code == 403
        assert len(files_in(state.settings.screenshots_dir)) == 1

    async def test_without_token_is_401(self, backend: str, client: httpx.AsyncClient) -> None:
        assert (await upload(client, {}, JPEG)).status_code == 401

    async def test_bad_uuid_is_400(self, backend: str, client: httpx.AsyncClient, device: dict[str, str]) -> None:
        assert (await upload(client, device, JPEG, client_uuid="bad.uuid")).status_code == 400


class TestUploadTooLarge:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"MAX_SCREENSHOT_BYTES": 4000}

    async def test_raw_and_multipart_over_the_limit_are_413(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        big = make_noise_png(60)
        assert 4000 < len(big) < 64 * 1024  # under the body limit: the service's own check answers
        assert (await upload(client, device, big, content_type="image/png")).status_code == 413
        multipart = await client.post(
            f"/api/clients/{UUID}/screenshot", files={"file": ("x.png", big, "image/png")}, headers=device
        )
        assert multipart.status_code == 413
        huge = make_noise_png(200)  # beyond the streaming body limit too
        assert (await upload(client, device, huge, content_type="image/png")).status_code == 413
        assert files_in(state.settings.screenshots_dir) == set()


class TestServe:
    async def test_latest_bytes_and_headers(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        await uploaded(client, device, PNG, "event_stop")
        await uploaded(client, device, JPEG)
        response = await client.get(f"/screenshots/{UUID}", headers=user)
        assert response.status_code == 200
        assert response.content == JPEG
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["etag"] == f'"{hashlib.sha256(JPEG).hexdigest()}"'
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-screenshot-type"] == "periodic"

    async def test_matching_if_none_match_is_304(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        await uploaded(client, device, JPEG)
        etag = (await client.get(f"/screenshots/{UUID}", headers=user)).headers["etag"]
        cached = await client.get(f"/screenshots/{UUID}", headers={**user, "If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        listed = await client.get(f"/screenshots/{UUID}", headers={**user, "If-None-Match": f'"other", W/{etag}'})
        assert listed.status_code == 304
        stale = await client.get(f"/screenshots/{UUID}", headers={**user, "If-None-Match": '"0123"'})
        assert stale.status_code == 200
        assert stale.content == JPEG

    async def test_new_image_changes_the_etag(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        await uploaded(client, device, JPEG)
        etag = (await client.get(f"/screenshots/{UUID}", headers=user)).headers["etag"]
        await uploaded(client, device, PNG)
        fresh = await client.get(f"/screenshots/{UUID}", headers={**user, "If-None-Match": etag})
        assert fresh.status_code == 200
        assert fresh.content == PNG

    async def test_unknown_client_and_missing_image_are_404(
        self, backend: str, client: httpx.AsyncClient, user: dict[str, str], session: AsyncSession, clock: Clock
    ) -> None:
        for path in (f"/screenshots/{UUID}", f"/screenshots/{UUID}/priority", f"/screenshots/{UUID}/history/1"):
            response = await client.get(path, headers=user)
            assert response.status_code == 404
            assert response.json() == {"error": "Client not found"}
        session.add(Client(uuid=UUID, registration_time=clock()))
        await session.commit()
        for path in (f"/screenshots/{UUID}", f"/screenshots/{UUID}/priority", f"/screenshots/{UUID}/history/1"):
            response = await client.get(path, headers=user)
            assert response.status_code == 404
            assert response.json() == {"error": "Screenshot not found"}

    async def test_reads_need_the_user_role(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str]
    ) -> None:
        await uploaded(client, device, JPEG)
        assert (await client.get(f"/screenshots/{UUID}")).status_code == 401
        for path in (f"/screenshots/{UUID}", f"/screenshots/{UUID}/priority", f"/api/clients/{UUID}/screenshots"):
            assert (await client.get(path, headers=device)).status_code == 403


class TestPriority:
    async def test_fallback_to_latest_until_a_priority_screenshot_arrives(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        await uploaded(client, device, JPEG)
        fallback = await client.get(f"/screenshots/{UUID}/priority", headers=user)
        assert fallback.status_code == 200
        assert fallback.content == JPEG
        assert fallback.headers["x-screenshot-fallback"] == "true"
        assert fallback.headers["x-screenshot-type"] == "periodic"

        await uploaded(client, device, PNG, "event_start")
        await uploaded(client, device, make_image(color=(1, 1, 1)))
        priority = await client.get(f"/screenshots/{UUID}/priority", headers=user)
        assert priority.content == PNG
        assert priority.headers["x-screenshot-fallback"] == "false"
        assert priority.headers["x-screenshot-type"] == "event_start"
        assert priority.headers["etag"] == f'"{hashlib.sha256(PNG).hexdigest()}"'
        cached = await client.get(
            f"/screenshots/{UUID}/priority", headers={**user, "If-None-Match": priority.headers["etag"]}
        )
        assert cached.status_code == 304
        assert cached.headers["x-screenshot-fallback"] == "false"


class TestOverviewPriorityTtl:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"PRIORITY_SCREENSHOT_TTL_SECONDS": 120}

    async def test_priority_is_active_for_the_ttl_then_expires(
        self,
        backend: str,
        client: httpx.AsyncClient,
        device: dict[str, str],
        superadmin: dict[str, str],
        clock: Clock,
    ) -> None:
        async def overview_client() -> dict[str, Any]:
            response = await client.get("/api/client-logs/monitoring-overview", headers=superadmin)
            assert response.status_code == 200
            body = response.json()
            (entry,) = body["clients"]
            entry["activePriorityScreenshots"] = body["summary"]["activePriorityScreenshots"]
            return dict(entry)

        await uploaded(client, device, JPEG, "event_stop")
        entry = await overview_client()
        assert entry["hasActivePriorityScreenshot"] is True
        assert entry["screenshotUrl"] == f"/screenshots/{UUID}/priority"
        assert entry["priorityScreenshotType"] == "event_stop"
        assert entry["activePriorityScreenshots"] == 1

        clock.advance(60)
        await uploaded(client, device, PNG)  # a periodic one does not end the priority state
        entry = await overview_client()
        assert entry["hasActivePriorityScreenshot"] is True
        assert entry["latestScreenshotType"] == "periodic"

        clock.advance(60)  # exactly the TTL: still active
        assert (await overview_client())["hasActivePriorityScreenshot"] is True
        clock.advance(1)
        entry = await overview_client()
        assert entry["hasActivePriorityScreenshot"] is False
        assert entry["screenshotUrl"] == f"/screenshots/{UUID}"
        assert entry["activePriorityScreenshots"] == 0


class TestHistory:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"SCREENSHOT_HISTORY_PER_CLIENT": 3}

    async def test_newest_first_with_urls_that_serve_each_image(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str], clock: Clock
    ) -> None:
        images = [make_image(color=(index, 9, 9)) for index in range(3)]
        for image in images:
            await uploaded(client, device, image)
            clock.advance(10)
        response = await client.get(f"/api/clients/{UUID}/screenshots", headers=user)
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 3
        listed = body["screenshots"]
        assert [item["hash"] for item in listed] == [hashlib.sha256(i).hexdigest() for i in reversed(images)]
        assert set(listed[0]) == {"id", "screenshot_type", "received_at", "hash", "size", "url", "analysis"}
        for item, image in zip(listed, reversed(images), strict=True):
            assert item["size"] == len(image)
            assert item["url"] == f"/screenshots/{UUID}/history/{item['id']}"
            served = await client.get(item["url"], headers=user)
            assert served.content == image
            assert served.headers["etag"] == f'"{item["hash"]}"'

    async def test_pruning_keeps_latest_and_latest_priority(
        self,
        backend: str,
        client: httpx.AsyncClient,
        device: dict[str, str],
        user: dict[str, str],
        clock: Clock,
        state: AppState,
    ) -> None:
        priority = await uploaded(client, device, PNG, "event_start")
        for index in range(5):
            clock.advance(10)
            await uploaded(client, device, make_image(color=(index, 99, 0)))
        listed = (await client.get(f"/api/clients/{UUID}/screenshots", headers=user)).json()["screenshots"]
        assert len(listed) == 4
        assert listed[-1]["hash"] == priority["hash"]
        assert [item["screenshot_type"] for item in listed] == ["periodic"] * 3 + ["event_start"]
        assert len(files_in(state.settings.screenshots_dir)) == 4
        assert (await client.get(f"/screenshots/{UUID}/priority", headers=user)).content == PNG

    async def test_history_of_unknown_client_is_404_and_of_new_client_empty(
        self, backend: str, client: httpx.AsyncClient, user: dict[str, str], superadmin: dict[str, str]
    ) -> None:
        response = await client.get(f"/api/clients/{UUID}/screenshots", headers=user)
        assert response.status_code == 404
        assert response.json() == {"error": "Client not found"}
        heartbeat = await client.post(f"/api/clients/{UUID}/heartbeat", headers=superadmin)
        assert heartbeat.status_code == 204
        assert (await client.get(f"/api/clients/{UUID}/screenshots", headers=user)).json() == {
            "screenshots": [],
            "count": 0,
        }

    async def test_history_id_of_another_client_is_404(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str]
    ) -> None:
        await uploaded(client, device, JPEG)
        await uploaded(client, device, PNG, client_uuid="display-2")
        other_id = (await client.get("/api/clients/display-2/screenshots", headers=user)).json()["screenshots"][0]["id"]
        response = await client.get(f"/screenshots/{UUID}/history/{other_id}", headers=user)
        assert response.status_code == 404
        assert response.json() == {"error": "Screenshot not found"}


class TestFiles:
    async def test_client_delete_removes_its_files_only(
        self,
        backend: str,
        client: httpx.AsyncClient,
        device: dict[str, str],
        superadmin: dict[str, str],
        state: AppState,
    ) -> None:
        await uploaded(client, device, JPEG)
        await uploaded(client, device, PNG, "event_start")
        await uploaded(client, device, PNG, client_uuid="display-2")
        assert len(files_in(state.settings.screenshots_dir)) == 3
        response = await client.delete(f"/api/clients/{UUID}", headers=superadmin)
        assert response.status_code == 204
        remaining = files_in(state.settings.screenshots_dir)
        assert len(remaining) == 1
        assert (await client.get("/screenshots/display-2", headers=superadmin)).status_code == 200

    async def test_no_temporary_files_after_uploads_and_refusals(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], state: AppState
    ) -> None:
        await uploaded(client, device, JPEG)
        await upload(client, device, b"nope")
        await upload(client, device, JPEG, "bogus")
        names = files_in(state.settings.screenshots_dir)
        assert len(names) == 1
        assert not [name for name in names if name.startswith(".")]


class TestConcurrentUploads:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"SCREENSHOT_HISTORY_PER_CLIENT": 3}

    async def test_rows_and_files_agree_after_concurrent_uploads(
        self, backend: str, client: httpx.AsyncClient, device: dict[str, str], user: dict[str, str], state: AppState
    ) -> None:
        images = [make_image(color=(index, 7, 7)) for index in range(8)]
        responses = await asyncio.gather(*(upload(client, device, image) for image in images))
        assert [response.status_code for response in responses] == [202] * 8
        listed = (await client.get(f"/api/clients/{UUID}/screenshots", headers=user)).json()["screenshots"]
        assert len(listed) == 3
        assert len(files_in(state.settings.screenshots_dir)) == 3
        latest = await client.get(f"/screenshots/{UUID}", headers=user)
        assert latest.headers["etag"] == f'"{listed[0]["hash"]}"'
