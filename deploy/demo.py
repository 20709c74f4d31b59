"""`make demo`: the service, a broker and a simulated fleet, to look at the dashboard.

Starts a development Mosquitto on a free port, the service (SQLite under data/demo, MQTT on, a short
heartbeat grace and priority TTL so that changes show within a minute) and `python -m app simulate`
(some displays crash, go black or frozen, go dark or drop off through their last will, and send
event screenshots). Once the displays have registered they are put into groups and described, as an
operator would. Prints the dashboard's URL and the login token; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("Entrance", "Library", "Sports hall", "Cafeteria")
ROOMS = ("main door", "reception", "corridor A", "corridor B", "stairs", "reading room", "study corner", "foyer")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_broker(directory: Path, port: int) -> subprocess.Popen[bytes]:
    mosquitto = os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    config = directory / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n{user}persistence false\n"
        "max_queued_messages 100000\n"
        f"log_dest file {directory}/mosquitto.log\n"
    )
    with (directory / "mosquitto.stderr").open("ab") as output:
        process = subprocess.Popen([mosquitto, "-c", str(config)], stdin=subprocess.DEVNULL, stderr=output)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    raise SystemExit("mosquitto did not start (see data/demo/mosquitto.log)")


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the service exited at start-up (see data/demo/service.log)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).json().get("mqtt") == "connected":
                return
        time.sleep(0.2)
    raise SystemExit("the service did not get ready (see data/demo/service.log)")


def arrange_fleet(url: str, token: str, displays: int) -> None:
    """Groups and descriptions for the displays that registered (as an operator would set them)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        deadline = time.monotonic() + 30
        clients: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            clients = api.get("/api/clients").json()["clients"]
            if len(clients) >= displays:
                break
            time.sleep(0.5)
        group_ids = [api.post("/api/client-groups", json={"name": name}).json()["id"] for name in GROUPS]
        for number, client in enumerate(sorted(clients, key=lambda item: str(item["hostname"]))):
            group = number % (len(GROUPS) + 1)  # every fifth display stays ungrouped
            patch: dict[str, object] = {"description": f"{ROOMS[number % len(ROOMS)].capitalize()} {number + 1}"}
            if group < len(GROUPS):
                patch["group_id"] = group_ids[group]
            api.patch(f"/api/clients/{client['uuid']}", json=patch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--displays", type=int, default=60)
    parser.add_argument("--port", type=int, default=8000, help="the service's port (a free one if taken)")
    parser.add_argument("--duration", type=int, default=900, help="seconds the simulated fleet runs")
    args = parser.parse_args()

    data_dir = ROOT / "data" / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    broker_port = free_port()
    port = args.port if port_is_free(args.port) else free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(32)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MQTT_", "DATABASE_URL"))},
        "DATA_DIR": str(data_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ENV": "development",
        "HEARTBEAT_GRACE_PERIOD_DEV": "45",
        "PRIORITY_SCREENSHOT_TTL_SECONDS": "30",
        "MQTT_ENABLED": "true",
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": str(broker_port),
        "INITIAL_SUPERADMIN_TOKEN": token,
        "LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start_broker(data_dir, broker_port))
        with (data_dir / "service.log").open("ab") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"], cwd=data_dir, env=env, stdout=log, stderr=log
            )
        processes.append(service)
        wait_ready(url, service)
        with (data_dir / "simulator.log").open("ab") as log:
            simulator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app",
                    "simulate",
                    "--displays",
                    str(args.displays),
                    "--rate",
                    "0.2",
                    "--duration",
                    str(args.duration),
                    "--seed",
                    "7",
                    "--broker",
                    f"127.0.0.1:{broker_port}",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )
        processes.append(simulator)
        arrange_fleet(url, token, args.displays)
        print(f"\nDashboard:   {url}/dashboard\nLogin token: {token}\n")
        print(f"{args.displays} simulated displays for {args.duration} s; trouble starts within a few minutes.")
        print("API docs:    " + f"{url}/docs   (Ctrl-C stops the service, the broker and the fleet)\n", flush=True)
        simulator.wait()
        print("The simulated fleet has stopped; displays go offline after 45 s. Ctrl-C to end.", flush=True)
        service.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
