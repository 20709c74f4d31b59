"""Fuzz the read endpoints' query values (SPEC §5, §9) on both backends: never a 500, a refusal is a 400
`{"error": ...}`, and an answer is valid JSON."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import EDGE_TIMESTAMPS, UUIDS, client_path, odd_text, timestamps, uuids
from tests.helpers import log, post_logs

pytestmark = pytest.mark.usefixtures("backend")

FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1.0", "1e3", "1_0", " 1", "+1", "", "true", "0x10", "٣"]),
    odd_text,
)
query_values = {
    "hours": numbers,
    "limit": numbers,
    "level": st.one_of(st.sampled_from(["error", "WARN", "warning", "Info", "debug", ""]), odd_text),
    "since": st.one_of(st.sampled_from(EDGE_TIMESTAMPS), timestamps.map(str)),
}
PATHS = [
    "/api/client-logs/monitoring-overview",
    "/api/client-logs/recent-errors",
    "/api/client-logs/summary",
    "/api/client-logs/{uuid}/logs",
    "/api/clients/{uuid}/screenshots",
]


class TestReadQueryFuzz:
    @FUZZ
    @given(
        path=st.sampled_from(PATHS),
        client_uuid=uuids,
        params=st.fixed_dictionaries({}, optional=query_values),
    )
    @example(path=PATHS[3], client_uuid="disp-1", params={"since": "0001-01-01T00:00:00+01:00"})
    @example(path=PATHS[3], client_uuid="disp-1", params={"since": "9999-12-31T23:59:59-01:00"})
    async def test_any_query(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], path: str, client_uuid: str, params: dict[str, str]
    ) -> None:
        await post_logs(client, superadmin, UUIDS[0], [log("error", "present")])
        response = await client.get(path.format(uuid=client_path(client_uuid)), params=params, headers=superadmin)
        event(f"HTTP {response.status_code}")
        assert response.status_code < 500, response.text
        body = json.loads(response.content)
        if response.status_code >= 400:
            assert isinstance(body["error"], str), body
