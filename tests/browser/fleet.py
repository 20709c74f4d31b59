"""A small, known fleet put into the real server over its HTTP ingest API (what displays send)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from app.simulate import render_jpeg

GROUPS = ("Lobby", "Library", "Sports hall")


@dataclass(frozen=True)
class Display:
    uuid: str
    hostname: str
    description: str
    group: str | None
    health: dict[str, str] = field(default_factory=dict)
    logs: tuple[tuple[str, str], ...] = ()
    active: bool = True
    color: tuple[int, int, int] = (30, 70, 140)

    @property
    def expected_status(self) -> str:
        if not self.active:
            return "offline"
        levels = {level for level, _ in self.logs}
        if self.health.get("process_status") == "crashed" or self.health.get("screen_health_status") == "BLACK":
            return "critical"
        if "ERROR" in levels:
            return "critical"
        if "WARN" in levels or self.health.get("process_status") in ("starting", "stopped"):
            return "warning"
        return "healthy"


def school_fleet(prefix: str) -> list[Display]:
    """Every status and reason once or more, in three groups."""
    return [
        Display(f"{prefix}-lobby-1", f"{prefix}-lobby-1", "Entrance hall, left", "Lobby"),
        Display(f"{prefix}-lobby-2", f"{prefix}-lobby-2", "Entrance hall, right", "Lobby", color=(20, 110, 90)),
        Display(
            f"{prefix}-lobby-3",
            f"{prefix}-lobby-3",
            "Reception desk",
            "Lobby",
            health={"process_status": "crashed"},
            logs=(("ERROR", "player crashed: segmentation fault"),),
            color=(90, 40, 120),
        ),
        Display(f"{prefix}-library-1", f"{prefix}-library-1", "Reading room", "Library", color=(120, 80, 30)),
        Display(
            f"{prefix}-library-2",
            f"{prefix}-library-2",
            "Study corner",
            "Library",
            logs=(("WARN", "disk 91% full"),),
            color=(60, 90, 150),
        ),
        Display(
            f"{prefix}-library-3",
            f"{prefix}-library-3",
            "Catalogue terminal",
            "Library",
            health={"screen_health_status": "BLACK"},
            color=(0, 0, 0),
        ),
        Display(f"{prefix}-gym-1", f"{prefix}-gym-1", "Scoreboard", "Sports hall", color=(20, 60, 40)),
        Display(
            f"{prefix}-gym-2",
            f"{prefix}-gym-2",
            "Changing rooms",
            "Sports hall",
            health={"process_status": "starting"},
            color=(50, 50, 90),
        ),
        Display(f"{prefix}-gym-3", f"{prefix}-gym-3", "Foyer", "Sports hall", active=False, color=(70, 70, 70)),
        Display(f"{prefix}-spare", f"{prefix}-spare", "Spare screen (storage)", None, color=(40, 40, 40)),
    ]


async def group_ids(api: httpx.AsyncClient) -> dict[str, int]:
    """The demo groups, created when missing."""
    existing = {group["name"]: group["id"] for group in (await api.get("/api/client-groups")).json()["groups"]}
    for name in GROUPS:
        if name not in existing:
            response = await api.post("/api/client-groups", json={"name": name})
            assert response.status_code == 201, response.text
            existing[name] = response.json()["id"]
    return existing


async def put_fleet(api: httpx.AsyncClient, displays: list[Display]) -> None:
    """Each display sends what it would send; an operator then names, groups or retires it."""
    groups = await group_ids(api)
    for display in displays:
        base = f"/api/clients/{display.uuid}"
        heartbeat = {"hostname": display.hostname, "ip": "10.0.4.17", "model": "Pi 5", "process_status": "running"}
        assert (await api.post(f"{base}/heartbeat", json=heartbeat)).status_code == 204
        shot = render_jpeg([display.hostname, display.description], color=display.color)
        uploaded = await api.post(f"{base}/screenshot", content=shot, headers={"Content-Type": "image/jpeg"})
        assert uploaded.status_code == 202, uploaded.text
        if display.health:
            assert (await api.post(f"{base}/health", json=display.health)).status_code == 204
        logs = [{"level": "INFO", "message": "playlist advanced"}]
        logs += [{"level": level, "message": message} for level, message in display.logs]
        assert (await api.post(f"{base}/logs", json=logs)).status_code == 202
        patch: dict[str, object] = {"description": display.description}
        if display.group:
            patch["group_id"] = groups[display.group]
        if not display.active:
            patch["is_active"] = False
        assert (await api.patch(base, json=patch)).status_code == 200
