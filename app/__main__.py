"""Command line: `infoscreen-monitor` (or `python -m app`): serve, tokens, devices, simulate, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings, SettingsError, load_settings
from app.models import ROLES, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.models import MqttCredential
    from app.services.devices import BrokerFiles, NewDevice


GRACEFUL_SHUTDOWN_SECONDS = 10


def _serve(settings: Settings) -> int:
    import uvicorn

    from app.main import configure_logging, create_app, tune_garbage_collection

    configure_logging(settings.LOG_LEVEL)
    app = create_app(settings)
    tune_garbage_collection()

    class Server(uvicorn.Server):
        """Ends every open event stream as soon as shutdown begins.

        Uvicorn waits for open responses before it runs the lifespan's shutdown, and an event stream
        never ends by itself: without this, a stop would wait out the graceful-shutdown timeout.
        """

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            state = getattr(app.state, "monitor", None)
            if state is not None:
                state.events.close()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.HOST,
        port=settings.PORT,
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
        # Whatever still runs this long after a stop is cancelled (no request takes nearly as long).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    Server(config).run()
    return 0


def _say_database(settings: Settings) -> None:
    """Name the database a command acts on (stderr): DATABASE_URL must be the service's own."""
    from sqlalchemy.engine import make_url

    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"database: {shown}", file=sys.stderr)


@asynccontextmanager
async def _command_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on the service's database for a command (migrated first when AUTO_MIGRATE is on).

    An exception inside rolls the transaction back; the engine is disposed of either way.
    """
    from app.db import create_engine, create_session_factory, run_migrations

    engine = create_engine(settings.database_url)
    try:
        if settings.AUTO_MIGRATE:
            await run_migrations(engine)
        async with create_session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


async def _tokens(settings: Settings, args: argparse.Namespace) -> int:
    from app.errors import AppError
    from app.services import tokens as token_service

    _say_database(settings)
    try:
        async with _command_session(settings) as session:
            if args.action == "create":
                token, secret = await token_service.create_token(
                    session, name=args.name, role=args.role, client_uuid=args.client_uuid, now=utcnow()
                )
                print(f"created token {token.id} ({token.role}); the secret is shown only this once:")
                print(secret)
            elif args.action == "list":
                print(f"{'id':>4}  {'role':<10}  {'client_uuid':<20}  {'revoked':<7}  name")
                for token in await token_service.list_tokens(session):
                    print(
                        f"{token.id:>4}  {token.role:<10}  {token.client_uuid or '-':<20}  "
                        f"{'yes' if token.revoked else 'no':<7}  {token.name}"
                    )
            else:
                await token_service.revoke_token(session, token_id=args.id)
                print(f"revoked token {args.id}")
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _broker_files(settings: Settings) -> BrokerFiles | None:
    """The broker's files from the settings, with the service's own account; None when they are not set."""
    from app.services.devices import BrokerFiles, ServiceAccount

    if settings.MOSQUITTO_PASSWORD_FILE is None:
        print("warning: MOSQUITTO_PASSWORD_FILE is unset: no broker file is written", file=sys.stderr)
        return None
    service = None
    if settings.MQTT_USERNAME is None:
        print("warning: MQTT_USERNAME is unset: the password file has no account for the service", file=sys.stderr)
    elif settings.MQTT_PASSWORD is None:
        raise SettingsError("invalid configuration: MQTT_PASSWORD: needed with MQTT_USERNAME for the broker files")
    else:
        service = ServiceAccount(settings.MQTT_USERNAME, settings.MQTT_PASSWORD)
    return BrokerFiles(
        password_file=settings.MOSQUITTO_PASSWORD_FILE,
        acl_file=settings.MOSQUITTO_ACL_FILE,
        pid_file=settings.MOSQUITTO_PID_FILE,
        service=service,
        prefix=settings.MQTT_TOPIC_PREFIX,
    )


def _print_devices(devices: Sequence[MqttCredential]) -> None:
    print(f"{'uuid':<40}  {'broker':<8}  {'token':>5}  since")
    for device in devices:
        since = device.revoked_at or device.created_at
        state = "revoked" if device.revoked_at else "allowed"
        print(f"{device.client_uuid:<40}  {state:<8}  {device.token_id or '-':>5}  {since.isoformat()}")


async def devices_command(settings: Settings, args: argparse.Namespace) -> int:
    """`devices add|list|revoke|sync`: the files are written before the commit, the broker reloaded after it.

    So a failed write changes nothing, and a reload never shows the broker what the database does not hold.
    """
    from app.errors import AppError
    from app.services import devices as device_service

    _say_database(settings)
    files = _broker_files(settings) if args.action != "list" else None
    if args.action == "sync" and files is None:
        print("error: `devices sync` writes MOSQUITTO_PASSWORD_FILE, which is unset", file=sys.stderr)
        return 2
    try:
        async with _command_session(settings) as session:
            if args.action == "list":
                _print_devices(await device_service.list_devices(session))
                return 0
            if args.action == "add":
                added = await device_service.add_device(
                    session, client_uuid=args.uuid, now=utcnow(), service_username=settings.MQTT_USERNAME
                )
                outcome = json.dumps(asdict(added)) if args.json else _shown_once(added)
            elif args.action == "revoke":
                count = await device_service.revoke_device(session, client_uuid=args.uuid, now=utcnow())
                outcome = f"revoked display {args.uuid} on the broker and {count} token(s) bound to it"
            else:
                outcome = "broker files written from the database"
            if files is not None:
                await asyncio.to_thread(files.write, await device_service.active_credentials(session))
        if files is not None and files.pid_file is not None:
            pid = files.reload()
            reloaded = "no broker runs: it reads the files when it starts" if pid is None else f"broker {pid} reloaded"
            print(reloaded, file=sys.stderr)
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except device_service.BrokerFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(outcome)
    return 0


def _shown_once(added: NewDevice) -> str:
    return (
        f"added display {added.uuid}; its secrets are shown only this once:\n"
        f"  device token (HTTP):  {added.token}\n"
        f"  MQTT username:        {added.mqtt_username}\n"
        f"  MQTT password:        {added.mqtt_password}"
    )


def openapi_document(settings: Settings) -> str:
    """The OpenAPI schema as committed in docs/openapi.json (stable key order, a final newline)."""
    import json

    from app.main import create_app

    return json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"


def build_parser() -> argparse.ArgumentParser:
    # The usage line names the command as it was typed: the console script or `python -m app`.
    program = "python -m app" if Path(sys.argv[0]).name == "__main__.py" else "infoscreen-monitor"
    parser = argparse.ArgumentParser(prog=program, description="Infoscreen Monitor")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API (uvicorn on HOST:PORT) and run MQTT ingestion")
    commands.add_parser("openapi", help="print the OpenAPI schema (JSON), as committed in docs/openapi.json")
    tokens = commands.add_parser("tokens", help="manage API tokens").add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", help="create a token and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--client-uuid", help="bind a device token to one display")
    tokens.add_parser("list", help="list tokens (never their secrets)")
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    devices = commands.add_parser(
        "devices",
        help="displays on the broker: a bound device token and an MQTT account each",
        description="Keeps MOSQUITTO_PASSWORD_FILE and MOSQUITTO_ACL_FILE current from the database and reloads "
        "the broker whose pid is in MOSQUITTO_PID_FILE. Run it with the service's DATABASE_URL, "
        "MQTT_USERNAME / MQTT_PASSWORD (the service's own account, written to the files too) and "
        "MQTT_TOPIC_PREFIX.",
    ).add_subparsers(dest="action", required=True)
    add = devices.add_parser("add", help="create a display's device token and MQTT password (shown once)")
    add.add_argument("uuid")
    add.add_argument(
        "--json", action="store_true", help='print {"uuid", "token", "mqtt_username", "mqtt_password"} on one line'
    )
    devices.add_parser("list", help="list displays on the broker (never their secrets)")
    revoke_device = devices.add_parser("revoke", help="take a display off the broker and revoke its tokens")
    revoke_device.add_argument("uuid")
    devices.add_parser("sync", help="rewrite the broker's files from the database (and reload it)")
    simulate = commands.add_parser(
        "simulate",
        help="publish a simulated display fleet over MQTT",
        description="Publishes a simulated fleet to MQTT_HOST:MQTT_PORT under MQTT_TOPIC_PREFIX. On a broker with "
        "accounts (deploy/mosquitto.conf) give each display its own account with --credentials; without it every "
        "display connects as MQTT_USERNAME / MQTT_PASSWORD (unset: anonymous, as on deploy/mosquitto-dev.conf). "
        "MQTT_TLS=true connects over TLS, verifying the broker against MQTT_CA_FILE.",
    )
    simulate.add_argument("--displays", type=int, default=20, help="number of displays (default 20)")
    simulate.add_argument("--broker", help="host:port (default MQTT_HOST:MQTT_PORT)")
    simulate.add_argument("--rate", type=float, default=0.2, help="ticks per second per display (default 0.2)")
    simulate.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    simulate.add_argument("--prefix", help="topic prefix (default MQTT_TOPIC_PREFIX)")
    simulate.add_argument("--seed", type=int, help="random seed, for a repeatable fleet")
    simulate.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="the lines `devices add UUID --json` printed (one per display): the fleet is these displays, "
        "each logged in as itself (--displays is ignored)",
    )
    simulate.add_argument(
        "--write-jpeg", type=Path, metavar="FILE", help="only write one sample screenshot (a JPEG) to FILE and exit"
    )
    return parser


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from app.main import configure_logging
    from app.services.mqtt_connection import MqttConfigurationError, tls_context
    from app.simulate import CredentialsError, SimulationOptions, load_credentials, sample_jpeg, simulate

    if args.write_jpeg:
        args.write_jpeg.write_bytes(sample_jpeg())
        print(f"wrote a sample screenshot to {args.write_jpeg}", file=sys.stderr)
        return 0
    host, port = settings.MQTT_HOST, settings.MQTT_PORT
    if args.broker:
        host, _, port_text = args.broker.rpartition(":")
        if not host or not port_text.isdigit():
            print(f"error: --broker must be host:port, not {args.broker!r}", file=sys.stderr)
            return 2
        port = int(port_text)
    if args.displays < 1 or args.rate <= 0 or args.duration <= 0:
        print("error: --displays, --rate and --duration must be positive", file=sys.stderr)
        return 2
    try:
        credentials = load_credentials(args.credentials) if args.credentials else None
        tls = tls_context(settings)
    except (CredentialsError, MqttConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging("INFO")
    options = SimulationOptions(
        displays=len(credentials) if credentials else args.displays,
        host=host,
        port=port,
        rate=args.rate,
        duration=args.duration,
        prefix=args.prefix or settings.MQTT_TOPIC_PREFIX,
        username=settings.MQTT_USERNAME,
        password=settings.MQTT_PASSWORD,
        seed=args.seed,
        credentials=credentials,
        tls=tls,
    )
    stats = asyncio.run(simulate(options))
    return 1 if stats.failures and not stats.published else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings)
    if args.command == "simulate":
        return _simulate(settings, args)
    if args.command == "devices":
        try:
            return asyncio.run(devices_command(settings, args))
        except SettingsError as exc:
            print(exc, file=sys.stderr)
            return 2
    if args.command == "openapi":
        sys.stdout.write(openapi_document(settings))
        return 0
    return asyncio.run(_tokens(settings, args))


if __name__ == "__main__":
    sys.exit(main())
