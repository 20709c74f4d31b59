"""Webhooks end to end on both backends: the evaluator's outbox, delivery over real HTTP to the receiver
script of deploy/ (started on a free port), signatures, retries, restarts, replicas, group alerts."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app.config import Settings
from app.main import create_app
from app.models import Notification
from app.services.evaluator import StatusEvaluator
from app.services.ingest import record_heartbeat
from app.services.webhooks import deliver_due, retry_delay, signature
from app.state import AppState
from tests.conftest import Clock

pytestmark = pytest.mark.usefixtures("backend")

GRACE = 60
CONFIRM = 30
SECRET = "s3cret-for-the-receiver-test"
RECEIVER_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "webhook_receiver.py"


def load_receiver_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver", RECEIVER_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECEIVER = load_receiver_script()


@dataclass
class LiveReceiver:
    """The deploy/ receiver on a free port; `fail_next` answers that many deliveries with 500."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    # Every request that reached it: (delivery id, signature valid).
    requests: list[tuple[str, bool]] = field(default_factory=list)
    fail_next: int = 0

    def handle(self, event: dict[str, Any]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("receiver down")
        self.events.append(event)


@pytest.fixture
def receiver() -> Iterator[LiveReceiver]:
    live = LiveReceiver()
    script = RECEIVER.Receiver(SECRET, handle=live.handle)
    receive = script.receive

    def recording(body: bytes, headers: Any) -> int:
        valid = RECEIVER.verify_signature(SECRET, body, headers.get("X-Infoscreen-Signature"))
        live.requests.append((headers.get("X-Infoscreen-Delivery"), valid))
        status: int = receive(body, headers)
        return status

    script.receive = recording
    server = script.server("127.0.0.1", 0)
    live.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield live
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "HEARTBEAT_GRACE_PERIOD_PROD": GRACE,
        "STATUS_CONFIRM_SECONDS": CONFIRM,
        "RECOVERY_HEARTBEATS": 2,
        "ALERT_REMINDER_MINUTES": 60,
        "GROUP_ALERT_THRESHOLD": 5,
    }


@pytest.fixture
async def evaluator(state: AppState) -> AsyncIterator[StatusEvaluator]:
    evaluator = StatusEvaluator(state)
    yield evaluator
    await evaluator.release()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def add_webhook(client: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: Any) -> int:
    response = await client.post("/api/webhooks", json={"url": url, "secret": SECRET, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    webhook_id: int = response.json()["id"]
    return webhook_id


async def beat(state: AppState, clock: Clock, *uuids: str) -> None:
    async with state.session_factory() as session, session.begin():
        for uuid in uuids:
            await record_heartbeat(session, client_uuid=uuid, fields={}, now=clock())


async def go_down(state: AppState, clock: Clock, evaluator: StatusEvaluator, *uuids: str) -> None:
    """Seen alive, then silent past the grace period and the confirm time: incidents opened."""
    await beat(state, clock, *uuids)
    await evaluator.run_pass()
    clock.advance(GRACE + 1)
    await evaluator.run_pass()
    clock.advance(CONFIRM)
    await evaluator.run_pass()


async def come_back(state: AppState, clock: Clock, evaluator: StatusEvaluator, *uuids: str) -> None:
    for _ in range(2):
        clock.advance(10)
        await beat(state, clock, *uuids)
        await evaluator.run_pass()


async def outbox(state: AppState) -> dict[str, int]:
    async with state.session_factory() as session:
        query = select(Notification.status, func.count()).group_by(Notification.status)  # type: ignore[call-overload]
        return dict((await session.execute(query)).all())


class TestRules:
    def test_signature_is_the_hmac_sha256_of_the_body(self) -> None:
        body = b'{"event":"incident_opened"}'
        assert RECEIVER.verify_signature(SECRET, body, signature(SECRET, body))
        assert not RECEIVER.verify_signature(SECRET, body + b" ", signature(SECRET, body))
        assert not RECEIVER.verify_signature("another-secret-of-16", body, signature(SECRET, body))

    def test_backoff_doubles_with_jitter_up_to_an_hour(self) -> None:
        rng = random.Random(1)
        for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (12, 3600), (40, 3600)):
            for _ in range(50):
                delay = retry_delay(attempts, rng=rng).total_seconds()
                assert ceiling / 2 <= delay <= ceiling


class TestDelivery:
    async def test_opened_reminder_and_recovered_arrive_signed_in_order(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        await go_down(state, clock, evaluator, "hall-1")
        assert (await deliver_due(state, http)).sent == 1
        clock.advance(60 * 60)
        await beat(state, clock)  # nothing changed: the reminder comes from the clock alone
        assert (await evaluator.run_pass()) is not None
        assert (await deliver_due(state, http)).sent == 1
        await come_back(state, clock, evaluator, "hall-1")
        assert (await deliver_due(state, http)).sent == 1
        kinds = [event["event"] for event in receiver.events]
        assert kinds == ["incident_opened", "incident_reminder", "incident_recovered"]
        assert {event["incident"]["client_uuid"] for event in receiver.events} == {"hall-1"}
        assert receiver.events[0]["incident"]["reasons"] == ["heartbeat_late"]
        assert receiver.events[2]["incident"]["closed_at"] is not None
        assert all(valid for _, valid in receiver.requests)
        assert [delivery for delivery, _ in receiver.requests] == [event["delivery_id"] for event in receiver.events]
        assert await outbox(state) == {"sent": 3}

    async def test_a_failing_receiver_gets_every_notification_later_with_the_same_delivery_id(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        receiver.fail_next = 3
        await go_down(state, clock, evaluator, "hall-2")
        await come_back(state, clock, evaluator, "hall-2")
        # The recovery waits behind the failing opened notice (ordered per display).
        for _ in range(3):
            result = await deliver_due(state, http)
            assert (result.sent, result.retried) == (0, 1)
            assert await deliver_due(state, http) == type(result)()  # nothing due before its backoff
            clock.advance(3600)
        assert (await deliver_due(state, http)).sent == 1
        assert (await deliver_due(state, http)).sent == 1
        assert [event["event"] for event in receiver.events] == ["incident_opened", "incident_recovered"]
        opened_id = receiver.events[0]["delivery_id"]
        assert [delivery for delivery, _ in receiver.requests] == [opened_id] * 4 + [receiver.events[1]["delivery_id"]]
        assert await outbox(state) == {"sent": 2}

    async def test_a_receiver_down_for_a_day_is_given_up_on(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, "http://127.0.0.1:9/nobody-listens")
        await go_down(state, clock, evaluator, "hall-3")
        for _ in range(40):
            await deliver_due(state, http)
            clock.advance(3600)
        assert await outbox(state) == {"failed": 1}

    async def test_flapping_below_the_confirm_time_notifies_no_one(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        await beat(state, clock, "flappy")
        await evaluator.run_pass()
        for _ in range(10):
            clock.advance(GRACE + 1)
            await evaluator.run_pass()
            clock.advance(CONFIRM - 5)
            await beat(state, clock, "flappy")
            await evaluator.run_pass()
        assert await outbox(state) == {}


class TestGroupAlert:
    async def test_a_group_outage_sends_one_grouped_notice(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        group_id = (await client.post("/api/client-groups", json={"name": "Building A"}, headers=superadmin)).json()[
            "id"
        ]
        building = [f"a-{number}" for number in range(8)]
        await beat(state, clock, *building, "elsewhere")
        for uuid in building:
            response = await client.patch(f"/api/clients/{uuid}", json={"group_id": group_id}, headers=superadmin)
            assert response.status_code == 200
        await evaluator.run_pass()
        # Half the building goes down, then the rest 20 s later: one notice, held a minute for the rest.
        await beat(state, clock, *building[4:], "elsewhere")
        clock.advance(20)
        await beat(state, clock, "elsewhere")
        clock.advance(GRACE - 20 + 1)
        await evaluator.run_pass()
        clock.advance(20)
        await beat(state, clock, "elsewhere")
        await evaluator.run_pass()
        clock.advance(CONFIRM - 20)
        await beat(state, clock, "elsewhere")
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).sent == 0  # held
        clock.advance(20)
        await beat(state, clock, "elsewhere")
        await evaluator.run_pass()
        clock.advance(60)
        await beat(state, clock, "elsewhere")
        await evaluator.run_pass()
        while (await deliver_due(state, http)).attempted:
            pass
        [alert] = receiver.events
        assert (alert["event"], alert["kind"], alert["group_id"]) == ("group_alert", "incident_opened", group_id)
        assert sorted(incident["client_uuid"] for incident in alert["incidents"]) == building
        assert alert["count"] == 8

    async def test_a_group_outage_carried_over_several_passes_is_still_one_notice_each_way(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        group_id = (await client.post("/api/client-groups", json={"name": "Building B"}, headers=superadmin)).json()[
            "id"
        ]
        building = [f"b-{number}" for number in range(8)]
        await beat(state, clock, *building)
        for uuid in building:
            response = await client.patch(f"/api/clients/{uuid}", json={"group_id": group_id}, headers=superadmin)
            assert response.status_code == 200
        # Three transitions a pass: the first pass records 3 of the 8 (fewer than the threshold of 5).
        evaluator.rules = replace(evaluator.rules, transitions_per_pass=3)
        await go_down(state, clock, evaluator, *building)
        while (result := await evaluator.run_pass()) is not None and result.deferred:
            pass
        clock.advance(60)
        await evaluator.run_pass()
        while (await deliver_due(state, http)).attempted:
            pass
        [alert] = receiver.events
        assert (alert["event"], alert["kind"], alert["count"]) == ("group_alert", "incident_opened", 8)
        assert sorted(incident["client_uuid"] for incident in alert["incidents"]) == building
        assert len({incident["id"] for incident in alert["incidents"]}) == 8

        for _ in range(2):
            clock.advance(10)
            await beat(state, clock, *building)
            await evaluator.run_pass()
        while (result := await evaluator.run_pass()) is not None and result.deferred:
            pass
        clock.advance(60)
        await beat(state, clock, *building)
        await evaluator.run_pass()
        while (await deliver_due(state, http)).attempted:
            pass
        assert [event["event"] for event in receiver.events] == ["group_alert", "group_alert"]
        closing = receiver.events[1]
        assert (closing["kind"], closing["count"]) == ("incident_recovered", 8)
        assert sorted(incident["client_uuid"] for incident in closing["incidents"]) == building
        assert await outbox(state) == {"sent": 2}

    async def test_reminders_cut_by_the_bound_keep_each_group_in_one_notice(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        members: dict[int, list[str]] = {}
        for name in ("C", "D"):
            group_id = (await client.post("/api/client-groups", json={"name": name}, headers=superadmin)).json()["id"]
            members[group_id] = [f"{name.lower()}-{number}" for number in range(8)]
        await beat(state, clock, *(uuid for uuids in members.values() for uuid in uuids))
        for group_id, uuids in members.items():
            for uuid in uuids:
                response = await client.patch(f"/api/clients/{uuid}", json={"group_id": group_id}, headers=superadmin)
                assert response.status_code == 200
        # Ten a pass: the 16 reminders an hour later would be 8 of one group and 2 of the other.
        evaluator.rules = replace(evaluator.rules, transitions_per_pass=10)
        await go_down(state, clock, evaluator, *(uuid for uuids in members.values() for uuid in uuids))
        while (result := await evaluator.run_pass()) is not None and result.carry_over:
            pass
        clock.advance(3600)
        while (result := await evaluator.run_pass()) is not None and result.carry_over:
            pass
        clock.advance(60)
        await evaluator.run_pass()
        while (await deliver_due(state, http)).attempted:
            pass
        alerts = sorted(
            (event["kind"], event["group_id"], sorted(incident["client_uuid"] for incident in event["incidents"]))
            for event in receiver.events
        )
        assert [event["event"] for event in receiver.events] == ["group_alert"] * 4
        assert alerts == sorted(
            (kind, group_id, uuids)
            for kind in ("incident_opened", "incident_reminder")
            for group_id, uuids in members.items()
        )


class TestAcrossProcesses:
    async def test_the_service_restarted_between_an_incident_and_its_delivery_still_delivers(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        settings: Settings,
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        await go_down(state, clock, evaluator, "hall-4")
        assert await outbox(state) == {"pending": 1}
        # A new service on the same database (the first one never delivered: delivery is off in it).
        restarted = create_app(settings.model_copy(update={"WEBHOOK_DELIVERY_ENABLED": True}), clock=clock)
        async with restarted.router.lifespan_context(restarted):
            deadline = time.monotonic() + 20
            while not receiver.events:
                assert time.monotonic() < deadline, "the restarted service never delivered"
                await asyncio.sleep(0.05)
        assert [event["event"] for event in receiver.events] == ["incident_opened"]

    async def test_two_instances_send_each_notification_once(
        self,
        backend: str,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        settings: Settings,
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
    ) -> None:
        if backend != "postgresql":
            pytest.skip("replicas share a PostgreSQL database")
        await add_webhook(client, superadmin, receiver.url)
        await add_webhook(client, superadmin, receiver.url, events=["incident_opened"])
        displays = [f"solo-{number:02d}" for number in range(30)]
        await go_down(state, clock, evaluator, *displays)
        assert await outbox(state) == {"pending": 60}
        delivering = settings.model_copy(update={"WEBHOOK_DELIVERY_ENABLED": True})
        first, second = create_app(delivering, clock=clock), create_app(delivering, clock=clock)
        async with first.router.lifespan_context(first), second.router.lifespan_context(second):
            deadline = time.monotonic() + 30
            while len(receiver.events) < 60:
                assert time.monotonic() < deadline, f"{len(receiver.events)} of 60 delivered"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a duplicate would arrive now
        deliveries = [delivery for delivery, _ in receiver.requests]
        assert len(deliveries) == len(set(deliveries)) == 60
        assert await outbox(state) == {"sent": 60}


def z(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


class TestMaintenance:
    async def test_a_window_silences_notifications_but_the_history_records(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        window = {"client_uuid": "quiet", "starts_at": z(clock()), "ends_at": z(clock() + timedelta(hours=1))}
        created = await client.post("/api/maintenance-windows", json=window, headers=superadmin)
        assert created.status_code == 201, created.text
        assert created.json()["active_until"] == (clock() + timedelta(hours=1)).isoformat()
        await go_down(state, clock, evaluator, "quiet", "loud")
        await come_back(state, clock, evaluator, "quiet", "loud")
        clock.advance(2 * 3600)
        await beat(state, clock, "quiet", "loud")
        await evaluator.run_pass()
        while (await deliver_due(state, http)).attempted:
            pass
        assert [(e["event"], e["incident"]["client_uuid"]) for e in receiver.events] == [
            ("incident_opened", "loud"),
            ("incident_recovered", "loud"),
        ]
        history = (await client.get("/api/clients/quiet/status-history", headers=superadmin)).json()
        assert [(t["from"], t["to"]) for t in history["transitions"]] == [
            ("healthy", "offline"),
            ("offline", "healthy"),
        ]
        incidents = (await client.get("/api/incidents", headers=superadmin)).json()["incidents"]
        assert sorted(i["client_uuid"] for i in incidents) == ["loud", "quiet"]

    async def test_a_display_still_down_when_the_window_ends_is_notified_then(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        group_id = (await client.post("/api/client-groups", json={"name": "Night"}, headers=superadmin)).json()["id"]
        await beat(state, clock, "night-1")
        await client.patch("/api/clients/night-1", json={"group_id": group_id}, headers=superadmin)
        end = clock() + timedelta(minutes=10)
        window = {"group_id": group_id, "starts_at": z(clock()), "ends_at": z(end)}
        assert (await client.post("/api/maintenance-windows", json=window, headers=superadmin)).status_code == 201
        await go_down(state, clock, evaluator, "night-1")
        assert (await deliver_due(state, http)).attempted == 0
        clock.current = end - timedelta(seconds=1)
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).attempted == 0
        clock.advance(5)
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).sent == 1
        [opened] = receiver.events
        assert (opened["event"], opened["incident"]["client_uuid"]) == ("incident_opened", "night-1")
        # Reminders follow from then on, not from when the incident opened.
        clock.advance(60 * 60)
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).sent == 1
        assert receiver.events[-1]["event"] == "incident_reminder"

    async def test_announced_before_the_window_recovery_still_sent_within_reminder_only_after_if_still_down(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        await go_down(state, clock, evaluator, "early", "back")
        assert (await deliver_due(state, http)).sent == 2
        end = clock() + timedelta(hours=3)
        for uuid in ("early", "back"):
            window = {"client_uuid": uuid, "starts_at": z(clock()), "ends_at": z(end)}
            assert (await client.post("/api/maintenance-windows", json=window, headers=superadmin)).status_code == 201
        clock.advance(3600)  # the reminders fall inside the window: held back
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).attempted == 0
        # Recovers inside the window: its receiver was told it went down, so it is told it is back.
        await come_back(state, clock, evaluator, "back")
        assert (await deliver_due(state, http)).sent == 1
        assert receiver.events[-1]["event"] == "incident_recovered"
        assert receiver.events[-1]["incident"]["client_uuid"] == "back"
        assert receiver.events[-1]["incident"]["closed_at"] is not None
        clock.current = end + timedelta(seconds=1)
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).sent == 1  # the one still down: its reminder resumes
        seen = [(e["event"], e["incident"]["client_uuid"]) for e in receiver.events]
        assert sorted(seen[:2]) == [("incident_opened", "back"), ("incident_opened", "early")]
        assert seen[2:] == [("incident_recovered", "back"), ("incident_reminder", "early")]
        assert all(valid for _, valid in receiver.requests)

    async def test_a_group_alert_announced_before_the_window_is_closed_within_it_one_opened_within_never(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        await add_webhook(client, superadmin, receiver.url)
        groups = {}
        for name in ("Announced", "Silent"):
            response = await client.post("/api/client-groups", json={"name": name}, headers=superadmin)
            groups[name] = response.json()["id"]
        announced = [f"ann-{number}" for number in range(6)]
        silent = [f"sil-{number}" for number in range(6)]
        await beat(state, clock, *announced, *silent)
        for uuids, group_id in ((announced, groups["Announced"]), (silent, groups["Silent"])):
            for uuid in uuids:
                response = await client.patch(f"/api/clients/{uuid}", json={"group_id": group_id}, headers=superadmin)
                assert response.status_code == 200
        await evaluator.run_pass()
        # The first group goes down before any window (the second keeps beating).
        for step in (GRACE + 1, CONFIRM, 60):
            clock.advance(step)
            await beat(state, clock, *silent)
            await evaluator.run_pass()
        assert (await deliver_due(state, http)).sent == 1  # the group alert for the six
        end = clock() + timedelta(hours=2)
        for group_id in groups.values():
            window = {"group_id": group_id, "starts_at": z(clock()), "ends_at": z(end)}
            assert (await client.post("/api/maintenance-windows", json=window, headers=superadmin)).status_code == 201
        # The silent group goes down inside the window: recorded, never announced.
        await go_down(state, clock, evaluator, *silent)
        assert (await deliver_due(state, http)).attempted == 0
        # Both groups come back inside the window.
        await come_back(state, clock, evaluator, *announced, *silent)
        clock.advance(60)
        await beat(state, clock, *announced, *silent)
        await evaluator.run_pass()
        while (await deliver_due(state, http)).attempted:
            pass
        assert [(e["event"], e["kind"], e["group_id"]) for e in receiver.events] == [
            ("group_alert", "incident_opened", groups["Announced"]),
            ("group_alert", "incident_recovered", groups["Announced"]),
        ]
        closing = receiver.events[1]
        assert sorted(incident["client_uuid"] for incident in closing["incidents"]) == announced
        # After the window: nothing more (the silent group recovered within it).
        clock.current = end + timedelta(seconds=1)
        await beat(state, clock, *announced, *silent)
        await evaluator.run_pass()
        assert (await deliver_due(state, http)).attempted == 0
        incidents = (await client.get("/api/incidents", headers=superadmin)).json()["incidents"]
        assert len(incidents) == 12
        assert all(incident["closed_at"] is not None for incident in incidents)

    @pytest.mark.parametrize(
        "body",
        [
            {"starts_at": "2026-03-10T08:00:00Z", "ends_at": "2026-03-10T09:00:00Z"},
            {"client_uuid": "a", "group_id": 1, "starts_at": "2026-03-10T08:00:00Z", "ends_at": "2026-03-10T09:00:00Z"},
            {"client_uuid": "a", "starts_at": "2026-03-10T08:00:00Z"},
            {"client_uuid": "a", "starts_at": "2026-03-10T09:00:00Z", "ends_at": "2026-03-10T08:00:00Z"},
            {"group_id": 1, "weekdays": ["mon"], "start_time": "22:00"},
            {"group_id": 1, "weekdays": ["someday"], "start_time": "22:00", "end_time": "06:00"},
            {"group_id": 1, "weekdays": ["mon"], "start_time": "24:00", "end_time": "06:00"},
        ],
    )
    async def test_bad_windows_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], body: dict[str, Any]
    ) -> None:
        response = await client.post("/api/maintenance-windows", json=body, headers=superadmin)
        assert response.status_code == 400, response.text
        assert "error" in response.json()

    async def test_weekly_windows_listed_and_deleted(
        self, client: httpx.AsyncClient, superadmin: dict[str, str]
    ) -> None:
        body = {"group_id": 2, "weekdays": ["sat", "sun"], "start_time": "00:00", "end_time": "00:00"}
        created = (await client.post("/api/maintenance-windows", json=body, headers=superadmin)).json()
        listed = (await client.get("/api/maintenance-windows", headers=superadmin)).json()["maintenance_windows"]
        assert [(w["weekdays"], w["time_zone"]) for w in listed] == [(["sat", "sun"], "UTC")]
        gone = await client.delete(f"/api/maintenance-windows/{created['id']}", headers=superadmin)
        assert gone.status_code == 204
        again = await client.delete(f"/api/maintenance-windows/{created['id']}", headers=superadmin)
        assert again.status_code == 404


class TestMetrics:
    async def test_open_incidents_and_the_outbox_backlog(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        evaluator: StatusEvaluator,
        receiver: LiveReceiver,
        http: httpx.AsyncClient,
    ) -> None:
        async def scrape() -> dict[str, float]:
            text = (await client.get("/metrics")).text
            return {
                sample.name + (f"_{sample.labels['outcome']}" if "outcome" in sample.labels else ""): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name.startswith(("infoscreen_incidents", "infoscreen_notifications"))
            }

        await add_webhook(client, superadmin, receiver.url)
        before = await scrape()
        receiver.fail_next = 1
        await go_down(state, clock, evaluator, "hall-5")
        clock.advance(40)
        await deliver_due(state, http)
        during = await scrape()
        assert during["infoscreen_incidents_open"] == 1
        assert during["infoscreen_notifications_pending"] == 1
        assert during["infoscreen_notifications_oldest_pending_seconds"] == 40
        assert (
            during["infoscreen_notifications_total_retried"]
            == before.get("infoscreen_notifications_total_retried", 0) + 1
        )
        clock.advance(3600)
        await deliver_due(state, http)
        after = await scrape()
        assert (
            after["infoscreen_notifications_pending"],
            after["infoscreen_notifications_oldest_pending_seconds"],
        ) == (0, 0)
        assert after["infoscreen_notifications_total_sent"] == before.get("infoscreen_notifications_total_sent", 0) + 1


class TestManagement:
    async def test_crud_never_shows_the_secret(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], receiver: LiveReceiver
    ) -> None:
        webhook_id = await add_webhook(client, superadmin, receiver.url, group_id=3, events=["incident_opened"])
        listed = (await client.get("/api/webhooks", headers=superadmin)).json()["webhooks"]
        assert listed == [
            {
                "id": webhook_id,
                "url": receiver.url,
                "group_id": 3,
                "events": ["incident_opened"],
                "created_at": listed[0]["created_at"],
            }
        ]
        patched = await client.patch(f"/api/webhooks/{webhook_id}", json={"group_id": None}, headers=superadmin)
        assert patched.json()["group_id"] is None
        assert (await client.delete(f"/api/webhooks/{webhook_id}", headers=superadmin)).status_code == 204
        missing = await client.get(f"/api/webhooks/{webhook_id}", headers=superadmin)
        assert (missing.status_code, missing.json()) == (404, {"error": "Webhook not found"})

    @pytest.mark.parametrize(
        "body",
        [
            {"url": "ftp://example.org/x", "secret": SECRET},
            {"url": "/relative", "secret": SECRET},
            {"url": "https://example.org/x", "secret": "short"},
            {"url": "https://example.org/x", "secret": SECRET, "events": []},
            {"url": "https://example.org/x", "secret": SECRET, "events": ["group_alert"]},
            {"url": "https://example.org/x", "secret": SECRET, "extra": 1},
        ],
    )
    async def test_bad_webhooks_are_400(
        self, client: httpx.AsyncClient, superadmin: dict[str, str], body: dict[str, Any]
    ) -> None:
        response = await client.post("/api/webhooks", json=body, headers=superadmin)
        assert response.status_code == 400, response.text
        assert "error" in response.json()

    async def test_superadmin_only(self, client: httpx.AsyncClient, make_token: Any) -> None:
        admin = await make_token("admin")
        assert (await client.get("/api/webhooks", headers=admin)).status_code == 403


def test_retry_delays_cover_a_day_within_bounds() -> None:
    total = sum((retry_delay(attempt, rng=random.Random(attempt)) for attempt in range(1, 40)), timedelta())
    assert total > timedelta(hours=12)
