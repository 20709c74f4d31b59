"""The app starts on both backends and serves its probes."""

from __future__ import annotations

import httpx


class TestProbes:
    async def test_healthz_answers_ok(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_reports_database_and_disabled_mqtt(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"database": "ok", "mqtt": "disabled"}
