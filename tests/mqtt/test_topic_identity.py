"""Defence in depth (SPEC §13): a message in one display's topic changes that display only.

Even behind a broker without ACLs (the anonymous test broker here), the display a message is about
comes from its topic; no field of the payload can name another display.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime

from app.config import Settings
from app.services.mqtt_topics import Liveness, Parsed, parse_message
from app.simulate import sample_jpeg
from app.state import AppState
from tests.mqtt.conftest import Publisher, Service, get_client, logs_of, screenshots_of, wait_for_log

VICTIM = "display-b"
# Every way a payload could try to name another display.
IMPERSONATION = {"uuid": VICTIM, "client_uuid": VICTIM, "clientUuid": VICTIM, "client_id": VICTIM, "id": VICTIM}


def hostile_messages() -> list[tuple[str, bytes]]:
    """(topic suffix under display-a, payload) for every kind, each naming display-b in its payload."""
    image = base64.b64encode(sample_jpeg()).decode()
    return [
        ("heartbeat", json.dumps({**IMPERSONATION, "hostname": "a-host", "process_status": "running"}).encode()),
        ("health", json.dumps({**IMPERSONATION, "screen_health_status": "BLACK"}).encode()),
        ("logs/error", json.dumps({**IMPERSONATION, "message": "from a", "context": IMPERSONATION}).encode()),
        ("screenshot", json.dumps({**IMPERSONATION, "image": image, "screenshot_type": "event_start"}).encode()),
        (
            "dashboard",
            json.dumps(
                {
                    **IMPERSONATION,
                    "screenshot": {**IMPERSONATION, "data": image},
                    "health": {**IMPERSONATION, "process_status": "crashed"},
                }
            ).encode(),
        ),
        ("status", b"offline"),
    ]


class TestParsing:
    def test_every_action_is_about_the_topics_display(self) -> None:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        for suffix, payload in hostile_messages():
            topic = f"{settings.MQTT_TOPIC_PREFIX}/display-a/{suffix}"
            result = parse_message(topic, payload, settings=settings, received_at=datetime.now(UTC))
            assert isinstance(result, Parsed), (suffix, result)
            assert result.client_uuid == "display-a"
            for action in result.actions:
                assert is_dataclass(action)
                assert action.client_uuid == "display-a", (suffix, action)
                # Nothing in the fields applied to the row may carry an identity of its own.
                if isinstance(action, Liveness):
                    assert not set(action.fields) & {*IMPERSONATION, *(f.name for f in fields(action))}


class TestIngest:
    async def test_a_payload_naming_another_display_changes_only_the_topics_display(
        self, backend: str, state: AppState, service: Service, publisher: Publisher
    ) -> None:
        for suffix, payload in hostile_messages():
            await publisher.publish(f"display-a/{suffix}", payload)
        await publisher.publish("display-a/logs/info", "sentinel")
        await wait_for_log(state, "display-a", "sentinel")

        assert await get_client(state, VICTIM) is None
        assert await logs_of(state, VICTIM) == []
        assert await screenshots_of(state, VICTIM) == []
        display_a = await get_client(state, "display-a")
        assert display_a is not None
        assert (display_a.hostname, display_a.process_status) == ("a-host", "crashed")
        assert len(await screenshots_of(state, "display-a")) == 2
