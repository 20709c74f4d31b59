"""Request body limits, enforced while the body streams in (SPEC §5: too large is a 413)."""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# 1000 log lines of 8 KiB messages with 16 KiB contexts fit; anything bigger is not a display talking.
MAX_JSON_BODY_BYTES = 32 * 1024 * 1024
# Room for the multipart envelope around an image of the largest allowed size.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so that FastAPI's body parsing passes it on as is."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Request body too large")


class BodySizeLimit:
    """Refuse bodies above the limit of their path with 413, by header or by counting bytes."""

    def __init__(self, app: ASGIApp, *, max_screenshot_bytes: int) -> None:
        self.app = app
        self.max_screenshot_body = max_screenshot_bytes + MULTIPART_OVERHEAD_BYTES

    def limit_for(self, path: str) -> int:
        return self.max_screenshot_body if path.endswith("/screenshot") else MAX_JSON_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send)
                return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _too_large(send)


async def _too_large(send: Send) -> None:
    body = orjson.dumps({"error": "Request body too large"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
