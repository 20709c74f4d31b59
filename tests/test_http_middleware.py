"""gzip for large JSON (never for images or event streams) and CORS, off unless `CORS_ORIGINS` is set."""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from PIL import Image

from app.main import GZIP_MINIMUM_BYTES
from tests.helpers import heartbeat

pytestmark = pytest.mark.usefixtures("backend")

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}
ORIGIN = "https://wall.example.org"


def noisy_png() -> bytes:
    """A PNG that does not compress (random pixels), well above the gzip threshold."""
    generator = random.Random(7)
    image = Image.new("RGB", (64, 64))
    image.putdata([tuple(generator.randrange(256) for _ in range(3)) for _ in range(64 * 64)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def raw_get(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent on the wire (httpx would otherwise decode gzip)."""
    async with http.stream("GET", path, headers=headers) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, body


class TestGzip:
    async def test_large_json_is_gzipped_for_clients_that_accept_it(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        for number in range(20):
            await heartbeat(client, superadmin, f"disp-{number:02d}", {"hostname": f"host-{number}"})
        path = "/api/client-logs/monitoring-overview"
        plain, plain_body = await raw_get(client, path, {**superadmin, **IDENTITY})
        assert "content-encoding" not in plain.headers
        assert len(plain_body) > GZIP_MINIMUM_BYTES
        zipped, zipped_body = await raw_get(client, path, {**superadmin, **GZIP})
        assert zipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in zipped.headers["vary"].lower()
        assert len(zipped_body) < len(plain_body) / 3
        unzipped = json.loads(gzip.decompress(zipped_body))
        assert unzipped["summary"]["totalClients"] == 20
        assert unzipped["clients"] == json.loads(plain_body)["clients"]

    async def test_small_answers_are_sent_as_they_are(self, client: httpx.AsyncClient) -> None:
        response, body = await raw_get(client, "/healthz", GZIP)
        assert "content-encoding" not in response.headers
        assert json.loads(body) == {"status": "ok"}

    async def test_images_are_never_gzipped(self, client: httpx.AsyncClient, superadmin: dict[str, str]) -> None:
        image = noisy_png()
        assert len(image) > GZIP_MINIMUM_BYTES
        upload = await client.post(
            "/api/clients/disp-1/screenshot", content=image, headers={**superadmin, "Content-Type": "image/png"}
        )
        assert upload.status_code == 202, upload.text
        response, body = await raw_get(client, "/screenshots/disp-1", {**superadmin, **GZIP})
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        assert body == image

    async def test_event_streams_are_never_gzipped(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async def events() -> AsyncIterator[bytes]:
            for number in range(50):
                yield f"id: {number}\nevent: status\ndata: {'x' * 100}\n\n".encode()

        async def stream() -> StreamingResponse:
            return StreamingResponse(events(), media_type="text/event-stream")

        app.add_api_route("/test-only/events", stream)
        response, body = await raw_get(client, "/test-only/events", GZIP)
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        assert body.count(b"event: status") == 50


class TestCorsOff:
    async def test_no_cors_headers_by_default(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        preflight = await client.options(
            "/api/clients", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in preflight.headers


class TestCorsOn:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"CORS_ORIGINS": f"{ORIGIN}/, http://localhost:3000"}

    async def test_listed_origin_may_call_with_a_bearer_token(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        preflight = await client.options(
            "/api/clients",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        response = await client.get("/api/clients", headers={**superadmin, "Origin": ORIGIN})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "etag" in response.headers["access-control-expose-headers"].lower()

    async def test_other_origins_get_no_allowance(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in response.headers
