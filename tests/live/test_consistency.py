"""A 2xx means committed (SPEC §5), checked over a real socket against `python -m app serve`.

Each write is followed at once, on another connection, by a request that depends on it. With the
commit after the response (FastAPI's request-scoped dependency exit) these sequences miss; with
the commit before the response they never do. A commit that fails answers non-2xx and leaves
nothing behind, rows or files.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from tests.helpers import new_uuid, png_bytes

SEQUENCES = 512
CONCURRENCY = 32


async def run_concurrently(count: int, sequence: Callable[[int], Awaitable[list[str]]]) -> Counter[str]:
    """Run `count` sequences, `CONCURRENCY` at a time; count the misses they report by kind."""
    gate = asyncio.Semaphore(CONCURRENCY)
    misses: Counter[str] = Counter()

    async def one(number: int) -> None:
        async with gate:
            misses.update(await sequence(number))

    await asyncio.gather(*(one(number) for number in range(count)))
    return misses


class TestWriteThenRead:
    async def test_a_new_display_is_there_for_the_next_request(self, live: httpx.AsyncClient) -> None:
        async def sequence(number: int) -> list[str]:
            display = new_uuid("seq")
            logged = await live.post(
                f"/api/clients/{display}/logs", json={"level": "error", "message": f"boot {number}"}
            )
            if logged.status_code != 202:
                return [f"log {logged.status_code}"]
            patched = await live.patch(f"/api/clients/{display}", json={"description": f"screen {number}"})
            read = await live.get(f"/api/client-logs/{display}/logs")
            misses = []
            if patched.status_code != 200:
                misses.append(f"patch {patched.status_code}")
            if read.status_code != 200 or read.json()["count"] != 1:
                misses.append(f"logs {read.status_code}")
            return misses

        assert await run_concurrently(SEQUENCES, sequence) == Counter()

    async def test_a_new_group_can_be_used_at_once(self, live: httpx.AsyncClient) -> None:
        async def sequence(number: int) -> list[str]:
            display = new_uuid("grouped")
            beat = await live.post(f"/api/clients/{display}/heartbeat", json={"hostname": f"host-{number}"})
            created = await live.post("/api/client-groups", json={"name": f"group-{display}"})
            if beat.status_code != 204 or created.status_code != 201:
                return [f"arrange {beat.status_code}/{created.status_code}"]
            group_id = created.json()["id"]
            assigned = await live.patch(f"/api/clients/{display}", json={"group_id": group_id})
            if assigned.status_code != 200 or assigned.json()["group_id"] != group_id:
                return [f"assign {assigned.status_code}"]
            return []

        assert await run_concurrently(SEQUENCES // 4, sequence) == Counter()

    async def test_a_created_token_works_when_its_201_arrives(self, live: httpx.AsyncClient) -> None:
        async def sequence(number: int) -> list[str]:
            display = new_uuid("bound")
            created = await live.post(
                "/api/tokens", json={"name": f"device {number}", "role": "device", "client_uuid": display}
            )
            if created.status_code != 201:
                return [f"create {created.status_code}"]
            secret = created.json()["token"]
            used = await live.post(
                f"/api/clients/{display}/heartbeat", headers={"Authorization": f"Bearer {secret}"}, json=None
            )
            return [] if used.status_code == 204 else [f"use {used.status_code}"]

        assert await run_concurrently(SEQUENCES // 4, sequence) == Counter()

    async def test_a_heartbeat_is_visible_to_the_next_read(self, live: httpx.AsyncClient) -> None:
        async def sequence(number: int) -> list[str]:
            display = new_uuid("beat")
            beat = await live.post(
                f"/api/clients/{display}/heartbeat", json={"hostname": f"h-{number}", "process_status": "crashed"}
            )
            read = await live.get(f"/api/clients/{display}")
            if beat.status_code != 204 or read.status_code != 200:
                return [f"{beat.status_code}/{read.status_code}"]
            body = read.json()
            seen = body["hostname"] == f"h-{number}" and body["last_alive"] is not None and body["status"] == "critical"
            return [] if seen else ["stale"]

        assert await run_concurrently(SEQUENCES // 4, sequence) == Counter()

    async def test_an_uploaded_screenshot_is_served_at_once(self, live: httpx.AsyncClient) -> None:
        image = png_bytes("blue")

        async def sequence(_number: int) -> list[str]:
            display = new_uuid("shot")
            uploaded = await live.post(
                f"/api/clients/{display}/screenshot?screenshot_type=event_start",
                content=image,
                headers={"Content-Type": "image/png"},
            )
            served = await live.get(f"/screenshots/{display}/priority")
            if uploaded.status_code != 202 or served.status_code != 200:
                return [f"{uploaded.status_code}/{served.status_code}"]
            return [] if served.content == image else ["other image"]

        assert await run_concurrently(SEQUENCES // 8, sequence) == Counter()
