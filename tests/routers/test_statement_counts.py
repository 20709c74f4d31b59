"""Read endpoints cost a fixed number of SQL statements, whatever the number of clients (STYLE §8)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from app.schemas.ingest import LogRecord
from app.services.ingest import record_heartbeat, record_logs
from app.state import AppState
from tests.conftest import Clock, StatementCounter

pytestmark = pytest.mark.usefixtures("backend")

# path, statements per request (the first is always the token lookup)
ENDPOINTS = {
    "monitoring-overview": ("/api/client-logs/monitoring-overview", 3),
    "monitoring-overview-1h": ("/api/client-logs/monitoring-overview?hours=1", 3),
    "summary": ("/api/client-logs/summary", 2),
    "recent-errors": ("/api/client-logs/recent-errors", 2),
    "client-logs": ("/api/client-logs/disp-000/logs?level=error&since=2026-03-09T00:00:00Z", 2),
    # No log matches: one more statement to tell an empty list from an unknown client (404).
    "client-logs-none": ("/api/client-logs/disp-000/logs?since=2030-01-01T00:00:00Z", 3),
    "test": ("/api/client-logs/test", 3),
    "monitoring-overview-filtered": ("/api/client-logs/monitoring-overview?group_id=1&status=critical&q=host", 3),
    # Reads one row more than the page to know whether a next page exists: no extra statement.
    "client-logs-cursor": ("/api/client-logs/disp-000/logs?limit=2&cursor=MjAyNi0wMy0xMFQwMDowMDowMCswMDowMHw5OTk5", 2),
    "clients": ("/api/clients", 3),
    "clients-filtered": ("/api/clients?group_id=1&status=critical&q=host", 3),
    # The client and its uptime (its evaluated state with a month of status changes, one statement).
    "client": ("/api/clients/disp-000", 4),
    # No transition recorded: one more statement to tell an empty history from an unknown client (404).
    "status-history": ("/api/clients/disp-000/status-history?hours=720", 3),
    "incidents": ("/api/incidents?open=true&group_id=1&since=2026-03-09T00:00:00Z", 2),
}


async def add_clients(state: AppState, clock: Clock, start: int, stop: int) -> None:
    """Clients that are alive, with logs of every level spread over two days."""
    now = clock()
    async with state.session_factory() as session, session.begin():
        entries = []
        for number in range(start, stop):
            uuid = f"disp-{number:03d}"
            await record_heartbeat(session, client_uuid=uuid, fields={"hostname": f"host-{number}"}, now=now)
            for minutes, level in ((5, "ERROR"), (90, "WARN"), (600, "INFO"), (2000, "DEBUG"), (3000, "ERROR")):
                record = LogRecord(level=level, message=f"{level} {number}", timestamp=now - timedelta(minutes=minutes))
                entries.append((uuid, record))
        await record_logs(session, entries, now=now)


async def count_statements(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], counter: StatementCounter
) -> int:
    # Warm-up: the token's last_used_at write happens at most once a minute, not on this request.
    assert (await http.get(path, headers=headers)).status_code == 200
    counter.reset()
    counter.counting = True
    try:
        response = await http.get(path, headers=headers)
    finally:
        counter.counting = False
    assert response.status_code == 200, response.text
    return counter.count


class TestFixedStatementCount:
    @pytest.mark.parametrize("endpoint", list(ENDPOINTS))
    async def test_same_count_for_3_and_30_clients(
        self,
        endpoint: str,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        statement_counter: StatementCounter,
    ) -> None:
        clock.advance(17 * 60 + 5)  # off the hour: the window's first partial hour is counted too
        path, expected = ENDPOINTS[endpoint]
        await add_clients(state, clock, 0, 3)
        few = await count_statements(client, path, superadmin, statement_counter)
        await add_clients(state, clock, 3, 30)
        many = await count_statements(client, path, superadmin, statement_counter)
        assert few == many, statement_counter.statements
        assert many == expected, statement_counter.statements

    async def test_overview_statements(
        self,
        client: httpx.AsyncClient,
        superadmin: dict[str, str],
        state: AppState,
        clock: Clock,
        statement_counter: StatementCounter,
    ) -> None:
        """The overview is one statement for the token, one for window counts, one for the clients."""
        await add_clients(state, clock, 0, 30)
        path = ENDPOINTS["monitoring-overview"][0]
        count = await count_statements(client, path, superadmin, statement_counter)
        assert count == 3, statement_counter.statements
        body = (await client.get(path, headers=superadmin)).json()
        assert body["summary"]["totalClients"] == 30
        assert body["summary"]["criticalClients"] == 30
