"""Anonymous bodies over a real socket (SPEC §5): refused before they are read, the service stays responsive.

Each request announces a large body, sends its headers and a few bytes of it, and reads the answer
before sending the rest: an answer can only arrive if the server did not wait for the body.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.conftest import SUPERADMIN_SECRET
from tests.live.conftest import LiveServer

ANSWER_DEADLINE_SECONDS = 10.0
# Under the JSON body limit (32 MiB): the answer must come from the token check, not the size check.
ANNOUNCED_BYTES = 30 * 1024 * 1024
SLOW_UPLOADS = 4


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_upload(server: LiveServer, path: str, authorization: str | None) -> Connection:
    """Send the headers and the first KiB of a large body; the connection stays open, the rest unsent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Content-Type: application/json",
        f"Content-Length: {ANNOUNCED_BYTES}",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b"[" + b" " * 1023)
    await writer.drain()
    return reader, writer


async def read_status(connection: Connection) -> tuple[int, bytes]:
    reader, writer = connection
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_DEADLINE_SECONDS)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), ANSWER_DEADLINE_SECONDS)
    writer.close()
    return status, body


class TestAnonymousBodies:
    @pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
    @pytest.mark.parametrize("path", ["/api/clients/disp-1/logs", "/api/tokens", "/api/client-groups"])
    async def test_401_arrives_before_the_body_is_sent(
        self, live_server: LiveServer, path: str, authorization: str | None
    ) -> None:
        status, body = await read_status(await open_upload(live_server, path, authorization))
        assert status == 401
        assert body == b'{"error":"Not authenticated"}'

    async def test_healthz_answers_while_slow_anonymous_uploads_are_open(
        self, live_server: LiveServer, live: httpx.AsyncClient
    ) -> None:
        readers = [await open_upload(live_server, "/api/clients/disp-1/logs", None) for _ in range(SLOW_UPLOADS)]
        healthz = await live.get("/healthz")
        assert healthz.status_code == 200
        for reader in readers:
            assert (await read_status(reader))[0] == 401
        # The service still ingests for callers with a token.
        answer = await live.post("/api/clients/disp-1/logs", json={"level": "info", "message": "still here"})
        assert answer.status_code == 202

    async def test_a_valid_token_gets_its_body_read(self, live_server: LiveServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
        body = b'{"level": "info", "message": "from a socket"}'
        head = (
            f"POST /api/clients/disp-1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {SUPERADMIN_SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        # Nothing comes back until the body is there.
        with contextlib.suppress(TimeoutError):
            early = await asyncio.wait_for(reader.read(1), 0.3)
            pytest.fail(f"answered before the body was sent: {early!r}")
        writer.write(body)
        await writer.drain()
        status, answer = await read_status((reader, writer))
        assert (status, answer) == (202, b'{"accepted":1}')
