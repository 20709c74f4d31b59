"""A commit that fails answers non-2xx and leaves nothing behind, rows or files (SPEC §5).

PostgreSQL only: the failure is injected with deferred constraint triggers, which fire at COMMIT,
after every statement of the request succeeded. SQLite has no such triggers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.helpers import new_uuid, png_bytes
from tests.live.conftest import HISTORY_PER_CLIENT, LiveServer

pytestmark = pytest.mark.parametrize("live_server", ["postgresql"], indirect=True)


@pytest.fixture
async def commit_fault(live_server: LiveServer) -> AsyncIterator[asyncpg.Connection]:
    """Deferred constraint triggers that raise at COMMIT for the displays listed in `commit_faults`.

    They run after every statement of the request succeeded, when the transaction commits: the
    only thing that can fail is the commit itself.
    """
    connection = await asyncpg.connect(live_server.asyncpg_url)
    await connection.execute(
        """
        CREATE TABLE commit_faults (uuid text PRIMARY KEY);
        CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            display text := to_jsonb(NEW) ->> TG_ARGV[0];
        BEGIN
            IF EXISTS (SELECT 1 FROM commit_faults WHERE uuid = display) THEN
                RAISE EXCEPTION 'injected commit failure for %', display;
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER fail_clients_at_commit AFTER INSERT OR UPDATE ON clients
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit('uuid');
        CREATE CONSTRAINT TRIGGER fail_logs_at_commit AFTER INSERT ON client_logs
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit('client_uuid');
        CREATE CONSTRAINT TRIGGER fail_screenshots_at_commit AFTER INSERT ON screenshots
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit('client_uuid');
        """
    )
    try:
        yield connection
    finally:
        await connection.execute(
            """
            DROP TRIGGER fail_clients_at_commit ON clients;
            DROP TRIGGER fail_logs_at_commit ON client_logs;
            DROP TRIGGER fail_screenshots_at_commit ON screenshots;
            DROP FUNCTION fail_at_commit;
            DROP TABLE commit_faults;
            """
        )
        await connection.close()


def stored_files(server: LiveServer) -> list[str]:
    return sorted(path.name for path in server.screenshots_dir.iterdir() if not path.name.startswith("."))


class TestFailedCommit:
    async def test_a_failed_commit_is_not_acknowledged_and_stores_nothing(
        self, live: httpx.AsyncClient, live_server: LiveServer, commit_fault: asyncpg.Connection
    ) -> None:
        display = new_uuid("doomed")
        await commit_fault.execute("INSERT INTO commit_faults VALUES ($1)", display)
        files_before = stored_files(live_server)
        answers = [
            await live.post(f"/api/clients/{display}/heartbeat", json={"hostname": "doomed"}),
            await live.post(f"/api/clients/{display}/logs", json=[{"level": "error", "message": "lost?"}]),
            await live.post(
                f"/api/clients/{display}/screenshot", content=png_bytes(), headers={"Content-Type": "image/png"}
            ),
        ]

        assert [answer.status_code for answer in answers] == [500, 500, 500]
        assert all(answer.json() == {"error": "Internal server error"} for answer in answers)
        assert (await live.get(f"/api/clients/{display}")).status_code == 404
        stored = await commit_fault.fetchval(
            "SELECT (SELECT count(*) FROM clients WHERE uuid = $1) + (SELECT count(*) FROM client_logs"
            " WHERE client_uuid = $1) + (SELECT count(*) FROM screenshots WHERE client_uuid = $1)",
            display,
        )
        assert stored == 0
        # The image was written before its row: the rolled-back unit of work removed it again.
        assert stored_files(live_server) == files_before

    async def test_pruned_history_files_stay_when_the_commit_fails(
        self, live: httpx.AsyncClient, live_server: LiveServer, commit_fault: asyncpg.Connection
    ) -> None:
        display = new_uuid("kept")
        for color in ("red", "green", "blue"):
            uploaded = await live.post(
                f"/api/clients/{display}/screenshot", content=png_bytes(color), headers={"Content-Type": "image/png"}
            )
            assert uploaded.status_code == 202
        history = (await live.get(f"/api/clients/{display}/screenshots")).json()["screenshots"]
        assert len(history) == HISTORY_PER_CLIENT
        files_before = stored_files(live_server)
        await commit_fault.execute("INSERT INTO commit_faults VALUES ($1)", display)

        # This upload prunes the oldest history entry, then its commit fails.
        refused = await live.post(
            f"/api/clients/{display}/screenshot", content=png_bytes("white"), headers={"Content-Type": "image/png"}
        )

        assert refused.status_code == 500
        assert stored_files(live_server) == files_before
        after = (await live.get(f"/api/clients/{display}/screenshots")).json()["screenshots"]
        # The screen analysis may have judged an image meanwhile: the rows themselves must be the same.
        assert [item["id"] for item in after] == [item["id"] for item in history]
        assert [item["hash"] for item in after] == [item["hash"] for item in history]
        for item in history:
            assert (await live.get(item["url"])).status_code == 200
