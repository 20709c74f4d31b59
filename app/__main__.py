"""Command line: `python -m app serve | tokens create|list|revoke | simulate | openapi`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from app.config import Settings, SettingsError, load_settings
from app.models import ROLES, utcnow


def _serve(settings: Settings) -> int:
    import uvicorn

    from app.main import configure_logging, create_app, tune_garbage_collection

    configure_logging(settings.LOG_LEVEL)
    app = create_app(settings)
    tune_garbage_collection()
    uvicorn.run(
        app,
        host=settings.HOST,
        port=settings.PORT,
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
    )
    return 0


async def _tokens(settings: Settings, args: argparse.Namespace) -> int:
    from app.db import create_engine, create_session_factory, run_migrations
    from app.errors import AppError
    from app.services import tokens as token_service

    engine = create_engine(settings.database_url)
    try:
        if settings.AUTO_MIGRATE:
            await run_migrations(engine)
        async with create_session_factory(engine)() as session, session.begin():
            try:
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
    finally:
        await engine.dispose()
    return 0


def openapi_document(settings: Settings) -> str:
    """The OpenAPI schema as committed in docs/openapi.json (stable key order, a final newline)."""
    import json

    from app.main import create_app

    return json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Infoscreen Monitor")
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
    simulate = commands.add_parser("simulate", help="publish a simulated display fleet over MQTT")
    simulate.add_argument("--displays", type=int, default=20, help="number of displays (default 20)")
    simulate.add_argument("--broker", help="host:port (default MQTT_HOST:MQTT_PORT)")
    simulate.add_argument("--rate", type=float, default=0.2, help="ticks per second per display (default 0.2)")
    simulate.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    simulate.add_argument("--prefix", help="topic prefix (default MQTT_TOPIC_PREFIX)")
    simulate.add_argument("--seed", type=int, help="random seed, for a repeatable fleet")
    return parser


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from app.main import configure_logging
    from app.simulate import SimulationOptions, simulate

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
    configure_logging("INFO")
    options = SimulationOptions(
        displays=args.displays,
        host=host,
        port=port,
        rate=args.rate,
        duration=args.duration,
        prefix=args.prefix or settings.MQTT_TOPIC_PREFIX,
        username=settings.MQTT_USERNAME,
        password=settings.MQTT_PASSWORD,
        seed=args.seed,
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
    if args.command == "openapi":
        sys.stdout.write(openapi_document(settings))
        return 0
    return asyncio.run(_tokens(settings, args))


if __name__ == "__main__":
    sys.exit(main())
