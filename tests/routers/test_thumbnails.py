"""`GET /thumbnails/{hash}?w=`: scaled JPEGs of stored screenshots for the dashboard's tiles (SPEC §11)."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from app.services.sweep import sweep_thumbnails
from app.services.thumbnails import thumbnail_name
from app.state import AppState
from tests.conftest import TokenMaker


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # One screenshot kept per display besides the latest ones: the second upload prunes the first.
    return {"SCREENSHOT_HISTORY_PER_CLIENT": 1}


@pytest.fixture
async def user(make_token: TokenMaker) -> dict[str, str]:
    return await make_token("user")


def picture(width: int, height: int, color: tuple[int, int, int] = (20, 120, 200), image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=image_format)
    return buffer.getvalue()


async def upload(http: httpx.AsyncClient, headers: dict[str, str], image: bytes, display: str = "disp-1") -> str:
    response = await http.post(
        f"/api/clients/{display}/screenshot", content=image, headers={**headers, "Content-Type": "image/png"}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["hash"])


class TestThumbnails:
    @pytest.mark.parametrize("width", [160, 320, 640])
    async def test_scaled_jpeg_keeps_the_aspect_ratio(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], user: dict[str, str], width: int
    ) -> None:
        digest = await upload(client, superadmin, picture(1280, 720))
        response = await client.get(f"/thumbnails/{digest}", params={"w": width}, headers=user)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["etag"] == f'"{digest}-{width}"'
        assert response.headers["cache-control"] == "private, max-age=31536000, immutable"
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.format == "JPEG"
            assert image.size == (width, width * 720 // 1280)

    async def test_small_image_is_not_enlarged(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        digest = await upload(client, superadmin, picture(100, 50))
        response = await client.get(f"/thumbnails/{digest}?w=640", headers=superadmin)
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (100, 50)

    async def test_etag_answers_304(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        digest = await upload(client, superadmin, picture(640, 480))
        first = await client.get(f"/thumbnails/{digest}?w=160", headers=superadmin)
        again = await client.get(
            f"/thumbnails/{digest}?w=160", headers={**superadmin, "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert again.content == b""
        other_width = await client.get(
            f"/thumbnails/{digest}?w=320", headers={**superadmin, "If-None-Match": first.headers["etag"]}
        )
        assert other_width.status_code == 200

    async def test_second_request_is_served_from_the_cache(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        digest = await upload(client, superadmin, picture(640, 480))
        first = await client.get(f"/thumbnails/{digest}?w=160", headers=superadmin)
        cached = state.settings.thumbnails_dir / thumbnail_name(digest, 160)
        assert cached.read_bytes() == first.content
        # What the cache holds is served as it is: nothing is rendered again.
        marker = picture(7, 3, image_format="JPEG")
        cached.write_bytes(marker)
        second = await client.get(f"/thumbnails/{digest}?w=160", headers=superadmin)
        assert second.content == marker

    @pytest.mark.parametrize("width", ["100", "0", "abc", "160.0", "-160"])
    async def test_other_widths_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], width: str
    ) -> None:
        digest = await upload(client, superadmin, picture(64, 64))
        response = await client.get(f"/thumbnails/{digest}", params={"w": width}, headers=superadmin)
        assert response.status_code == 400
        assert "error" in response.json()

    @pytest.mark.parametrize("digest", ["0" * 64, "not-a-hash", "A" * 64])
    async def test_unknown_hash_is_404(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], digest: str
    ) -> None:
        response = await client.get(f"/thumbnails/{digest}?w=160", headers=superadmin)
        assert response.status_code == 404
        assert response.json() == {"error": "Screenshot not found"}

    async def test_needs_a_token_and_the_user_role(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], make_token: TokenMaker
    ) -> None:
        digest = await upload(client, superadmin, picture(64, 64))
        assert (await client.get(f"/thumbnails/{digest}?w=160")).status_code == 401
        device = await make_token("device")
        assert (await client.get(f"/thumbnails/{digest}?w=160", headers=device)).status_code == 403

    async def test_pruned_screenshot_is_404_and_its_thumbnail_is_swept(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], state: AppState
    ) -> None:
        pruned = await upload(client, superadmin, picture(64, 64, (1, 2, 3)))
        assert (await client.get(f"/thumbnails/{pruned}?w=160", headers=superadmin)).status_code == 200
        kept = await upload(client, superadmin, picture(64, 64, (4, 5, 6)))  # a history of one: the first goes
        assert (await client.get(f"/thumbnails/{kept}?w=160", headers=superadmin)).status_code == 200
        response = await client.get(f"/thumbnails/{pruned}?w=160", headers=superadmin)
        assert response.status_code == 404
        cache = state.settings.thumbnails_dir
        assert (cache / thumbnail_name(pruned, 160)).exists()
        assert await sweep_thumbnails(state.session_factory, cache_dir=cache) == 1
        assert not (cache / thumbnail_name(pruned, 160)).exists()
        assert (cache / thumbnail_name(kept, 160)).exists()
