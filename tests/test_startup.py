"""Start-up on the embedded default: migrations, the first superadmin token, settings errors, the CLI."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
STARTUP_DEADLINE_SECONDS = 30


def embedded_settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, DATA_DIR=data_dir, MQTT_ENABLED=False, LOG_LEVEL="INFO", **values)  # type: ignore[call-arg]


async def get_with(settings: Settings, path: str, secret: str) -> httpx.Response:
    """Run the app with its lifespan and make one authenticated request."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get(path, headers={"Authorization": f"Bearer {secret}"})


def clean_env(**values: str) -> dict[str, str]:
    """The environment of a subprocess: none of this machine's service settings leak in."""
    keep = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "MQTT_ENABLED": "false", "PYTHONPATH": str(ROOT), **values}


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestFirstStart:
    async def test_creates_database_and_token_file_with_mode_0600(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        data_dir = tmp_path / "data"
        settings = embedded_settings(data_dir)
        assert settings.DATABASE_URL == ""
        with caplog.at_level(logging.INFO):
            response = await get_with(settings, "/api/tokens", "no-token-yet")
        assert response.status_code == 401
        token_file = data_dir / "initial-superadmin-token"
        assert token_file.exists()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert (data_dir / "monitor.db").exists()
        secret = token_file.read_text().strip()
        assert len(secret) >= 43
        assert str(token_file) in caplog.text
        assert secret not in caplog.text

        response = await get_with(settings, "/api/tokens", secret)
        assert response.status_code == 200
        tokens = response.json()["tokens"]
        assert [(t["name"], t["role"], t["revoked"]) for t in tokens] == [("initial-superadmin", "superadmin", False)]

    async def test_second_start_creates_no_other_token(self, tmp_path: Path) -> None:
        settings = embedded_settings(tmp_path / "data")
        await get_with(settings, "/healthz", "")
        token_file = settings.initial_token_path
        secret = token_file.read_text()

        response = await get_with(settings, "/api/tokens", secret.strip())
        assert response.status_code == 200
        assert len(response.json()["tokens"]) == 1
        assert token_file.read_text() == secret

        token_file.unlink()
        response = await get_with(settings, "/api/tokens", secret.strip())
        assert len(response.json()["tokens"]) == 1
        assert not token_file.exists()

    async def test_initial_superadmin_token_setting(self, tmp_path: Path) -> None:
        secret = "a-chosen-secret-of-enough-length-0123456789"
        settings = embedded_settings(tmp_path / "data", INITIAL_SUPERADMIN_TOKEN=secret)
        response = await get_with(settings, "/api/tokens", secret)
        assert response.status_code == 200
        assert len(response.json()["tokens"]) == 1
        assert not settings.initial_token_path.exists()
        response = await get_with(settings, "/api/tokens", secret)
        assert len(response.json()["tokens"]) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m app serve` on a free port, from an empty data folder."""
    port = free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=tmp_path,
        env=clean_env(DATA_DIR=str(data_dir), PORT=str(port), HOST="127.0.0.1", LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while True:
            assert process.poll() is None, process.communicate()[1].decode()
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield base_url, data_dir
    finally:
        process.terminate()
        process.communicate(timeout=30)


class TestServeCommand:
    def test_serves_with_the_initial_token(self, served: tuple[str, Path]) -> None:
        base_url, data_dir = served
        token_file = data_dir / "initial-superadmin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(f"{base_url}/readyz").json() == {"database": "ok", "mqtt": "disabled"}
        assert httpx.post(f"{base_url}/api/clients/disp-1/heartbeat", headers=headers).status_code == 204
        overview = httpx.get(f"{base_url}/api/client-logs/monitoring-overview", headers=headers).json()
        assert [client["uuid"] for client in overview["clients"]] == ["disp-1"]
        assert httpx.get(f"{base_url}/docs").status_code == 200


class TestBadSettings:
    @pytest.mark.parametrize(
        ("name", "value"),
        [("PORT", "abc"), ("ENV", "foo"), ("MQTT_PORT", "99999"), ("AUTO_MIGRATE", "perhaps")],
    )
    def test_serve_stops_with_one_line_naming_the_variable(self, tmp_path: Path, name: str, value: str) -> None:
        result = run_cli("serve", cwd=tmp_path, DATA_DIR=str(tmp_path / "data"), **{name: value})
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert name in lines[0]
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "data").exists()


class TestTokensCommand:
    async def test_create_list_revoke(self, tmp_path: Path) -> None:
        env = {"DATA_DIR": str(tmp_path / "data")}
        created = run_cli(
            "tokens", "create", "--name", "lobby", "--role", "device", "--client-uuid", "disp-1", cwd=tmp_path, **env
        )
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip().splitlines()[-1]
        assert len(secret) >= 43

        listed = run_cli("tokens", "list", cwd=tmp_path, **env)
        assert listed.returncode == 0, listed.stderr
        assert "lobby" in listed.stdout
        assert "disp-1" in listed.stdout
        assert secret not in listed.stdout

        settings = embedded_settings(
            tmp_path / "data", INITIAL_SUPERADMIN_TOKEN="superadmin-secret-0123456789abcdef0123"
        )
        tokens = (await get_with(settings, "/api/tokens", "superadmin-secret-0123456789abcdef0123")).json()["tokens"]
        [lobby] = [token for token in tokens if token["name"] == "lobby"]
        assert (lobby["role"], lobby["client_uuid"], lobby["revoked"]) == ("device", "disp-1", False)

        revoked = run_cli("tokens", "revoke", str(lobby["id"]), cwd=tmp_path, **env)
        assert revoked.returncode == 0, revoked.stderr
        assert (await get_with(settings, "/api/clients", secret)).status_code == 401
        tokens = (await get_with(settings, "/api/tokens", "superadmin-secret-0123456789abcdef0123")).json()["tokens"]
        assert {token["name"]: token["revoked"] for token in tokens}["lobby"] is True

    def test_revoke_unknown_token_fails(self, tmp_path: Path) -> None:
        result = run_cli("tokens", "revoke", "4242", cwd=tmp_path, DATA_DIR=str(tmp_path / "data"))
        assert result.returncode == 1
        assert "Token not found" in result.stderr

    def test_bad_role_is_refused(self, tmp_path: Path) -> None:
        result = run_cli(
            "tokens", "create", "--name", "x", "--role", "root", cwd=tmp_path, DATA_DIR=str(tmp_path / "data")
        )
        assert result.returncode == 2
        assert "role" in result.stderr

    def test_the_last_superadmin_cannot_be_revoked(self, tmp_path: Path) -> None:
        env = {"DATA_DIR": str(tmp_path / "data")}
        for name in ("first", "second"):
            created = run_cli("tokens", "create", "--name", name, "--role", "superadmin", cwd=tmp_path, **env)
            assert created.returncode == 0, created.stderr
        assert run_cli("tokens", "revoke", "1", cwd=tmp_path, **env).returncode == 0
        result = run_cli("tokens", "revoke", "2", cwd=tmp_path, **env)
        assert result.returncode == 1
        assert "Cannot revoke the last live superadmin token" in result.stderr
        listed = run_cli("tokens", "list", cwd=tmp_path, **env).stdout.splitlines()
        [second] = [line for line in listed if line.endswith("second")]
        assert second.split()[2:4] == ["-", "no"]

    @pytest.mark.parametrize("role", ["user", "admin", "superadmin"])
    def test_only_device_tokens_are_bound(self, tmp_path: Path, role: str) -> None:
        result = run_cli(
            "tokens",
            "create",
            "--name",
            "x",
            "--role",
            role,
            "--client-uuid",
            "disp-1",
            cwd=tmp_path,
            DATA_DIR=str(tmp_path / "data"),
        )
        assert result.returncode == 1
        assert "Only device tokens can be bound to a client_uuid" in result.stderr
