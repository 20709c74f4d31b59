"""Fuzz the HTTP ingest doors (SPEC §5, §6.2) on both backends: nothing is a 500, every refusal is
`{"error": ...}`, and after any accepted input every read endpoint answers 200 with valid JSON.

One app (and database) per test: examples pile up on the same rows, as a real fleet's input does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import (
    SCREENSHOT_TYPES,
    UUIDS,
    assert_every_read_answers,
    client_path,
    encoded,
    healths,
    heartbeats,
    http_logs,
    images,
    json_values,
    nest,
    uuids,
)

pytestmark = pytest.mark.usefixtures("backend")

# The app fixture lives for the whole test, across examples: state accumulates on purpose.
FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


async def check(
    http: httpx.AsyncClient, headers: dict[str, str], client_uuid: str, response: httpx.Response, *, registers: bool
) -> None:
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert isinstance(body["error"], str), body
        return
    assert client_uuid in UUIDS, f"{client_uuid!r} was accepted"
    await assert_every_read_answers(http, headers, client_uuid if registers else None)


class TestHttpIngestFuzz:
    @FUZZ
    @given(client_uuid=uuids, kind=st.sampled_from(["heartbeat", "health"]), data=st.data())
    async def test_heartbeat_and_health(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], client_uuid: str, kind: str, data: st.DataObject
    ) -> None:
        body: Any = data.draw(st.one_of(heartbeats if kind == "heartbeat" else healths, json_values), label="body")
        response = await client.post(
            f"/api/clients/{client_path(client_uuid)}/{kind}",
            content=encoded(body),
            headers={**superadmin, "Content-Type": "application/json"},
        )
        await check(client, superadmin, client_uuid, response, registers=True)

    @FUZZ
    @given(client_uuid=uuids, body=st.one_of(http_logs, http_logs, st.lists(http_logs, max_size=3), json_values))
    # The reports, always tried: a timestamp before year 1 in UTC, a context far beyond 32 levels.
    @example(client_uuid="disp-1", body={"level": "error", "message": "x", "timestamp": "0001-01-01T00:00:00+01:00"})
    @example(client_uuid="disp-1", body=[{"level": "error", "message": "x", "context": nest(150)}])
    async def test_logs(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], client_uuid: str, body: Any
    ) -> None:
        response = await client.post(
            f"/api/clients/{client_path(client_uuid)}/logs",
            content=encoded(body),
            headers={**superadmin, "Content-Type": "application/json"},
        )
        await check(client, superadmin, client_uuid, response, registers=body != [])

    @FUZZ
    @given(
        client_uuid=uuids,
        image=images,
        screenshot_type=st.one_of(
            st.sampled_from(SCREENSHOT_TYPES), st.sampled_from(SCREENSHOT_TYPES), st.text(max_size=10)
        ),
        content_type=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", "text/plain"]),
    )
    async def test_screenshot(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        client_uuid: str,
        image: bytes,
        screenshot_type: str,
        content_type: str,
    ) -> None:
        response = await client.post(
            f"/api/clients/{client_path(client_uuid)}/screenshot",
            params={"screenshot_type": screenshot_type},
            content=image,
            headers={**superadmin, "Content-Type": content_type},
        )
        await check(client, superadmin, client_uuid, response, registers=True)
