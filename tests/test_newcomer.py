"""The README's first steps, as a new user takes them: token file, database, client id, sample JPEG."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from app.config import DEFAULT_MQTT_CLIENT_ID, Settings
from app.main import create_app
from app.models import utcnow
from app.services.mqtt import SESSION_EXPIRY_SECONDS, MqttIngest
from app.state import MqttState
from tests.helpers import run_cli


def embedded_settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, DATA_DIR=data_dir, MQTT_ENABLED=False, **values)  # type: ignore[call-arg]


async def get_with(settings: Settings, path: str, secret: str) -> httpx.Response:
    """Start the app (its lifespan bootstraps the token), make one request, stop it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get(path, headers={"Authorization": f"Bearer {secret}"})


def session_expiry(settings: Settings) -> int:
    """The SessionExpiryInterval the ingest service would ask the broker for."""
    ingest = MqttIngest(
        settings=settings,
        session_factory=None,
        clock=utcnow,
        mqtt_state=MqttState(enabled=True),  # type: ignore[arg-type]
    )
    expiry: int = ingest._client()._properties.SessionExpiryInterval  # noqa: SLF001
    return expiry


class TestInitialTokenFile:
    async def test_a_first_start_on_another_database_keeps_the_first_databases_file(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        first = embedded_settings(data_dir)
        await get_with(first, "/healthz", "")
        token_file = first.initial_token_path
        first_secret = token_file.read_text().strip()

        other_db = tmp_path / "other.db"
        second = embedded_settings(data_dir, DATABASE_URL=f"sqlite+aiosqlite:///{other_db}")
        await get_with(second, "/healthz", "")

        assert token_file.read_text().strip() == first_secret
        assert (await get_with(first, "/api/tokens", first_secret)).status_code == 200
        [other_file] = [path for path in data_dir.iterdir() if path.name.startswith("initial-superadmin-token.other-")]
        assert stat.S_IMODE(other_file.stat().st_mode) == 0o600
        second_secret = other_file.read_text().strip()
        assert second_secret != first_secret
        assert (await get_with(second, "/api/tokens", second_secret)).status_code == 200
        assert (await get_with(second, "/api/tokens", first_secret)).status_code == 401


class TestDevelopmentClientId:
    async def test_development_runs_get_their_own_client_id(self) -> None:
        one = Settings(_env_file=None, ENV="development")  # type: ignore[call-arg]
        two = Settings(_env_file=None, ENV="dev")  # type: ignore[call-arg]
        assert one.MQTT_CLIENT_ID.startswith(f"{DEFAULT_MQTT_CLIENT_ID}-")
        assert one.MQTT_CLIENT_ID != two.MQTT_CLIENT_ID
        empty = Settings(_env_file=None, ENV="development", MQTT_CLIENT_ID="")  # type: ignore[call-arg]
        assert empty.MQTT_CLIENT_ID.startswith(f"{DEFAULT_MQTT_CLIENT_ID}-")
        # Nobody resumes a per-run session, so the broker is not asked to keep it.
        assert one.mqtt_client_id_is_per_run
        assert session_expiry(one) == 0

    async def test_production_and_an_explicit_id_stay_fixed(self) -> None:
        assert Settings(_env_file=None).MQTT_CLIENT_ID == DEFAULT_MQTT_CLIENT_ID  # type: ignore[call-arg]
        assert Settings(_env_file=None, MQTT_CLIENT_ID="").MQTT_CLIENT_ID == DEFAULT_MQTT_CLIENT_ID  # type: ignore[call-arg]
        explicit = Settings(_env_file=None, ENV="development", MQTT_CLIENT_ID="mine")  # type: ignore[call-arg]
        assert explicit.MQTT_CLIENT_ID == "mine"
        assert not explicit.mqtt_client_id_is_per_run
        assert session_expiry(explicit) == SESSION_EXPIRY_SECONDS


class TestCommandLine:
    def test_tokens_says_which_database_it_acts_on(self, tmp_path: Path) -> None:
        database = tmp_path / "cli.db"
        result = run_cli("tokens", "list", env={"DATABASE_URL": f"sqlite+aiosqlite:///{database}"})
        assert result.returncode == 0, result.stderr
        assert f"database: sqlite+aiosqlite:///{database}" in result.stderr.splitlines()
        assert database.exists()

    def test_the_database_password_is_never_shown(self, tmp_path: Path) -> None:
        url = "postgresql+asyncpg://monitor:hunter2@127.0.0.1:1/monitor"
        result = run_cli("tokens", "list", env={"DATABASE_URL": url, "AUTO_MIGRATE": "false"})
        assert "database: postgresql+asyncpg://monitor:***@127.0.0.1:1/monitor" in result.stderr
        assert "hunter2" not in result.stderr + result.stdout

    def test_simulate_writes_a_sample_jpeg_and_names_the_credentials_it_uses(self, tmp_path: Path) -> None:
        shot = tmp_path / "shot.jpg"
        result = run_cli("simulate", "--write-jpeg", str(shot), env={})
        assert result.returncode == 0, result.stderr
        with Image.open(io.BytesIO(shot.read_bytes())) as image:
            assert image.format == "JPEG"
        help_text = " ".join(run_cli("simulate", "--help", env={}).stdout.split())
        assert "MQTT_USERNAME / MQTT_PASSWORD" in help_text
        assert "--credentials" in help_text
