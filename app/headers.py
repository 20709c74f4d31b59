"""Headers every response carries (SPEC §5)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    """`X-Content-Type-Options: nosniff` on every response: a browser takes the declared type as it is.

    Screenshots come from displays; were one to hold markup after an image signature, a browser
    that sniffs could run it as a page of this origin instead of showing a broken image.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), NOSNIFF]
            await send(message)

        await self.app(scope, receive, send_with_nosniff)
