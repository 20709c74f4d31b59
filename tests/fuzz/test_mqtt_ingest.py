"""Fuzz the MQTT door (SPEC §5, §6.1) on both backends, without a broker: topic + payload through the real
`parse_message`, and what it accepts through `apply_actions` in a unit of work, as the ingest task does.

Nothing raises (a raise in the ingest task is a traceback and a `parse_error` or `store_failed` drop),
and after any accepted message every read endpoint answers 200 with valid JSON.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from app.services.mqtt_batch import apply_actions
from app.services.mqtt_topics import Parsed, parse_message
from app.services.unit_of_work import unit_of_work
from app.state import AppState
from tests.conftest import Clock
from tests.fuzz.strategies import (
    SCREENSHOT_TYPES,
    UUIDS,
    assert_every_read_answers,
    b64,
    encoded,
    healths,
    heartbeats,
    images,
    json_values,
    levels,
    log_bodies,
    nest,
    odd_text,
    timestamps,
    uuids,
)


def _raw_utf8(text: str) -> bytes:
    """Text as a display might send it, lone surrogates included (invalid UTF-8 on the wire)."""
    return text.encode("utf-8", "surrogatepass")


pytestmark = pytest.mark.usefixtures("backend")

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BEFORE_YEAR_1, AFTER_YEAR_9999 = "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"
shot_types = st.one_of(st.sampled_from(SCREENSHOT_TYPES), json_values)
screenshot_json = st.fixed_dictionaries(
    {"image": images.map(b64)}, optional={"screenshot_type": shot_types, "timestamp": timestamps}
)
dashboard_json = st.fixed_dictionaries(
    {"screenshot": st.fixed_dictionaries({"data": images.map(b64)}, optional={"timestamp": timestamps})},
    optional={"screenshot_type": shot_types, "health": st.one_of(healths, json_values)},
)
anything = st.one_of(json_values.map(encoded), st.binary(max_size=64), odd_text.map(_raw_utf8))
logs = st.tuples(
    levels.map(lambda level: f"logs/{level}"),
    st.one_of(log_bodies.map(encoded), log_bodies.map(encoded), odd_text.map(_raw_utf8), anything),
)
# (topic kind, payload): each kind with the payloads it should get, and sometimes anything.
messages = st.one_of(
    st.tuples(st.just("heartbeat"), st.one_of(heartbeats.map(encoded), st.just(b""), anything)),
    st.tuples(st.just("health"), st.one_of(healths.map(encoded), anything)),
    logs,
    st.tuples(st.just("screenshot"), st.one_of(images, screenshot_json.map(encoded), anything)),
    st.tuples(st.just("dashboard"), st.one_of(dashboard_json.map(encoded), anything)),
    st.tuples(st.just("status"), st.one_of(st.sampled_from([b"online", b"offline", b'"offline"']), anything)),
    st.tuples(st.one_of(odd_text, st.just("logs/info/extra")), anything),
)


async def ingest(
    state: AppState, clock: Clock, http: httpx.AsyncClient, headers: dict[str, str], topic: str, payload: bytes
) -> None:
    """What the ingest task does with one message, then every read."""
    client_uuid = topic.split("/")[1]
    clock.advance(7)
    result = parse_message(topic, payload, settings=state.settings, received_at=clock())
    if not isinstance(result, Parsed):
        event(f"rejected {result.kind} {result.reason}")
        assert result.reason != "parse_error"
        return
    event(f"accepted {result.kind} {result.outcome}")
    assert client_uuid in UUIDS, f"{topic!r} was accepted"
    async with unit_of_work(
        state.session_factory,
        screenshots_dir=state.settings.screenshots_dir,
        grace_seconds=state.settings.heartbeat_grace_seconds,
    ) as session:
        await apply_actions(session, result.actions, settings=state.settings, now=clock())
    await assert_every_read_answers(http, headers, client_uuid)


class TestMqttIngestFuzz:
    @FUZZ
    @given(client_uuid=st.sampled_from(UUIDS), message=logs)
    # The reports, always tried: a context ~250 levels deep, timestamps outside what is stored.
    @example(client_uuid="disp-1", message=("logs/error", encoded({"message": "deep", "context": nest(250)})))
    @example(
        client_uuid="disp-1",
        message=("logs/error", encoded({"message": "x", "timestamp": "0001-01-01T00:00:00+01:00"})),
    )
    @example(
        client_uuid="disp-1", message=("logs/warn", encoded({"message": "x", "timestamp": "9999-12-31T23:59:59-01:00"}))
    )
    async def test_log_messages(
        self,
        state: AppState,
        clock: Clock,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        client_uuid: str,
        message: tuple[str, bytes],
    ) -> None:
        kind, payload = message
        await ingest(
            state, clock, client, superadmin, f"{state.settings.MQTT_TOPIC_PREFIX}/{client_uuid}/{kind}", payload
        )

    @FUZZ
    @given(client_uuid=uuids, message=messages)
    async def test_any_topic_and_payload(
        self,
        state: AppState,
        clock: Clock,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        client_uuid: str,
        message: tuple[str, bytes],
    ) -> None:
        kind, payload = message
        await ingest(
            state, clock, client, superadmin, f"{state.settings.MQTT_TOPIC_PREFIX}/{client_uuid}/{kind}", payload
        )
