"""Displays on the broker: Mosquitto's password format, the files, and the accounts in the database."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from app.errors import BadRequest, Conflict, NotFound
from app.models import ApiToken
from app.services import devices
from app.services.devices import (
    BrokerFileError,
    ServiceAccount,
    mosquitto_password_hash,
    reload_broker,
    render_acl_file,
    render_password_file,
    verify_mosquitto_password,
    write_atomically,
)
from app.state import AppState
from tests.helpers import run_cli

NOW = datetime(2026, 3, 9, 21, 0, tzinfo=UTC)
# Written by `mosquitto_passwd -c -b passwd alice secret` (mosquitto 2.0.11).
MOSQUITTO_PASSWD_LINE = (
    "alice:$7$101$rKc84nu1iAOC/DQI$"
    "VATGk9LJ++7oimL/1UCFrHRsafqtTp7FjqvS3HXCoTAzPUJysnjXh5/ApIS3ORmSf0rkprpzk67gNJrAZebpbw=="
)


class TestPasswordFormat:
    def test_the_hash_is_the_one_mosquitto_passwd_writes(self) -> None:
        salt = base64.b64decode("rKc84nu1iAOC/DQI")
        assert f"alice:{mosquitto_password_hash('secret', salt=salt)}" == MOSQUITTO_PASSWD_LINE

    def test_a_fresh_hash_has_mosquittos_shape_and_verifies(self) -> None:
        encoded = mosquitto_password_hash("p4ss")
        _, kind, iterations, salt, digest = encoded.split("$")
        assert (kind, iterations) == ("7", "101")
        assert (len(base64.b64decode(salt)), len(base64.b64decode(digest))) == (12, 64)
        assert verify_mosquitto_password("p4ss", encoded)
        assert not verify_mosquitto_password("p4sS", encoded)
        assert encoded != mosquitto_password_hash("p4ss")  # a new salt each time

    def test_lines_written_by_the_installed_mosquitto_passwd_verify(self, tmp_path: Path) -> None:
        tool = shutil.which("mosquitto_passwd")
        if tool is None:
            pytest.skip("mosquitto_passwd is not installed")
        subprocess.run([tool, "-c", "-b", str(tmp_path / "passwd"), "bob", "hunter2"], check=True)
        username, encoded = (tmp_path / "passwd").read_text().strip().split(":", 1)
        assert username == "bob"
        assert verify_mosquitto_password("hunter2", encoded)


class TestFiles:
    def test_password_file_has_the_service_first_then_the_displays(self) -> None:
        text = render_password_file([("lobby-1", "$7$101$a$b")], ServiceAccount("monitor", "s3cret"))
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        assert lines[1] == "lobby-1:$7$101$a$b"
        username, encoded = lines[0].split(":", 1)
        assert username == "monitor"
        assert verify_mosquitto_password("s3cret", encoded)

    def test_acl_lets_a_display_write_its_own_topics_only(self) -> None:
        rules = [line for line in render_acl_file("infoscreen", "monitor").splitlines() if line and line[0] != "#"]
        assert rules == [
            "user monitor",
            "topic read infoscreen/#",
            "topic read $share/+/infoscreen/#",
            "pattern write infoscreen/%u/#",
        ]

    def test_atomic_write_replaces_whole_and_keeps_the_mode(self, tmp_path: Path) -> None:
        target = tmp_path / "passwd"
        target.write_text("old\n")
        target.chmod(0o640)
        write_atomically(target, "new\n")
        assert target.read_text() == "new\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
        assert [path.name for path in tmp_path.iterdir()] == ["passwd"]  # no temporary file left

    def test_a_new_file_is_readable_by_its_owner_only(self, tmp_path: Path) -> None:
        target = tmp_path / "etc" / "acl"
        write_atomically(target, "x\n")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600


class TestReload:
    def test_no_pid_file_means_no_broker_to_reload(self, tmp_path: Path) -> None:
        assert reload_broker(tmp_path / "missing.pid") is None

    def test_a_pid_of_another_program_is_not_signalled(self, tmp_path: Path) -> None:
        if not Path("/proc/self/comm").exists():
            pytest.skip("needs /proc")
        pid_file = tmp_path / "mosquitto.pid"
        pid_file.write_text(f"{os.getpid()}\n")  # this test process: a SIGHUP would end it
        with pytest.raises(BrokerFileError, match="not mosquitto"):
            reload_broker(pid_file)


class TestAccounts:
    async def test_add_list_revoke_and_add_again(self, backend: str, state: AppState) -> None:
        async with state.session_factory() as session, session.begin():
            added = await devices.add_device(session, client_uuid="lobby-1", now=NOW)
            with pytest.raises(Conflict):
                await devices.add_device(session, client_uuid="lobby-1", now=NOW)
            [(username, encoded)] = await devices.active_credentials(session)
            assert username == added.mqtt_username == added.uuid == "lobby-1"
            assert verify_mosquitto_password(added.mqtt_password, encoded)
            token = await session.scalar(select(ApiToken).where(col(ApiToken.client_uuid) == "lobby-1"))
            assert token is not None
            assert (token.role, token.revoked) == ("device", False)

            assert await devices.revoke_device(session, client_uuid="lobby-1", now=NOW) == 1
            assert await devices.active_credentials(session) == []
            assert token.revoked
            with pytest.raises(NotFound):
                await devices.revoke_device(session, client_uuid="lobby-1", now=NOW)
            [listed] = await devices.list_devices(session)
            assert listed.revoked_at == NOW

            again = await devices.add_device(session, client_uuid="lobby-1", now=NOW)
            assert again.mqtt_password != added.mqtt_password
            [(_, encoded)] = await devices.active_credentials(session)
            assert verify_mosquitto_password(again.mqtt_password, encoded)

    async def test_bad_uuid_and_the_services_own_name_are_refused(self, backend: str, state: AppState) -> None:
        async with state.session_factory() as session, session.begin():
            with pytest.raises(BadRequest):
                await devices.add_device(session, client_uuid="a/b", now=NOW)
            with pytest.raises(BadRequest):
                await devices.add_device(session, client_uuid="monitor", now=NOW, service_username="monitor")
            assert await devices.list_devices(session) == []


class TestCommandLine:
    def test_add_json_list_and_revoke_keep_the_files_current(self, tmp_path: Path) -> None:
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "MOSQUITTO_PASSWORD_FILE": str(tmp_path / "passwd"),
            "MOSQUITTO_ACL_FILE": str(tmp_path / "acl"),
            "MOSQUITTO_PID_FILE": str(tmp_path / "no-broker.pid"),
            "MQTT_USERNAME": "monitor",
            "MQTT_PASSWORD": "s3cret",
        }
        added = run_cli("devices", "add", "lobby-1", "--json", env=env)
        assert added.returncode == 0, added.stderr
        [line] = added.stdout.splitlines()
        shown = json.loads(line)
        assert set(shown) == {"uuid", "token", "mqtt_username", "mqtt_password"}
        assert shown["uuid"] == shown["mqtt_username"] == "lobby-1"
        accounts = dict(
            entry.split(":", 1) for entry in (tmp_path / "passwd").read_text().splitlines() if entry[0] != "#"
        )
        assert verify_mosquitto_password(shown["mqtt_password"], accounts["lobby-1"])
        assert verify_mosquitto_password("s3cret", accounts["monitor"])
        assert "pattern write infoscreen/%u/#" in (tmp_path / "acl").read_text()
        assert "database: sqlite+aiosqlite:///" in added.stderr

        assert run_cli("devices", "add", "lobby-1", env=env).returncode == 1  # already on the broker
        listed = run_cli("devices", "list", env=env)
        assert "lobby-1" in listed.stdout
        assert shown["mqtt_password"] not in listed.stdout

        revoked = run_cli("devices", "revoke", "lobby-1", env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert "lobby-1:" not in (tmp_path / "passwd").read_text()
        assert "monitor:" in (tmp_path / "passwd").read_text()

    def test_a_username_without_a_password_is_refused_before_anything_is_written(self, tmp_path: Path) -> None:
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "MOSQUITTO_PASSWORD_FILE": str(tmp_path / "passwd"),
            "MQTT_USERNAME": "monitor",
        }
        result = run_cli("devices", "add", "lobby-1", env=env)
        assert result.returncode == 2
        assert "MQTT_PASSWORD" in result.stderr
        assert not (tmp_path / "passwd").exists()
