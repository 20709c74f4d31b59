"""Displays on the broker (SPEC §13), against a real Mosquitto running the shipped deploy/mosquitto.conf.

The broker's config is `deploy/mosquitto.conf` with only its ports and paths changed; its password and
ACL files are the ones `python -m app devices` writes from the test database, and its TLS certificates
come from a CA made here with the openssl command line, as README.md says.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from app.__main__ import build_parser, devices_command
from app.config import Settings
from app.main import create_app
from app.models import ApiToken
from app.services.devices import verify_mosquitto_password
from app.simulate import SimulationOptions, load_credentials, simulate
from app.state import AppState
from tests.conftest import Clock, require_service
from tests.mqtt.conftest import MOSQUITTO, Broker, ServiceFactory, eventually, free_port, get_client, logs_of

DEPLOY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.conf"
SERVICE_USERNAME = "infoscreen-monitor"
SERVICE_PASSWORD = "service-secret-for-tests"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A CA as README.md makes it: an EC key and a self-signed CA certificate."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-sha256", "-days", "2", "-subj", f"/CN={name}", "-out", cert,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a broker certificate for 127.0.0.1 / localhost signed by it, and an unrelated CA."""
    if shutil.which("openssl") is None:
        require_service("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = make_ca(directory, "ca")
    _, other_ca = make_ca(directory, "other-ca")
    server_key, server_csr, server_cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", server_key, cwd=directory)
    _openssl("req", "-new", "-key", server_key, "-subj", "/CN=localhost", "-out", server_csr, cwd=directory)
    _openssl(
        "x509", "-req", "-in", server_csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-sha256", "-extfile", "server.ext", "-out", server_cert,
        cwd=directory,
    )  # fmt: skip
    return Pki(ca=ca_cert, server_cert=server_cert, server_key=server_key, other_ca=other_ca)


class SecureBroker(Broker):
    """Mosquitto on deploy/mosquitto.conf: ports, file paths and logging adapted to the test, nothing else."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        super().__init__(directory, free_port())
        self.tls_port = free_port()
        self.password_file = directory / "passwd"
        self.acl_file = directory / "acl"
        self.pid_file = directory / "mosquitto.pid"
        replacements = {
            "listener 1883": f"listener {self.port} 127.0.0.1",
            "listener 8883": f"listener {self.tls_port} 127.0.0.1",
            "cafile ": f"cafile {pki.ca}",
            "certfile ": f"certfile {pki.server_cert}",
            "keyfile ": f"keyfile {pki.server_key}",
            "password_file ": f"password_file {self.password_file}",
            "acl_file ": f"acl_file {self.acl_file}",
            "pid_file ": f"pid_file {self.pid_file}",
            "persistence_location ": f"persistence_location {directory}/",
            "log_dest ": f"log_dest file {directory}/mosquitto.log",
        }
        used: set[str] = set()
        lines = []
        for line in DEPLOY_CONFIG.read_text().splitlines():
            start = next((key for key in replacements if line.startswith(key)), None)
            if start is not None:
                used.add(start)
                line = replacements[start]
            lines.append(line)
        assert used == set(replacements), f"deploy/mosquitto.conf lacks {set(replacements) - used}"
        assert "allow_anonymous false" in lines
        if os.geteuid() == 0:
            lines.append("user root")
        self.config.write_text("\n".join(lines) + "\n")


@pytest.fixture
def secure_broker(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    if not Path(MOSQUITTO).exists():
        require_service(f"mosquitto is not installed ({MOSQUITTO})")
    directory = tmp_path / "secure-broker"
    directory.mkdir()
    broker = SecureBroker(directory, pki)
    yield broker
    broker.stop()


@pytest.fixture
def settings_overrides(secure_broker: SecureBroker, prefix: str) -> dict[str, Any]:
    """The service's own account, and the broker's files where the `devices` command writes them."""
    return {
        "MQTT_ENABLED": False,
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": secure_broker.port,
        "MQTT_TOPIC_PREFIX": prefix,
        "MQTT_CLIENT_ID": f"monitor-{prefix}",
        "MQTT_USERNAME": SERVICE_USERNAME,
        "MQTT_PASSWORD": SERVICE_PASSWORD,
        "MOSQUITTO_PASSWORD_FILE": secure_broker.password_file,
        "MOSQUITTO_ACL_FILE": secure_broker.acl_file,
        "MOSQUITTO_PID_FILE": secure_broker.pid_file,
    }


class Devices:
    """`python -m app devices ...`, run in this event loop against the test database."""

    def __init__(self, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
        self.settings = settings
        self.capsys = capsys

    async def run(self, *argv: str) -> str:
        self.capsys.readouterr()
        code = await devices_command(self.settings, build_parser().parse_args(["devices", *argv]))
        out, err = self.capsys.readouterr()
        assert code == 0, err
        assert err.startswith("database: ")
        return out

    async def add(self, client_uuid: str) -> dict[str, str]:
        added: dict[str, str] = json.loads(await self.run("add", client_uuid, "--json"))
        return added


@pytest.fixture
async def devices(state: AppState, capsys: pytest.CaptureFixture[str]) -> Devices:
    return Devices(state.settings, capsys)


@pytest.fixture
async def running_broker(secure_broker: SecureBroker, devices: Devices) -> SecureBroker:
    """Started on files the CLI wrote (mosquitto refuses to start without its password file)."""
    await devices.run("sync")
    secure_broker.start()
    return secure_broker


def display(
    broker: SecureBroker, username: str | None, password: str | None, *, tls: ssl.SSLContext | None = None
) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.tls_port if tls else broker.port,
        identifier=f"display-{username}",
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        timeout=10,
    )


async def connects(broker: SecureBroker, username: str | None, password: str | None) -> bool:
    """Whether the broker accepts these credentials now (False on a refused CONNECT)."""
    try:
        async with display(broker, username, password):
            return True
    except aiomqtt.MqttError:
        return False


@pytest.fixture
async def display_a(running_broker: SecureBroker, devices: Devices) -> dict[str, str]:
    return await devices.add("display-a")


@pytest.fixture
async def display_b(running_broker: SecureBroker, devices: Devices) -> dict[str, str]:
    return await devices.add("display-b")


class TestAccounts:
    async def test_anonymous_connect_is_refused(self, backend: str, running_broker: SecureBroker) -> None:
        with pytest.raises(aiomqtt.MqttError, match="code:135|Not authori"):
            async with display(running_broker, None, None):
                pass

    async def test_password_file_written_by_the_cli_is_accepted(
        self, backend: str, running_broker: SecureBroker, display_a: dict[str, str], state: AppState
    ) -> None:
        assert set(display_a) == {"uuid", "token", "mqtt_username", "mqtt_password"}
        assert display_a["uuid"] == display_a["mqtt_username"] == "display-a"
        line = next(
            line for line in running_broker.password_file.read_text().splitlines() if line.startswith("display-a:")
        )
        assert line.split(":", 1)[1].startswith("$7$101$")
        assert verify_mosquitto_password(display_a["mqtt_password"], line.split(":", 1)[1])
        assert (await get_client(state, "display-a")) is None  # an account registers no display by itself

        # `devices add` reloaded the broker (SIGHUP); the new account works once it has reread its files.
        await eventually(
            lambda: connects(running_broker, "display-a", display_a["mqtt_password"]), what="display-a accepted"
        )
        assert not await connects(running_broker, "display-a", "not-its-password")
        assert await connects(running_broker, SERVICE_USERNAME, SERVICE_PASSWORD)
        # The device token is bound to the display.
        async with state.session_factory() as session:
            token = (
                await session.execute(select(ApiToken).where(col(ApiToken.client_uuid) == "display-a"))
            ).scalar_one()
        assert (token.role, token.revoked) == ("device", False)

    async def test_a_revoked_display_is_refused_after_the_reload(
        self,
        backend: str,
        running_broker: SecureBroker,
        display_a: dict[str, str],
        devices: Devices,
        state: AppState,
        prefix: str,
    ) -> None:
        password = display_a["mqtt_password"]
        await eventually(lambda: connects(running_broker, "display-a", password), what="display-a accepted")

        async with display(running_broker, "display-a", password) as connected:
            assert "revoked display display-a" in await devices.run("revoke", "display-a")
            assert "display-a:" not in running_broker.password_file.read_text()

            async def refused() -> bool:
                return not await connects(running_broker, "display-a", password)

            await eventually(refused, what="display-a refused after the reload")
            # The reload also ends the connection it already had.
            with pytest.raises(aiomqtt.MqttError):
                await connected.publish(f"{prefix}/display-a/heartbeat", b"", qos=1)
        async with state.session_factory() as session:
            token = (
                await session.execute(select(ApiToken).where(col(ApiToken.client_uuid) == "display-a"))
            ).scalar_one()
        assert token.revoked
        listing = await devices.run("list")
        assert "display-a" in listing
        assert "revoked" in listing


class TestTopicAcl:
    async def test_a_display_cannot_publish_for_another(
        self,
        backend: str,
        running_broker: SecureBroker,
        display_a: dict[str, str],
        display_b: dict[str, str],
        service_factory: ServiceFactory,
        state: AppState,
        prefix: str,
    ) -> None:
        await service_factory()
        password = display_a["mqtt_password"]
        await eventually(lambda: connects(running_broker, "display-a", password), what="display-a accepted")
        async with display(running_broker, "display-a", password) as client:
            for suffix in ("heartbeat", "logs/error", "status", "health"):
                # Mosquitto refuses it (a v5 PUBACK "not authorized") or drops it; either way it is not delivered.
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(f"{prefix}/display-b/{suffix}", b'{"message": "spoofed"}', qos=1)
            await client.publish(f"{prefix}/display-a/logs/info", b"sentinel of a", qos=1)

        await eventually(lambda: _has_log(state, "display-a", "sentinel of a"), what="display-a's own message stored")
        assert await get_client(state, "display-b") is None
        assert await logs_of(state, "display-b") == []

    async def test_a_display_reads_nothing_of_another(
        self,
        backend: str,
        running_broker: SecureBroker,
        display_a: dict[str, str],
        display_b: dict[str, str],
        service_factory: ServiceFactory,
        state: AppState,
        prefix: str,
    ) -> None:
        await service_factory()
        await eventually(
            lambda: connects(running_broker, "display-b", display_b["mqtt_password"]), what="display-b accepted"
        )
        async with (
            display(running_broker, "display-a", display_a["mqtt_password"]) as spy,
            display(running_broker, "display-b", display_b["mqtt_password"]) as victim,
        ):
            # Mosquitto may grant these and filter what it delivers: what counts is that nothing arrives.
            await spy.subscribe([("#", 1), (f"{prefix}/#", 1), (f"{prefix}/display-b/#", 1)])
            await victim.publish(f"{prefix}/display-b/heartbeat", b'{"hostname": "b"}', qos=1)
            await victim.publish(f"{prefix}/display-b/logs/info", b"secret of b", qos=1)
            await eventually(lambda: _has_log(state, "display-b", "secret of b"), what="b's message delivered")
            # The broker delivered b's message to the service already; a round trip of the spy's own
            # then comes after anything the broker could have sent it on the same connection.
            await spy.publish(f"{prefix}/display-a/heartbeat", b"", qos=1)
            assert len(spy.messages) == 0


class TestServiceConnection:
    async def test_the_service_consumes_over_tls(
        self,
        backend: str,
        running_broker: SecureBroker,
        display_a: dict[str, str],
        service_factory: ServiceFactory,
        state: AppState,
        prefix: str,
        pki: Pki,
    ) -> None:
        service = await service_factory(
            settings={"MQTT_TLS": True, "MQTT_PORT": running_broker.tls_port, "MQTT_CA_FILE": pki.ca}
        )
        assert service.mqtt_state.connected
        password = display_a["mqtt_password"]
        await eventually(lambda: connects(running_broker, "display-a", password), what="display-a accepted")
        tls = ssl.create_default_context(cafile=str(pki.ca))
        async with display(running_broker, "display-a", password, tls=tls) as client:
            await client.publish(f"{prefix}/display-a/logs/warn", b"over tls", qos=1)
        await eventually(lambda: _has_log(state, "display-a", "over tls"), what="log over TLS stored")

    @pytest.mark.parametrize(
        ("problem", "expected"),
        [("wrong_ca", "MQTT_CA_FILE"), ("wrong_password", "MQTT_USERNAME / MQTT_PASSWORD")],
    )
    async def test_a_refused_connection_is_one_clear_line_and_readyz_says_disconnected(
        self,
        backend: str,
        running_broker: SecureBroker,
        settings: Settings,
        clock: Clock,
        pki: Pki,
        caplog: pytest.LogCaptureFixture,
        problem: str,
        expected: str,
    ) -> None:
        update: dict[str, Any] = {"MQTT_ENABLED": True}
        if problem == "wrong_ca":
            update |= {"MQTT_TLS": True, "MQTT_PORT": running_broker.tls_port, "MQTT_CA_FILE": pki.other_ca}
        else:
            update |= {"MQTT_PASSWORD": "not-the-service-password"}
        application = create_app(settings.model_copy(update=update), clock=clock)
        caplog.set_level(logging.WARNING, logger="app.services.mqtt")
        async with application.router.lifespan_context(application):
            monitor: AppState = application.state.monitor
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

                def refusals() -> list[logging.LogRecord]:
                    return [r for r in caplog.records if r.name == "app.services.mqtt" and r.levelno == logging.ERROR]

                # Two refusals: it keeps trying (with backoff) instead of dying or looping hot.
                await eventually(lambda: len(refusals()) >= 2, what="two refused attempts logged")
                readyz = await http.get("/readyz")
                assert (readyz.status_code, readyz.json()) == (200, {"database": "ok", "mqtt": "disconnected"})
            [task] = [task for task in monitor.tasks if task.get_name() == "mqtt-ingest"]
            assert not task.done()
        for record in refusals():
            assert expected in record.getMessage()
            assert record.exc_info is None  # one line, no traceback


class TestSimulatorAccounts:
    async def test_the_simulator_runs_each_display_with_its_own_account(
        self,
        backend: str,
        running_broker: SecureBroker,
        devices: Devices,
        service_factory: ServiceFactory,
        state: AppState,
        prefix: str,
        tmp_path: Path,
    ) -> None:
        await service_factory()
        credentials_file = tmp_path / "displays.jsonl"
        uuids = [f"sim-{number}" for number in range(3)]
        lines = [await devices.run("add", client_uuid, "--json") for client_uuid in uuids]
        credentials_file.write_text("".join(lines))
        credentials = load_credentials(credentials_file)
        assert sorted(credentials) == uuids
        last = uuids[-1]
        await eventually(lambda: connects(running_broker, last, credentials[last]), what="last account accepted")

        options = SimulationOptions(
            displays=1, port=running_broker.port, rate=8, duration=1.0, prefix=prefix, seed=3, credentials=credentials
        )
        stats = await simulate(options)

        assert stats.failures == 0
        assert stats.published["heartbeat"] >= len(uuids)

        async def every_display_registered() -> bool:
            return all([await get_client(state, client_uuid) is not None for client_uuid in uuids])

        await eventually(every_display_registered, what="every simulated display registered")


async def _token_of(state: AppState, client_uuid: str) -> ApiToken:
    async with state.session_factory() as session:
        query = select(ApiToken).where(col(ApiToken.client_uuid) == client_uuid)
        return (await session.execute(query)).scalar_one()


async def _has_log(state: AppState, client_uuid: str, message: str) -> bool:
    return any(entry.message == message for entry in await logs_of(state, client_uuid))
