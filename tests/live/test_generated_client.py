"""A Python client generated from the live schema (openapi-python-client, pinned) works against the real server.

The client is generated once per test session, with the repository's `openapi-python-client.yaml`,
and any warning of the generator fails the test: a generated client that silently drops an
operation (as it did with the image responses) is what this guards against.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from app.__main__ import openapi_document
from app.config import Settings
from tests.conftest import SUPERADMIN_SECRET
from tests.helpers import png_bytes
from tests.live.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "openapi-python-client.yaml"
PACKAGE = "infoscreen_monitor_client"
GENERATE_TIMEOUT_SECONDS = 180


class Generated:
    """The generated package's modules, looked up by name: `generated.api("ingest", "ingest_logs")`."""

    def __init__(self, root: ModuleType) -> None:
        self.root = root
        self.models: Any = importlib.import_module(f"{PACKAGE}.models")
        self.types: Any = importlib.import_module(f"{PACKAGE}.types")
        self.opened: list[Any] = []

    def api(self, tag: str, operation: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")

    def client(self, url: str, token: str) -> Any:
        """A client that raises on any status the schema does not declare for the operation."""
        client = self.root.AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
        self.opened.append(client)
        return client

    def close(self) -> None:
        while self.opened:
            self.opened.pop().get_httpx_client().close()


@pytest.fixture(scope="session")
def schema_text() -> str:
    return openapi_document(Settings(_env_file=None))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory, schema_text: str) -> Iterator[Generated]:
    """Generate the client from the app's schema, with zero warnings, and import it."""
    directory = tmp_path_factory.mktemp("generated-client")
    schema_path = directory / "openapi.json"
    schema_path.write_text(schema_text)
    generator = Path(sys.executable).parent / "openapi-python-client"
    # The generator formats its output with ruff (a post hook), found on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(schema_path),
            "--output-path",
            str(directory / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(CONFIG),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=GENERATE_TIMEOUT_SECONDS,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    # Success prints exactly one line; a warning (an operation or response left out, a failed hook) adds more.
    assert output.splitlines() == [f"Generating {directory / PACKAGE}"], output
    sys.path.insert(0, str(directory))
    package = Generated(importlib.import_module(PACKAGE))
    try:
        yield package
    finally:
        package.close()
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_the_live_server_serves_the_committed_schema(live_server: LiveServer, schema_text: str) -> None:
    response = httpx.get(f"{live_server.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.json() == httpx.Response(200, content=schema_text).json()
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == schema_text, "docs/openapi.json is stale: run `make openapi`"


class TestScenario:
    """Token, ingest, overview, logs, screenshot download with ETag, and every error parsed: all typed."""

    def test_a_day_in_the_life_through_the_generated_client(
        self, live_server: LiveServer, generated: Generated
    ) -> None:
        models, types = generated.models, generated.types
        admin = generated.client(live_server.url, SUPERADMIN_SECRET)
        uuid = f"gen-{live_server.backend}"

        created = generated.api("tokens", "tokens_create").sync_detailed(
            client=admin, body=models.TokenCreate(name="generated", role=models.Role.DEVICE, client_uuid=uuid)
        )
        assert created.status_code == 201
        assert isinstance(created.parsed, models.TokenCreated)
        assert created.parsed.role is models.Role.DEVICE
        device = generated.client(live_server.url, created.parsed.token)

        heartbeat = generated.api("ingest", "ingest_heartbeat").sync_detailed(
            uuid,
            client=device,
            body=models.HeartbeatPayload(hostname="lobby", process_status=models.ProcessStatus.RUNNING),
        )
        assert heartbeat.status_code == 204
        logs = [
            models.LogIn(level="warn", message="slow", message_id="m-1"),
            models.LogIn(level="error", message="crash", context=models.LogInContextType0.from_dict({"pid": 4})),
        ]
        accepted = generated.api("ingest", "ingest_logs").sync_detailed(uuid, client=device, body=logs)
        assert accepted.status_code == 202
        assert accepted.parsed.accepted == 2
        image = png_bytes()
        stored = generated.api("ingest", "ingest_screenshot").sync_detailed(
            uuid,
            client=device,
            body=types.File(payload=BytesIO(image), file_name="shot.png", mime_type="image/png"),
            screenshot_type=models.ScreenshotType.EVENT_START,
        )
        assert stored.status_code == 202
        assert isinstance(stored.parsed, models.ScreenshotAccepted)
        assert stored.parsed.hash_ == hashlib.sha256(image).hexdigest()
        assert stored.parsed.screenshot_type is models.ScreenshotType.EVENT_START

        overview = generated.api("client_logs", "client_logs_monitoring_overview").sync_detailed(client=admin, hours=24)
        assert isinstance(overview.parsed, models.OverviewRead)
        [display] = [entry for entry in overview.parsed.clients if entry.uuid == uuid]
        assert display.status is models.DisplayStatus.CRITICAL
        assert display.process_status is models.ProcessStatus.RUNNING
        assert display.latest_screenshot_type is models.ScreenshotType.EVENT_START
        assert display.priority_screenshot_type is models.PriorityScreenshotType.EVENT_START
        assert display.has_active_priority_screenshot is True
        assert display.log_counts_24_h.error == 1
        assert display.latest_error.level is models.LogLevel.ERROR
        assert display.latest_error.context.additional_properties == {"pid": 4}

        listed = generated.api("client_logs", "client_logs_list").sync_detailed(uuid, client=admin, limit=10)
        assert isinstance(listed.parsed, models.ClientLogsRead)
        assert [entry.level for entry in listed.parsed.logs] == [models.LogLevel.ERROR, models.LogLevel.WARN]

        latest = generated.api("screenshots", "screenshots_latest")
        download = latest.sync_detailed(uuid, client=admin)
        assert download.status_code == 200
        assert isinstance(download.parsed, types.File)
        assert download.parsed.payload.read() == image
        etag = download.headers["etag"]
        assert etag == f'"{stored.parsed.hash_}"'
        assert download.headers["x-screenshot-type"] == "event_start"
        unchanged = latest.sync_detailed(uuid, client=admin, if_none_match=etag)
        assert unchanged.status_code == 304
        assert unchanged.content == b""

    def test_each_error_is_parsed_into_the_error_body(self, live_server: LiveServer, generated: Generated) -> None:
        models, types = generated.models, generated.types
        admin = generated.client(live_server.url, SUPERADMIN_SECRET)
        uuid = f"gen-errors-{live_server.backend}"
        heartbeat = generated.api("ingest", "ingest_heartbeat")
        assert (heartbeat.sync_detailed(uuid, client=admin)).status_code == 204
        user_token = generated.api("tokens", "tokens_create").sync_detailed(
            client=admin, body=models.TokenCreate(name="viewer", role=models.Role.USER)
        )
        user = generated.client(live_server.url, user_token.parsed.token)
        stranger = generated.client(live_server.url, "not-a-token")
        logs = generated.api("ingest", "ingest_logs")
        create_group = generated.api("groups", "groups_create")
        assert (create_group.sync_detailed(client=admin, body=models.GroupWrite(name="Hall"))).status_code == 201

        answers = {
            400: generated.api("client_logs", "client_logs_list").sync_detailed(uuid, client=admin, limit=0),
            401: generated.api("clients", "clients_list").sync_detailed(client=stranger),
            403: generated.api("clients", "clients_list").sync_detailed(client=user),
            404: generated.api("clients", "clients_get").sync_detailed("nobody-here", client=admin),
            409: create_group.sync_detailed(client=admin, body=models.GroupWrite(name="Hall")),
            413: logs.sync_detailed(
                uuid, client=admin, body=[models.LogIn(level="info", message="x") for _ in range(1001)]
            ),
            415: generated.api("ingest", "ingest_screenshot").sync_detailed(
                uuid, client=admin, body=types.File(payload=BytesIO(b"not an image"), mime_type="image/png")
            ),
        }
        for status, answer in answers.items():
            assert answer.status_code == status, (status, answer.content)
            assert isinstance(answer.parsed, models.ErrorBody), status
            assert answer.parsed.error, status
        assert answers[401].headers["www-authenticate"] == "Bearer"
        assert answers[404].parsed.error == "Client not found"
