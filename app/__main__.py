"""Command line: `python -m app serve | tokens create|list|revoke` (and `simulate`, see issue #3)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from app.config import Settings, SettingsError, load_settings
from app.models import ROLES, utcnow


def _serve(settings: Settings) -> int:
    import uvicorn

    from app.main import configure_logging, create_app

    configure_logging(settings.LOG_LEVEL)
    uvicorn.run(
        create_app(settings),
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Infoscreen Monitor")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API (uvicorn on HOST:PORT) and run MQTT ingestion")
    tokens = commands.add_parser("tokens", help="manage API tokens").add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", help="create a token and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--client-uuid", help="bind a device token to one display")
    tokens.add_parser("list", help="list tokens (never their secrets)")
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings)
    return asyncio.run(_tokens(settings, args))


if __name__ == "__main__":
    sys.exit(main())
