"""A webhook receiver for Infoscreen Monitor notifications: verify, de-duplicate, handle.

Standard library only, so it can be pasted into any Python 3.11+ endpoint. Run it as is:

    WEBHOOK_SECRET=the-secret-you-gave-the-webhook python deploy/webhook_receiver.py 8080

and register `http://<host>:8080/` with `POST /api/webhooks`. What to keep when pasting:

1. `verify_signature`: compare `X-Infoscreen-Signature` with the HMAC-SHA256 of the *raw* body
   (before any JSON parsing), in constant time. Refuse (401) when it does not match.
2. De-duplicate by `X-Infoscreen-Delivery`: a delivery is retried until it gets a 2xx, so the same
   one may arrive twice (say the answer was lost). Handle it once; answer 2xx again.
3. Answer 2xx only once the event is handled; anything else (or no answer in 10 s) makes the service
   retry with backoff for 24 hours, in order per display.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-Infoscreen-Signature"
DELIVERY_HEADER = "X-Infoscreen-Delivery"
MAX_BODY_BYTES = 10 * 1024 * 1024


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256 of body with secret>`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256="), expected)


def say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 (a command-line receiver reports on stdout)


def print_event(event: dict[str, Any]) -> None:
    """The default handling: one line per notification."""
    if event["event"] == "group_alert":
        say(f"{event['at']} group {event['group_id']}: {event['count']} displays, {event['kind']}")
        return
    incident = event["incident"]
    name = incident["hostname"] or incident["client_uuid"]
    say(f"{event['at']} {event['event']}: {name} {incident['status']} {incident['reasons']}")


class Server(ThreadingHTTPServer):
    # The service sends many deliveries at once after an outage: keep their connections waiting.
    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """Verifies and de-duplicates notifications, then hands each one to `handle` once.

    If `handle` raises, the answer is 500 and the delivery is not remembered: the service retries it.
    """

    def __init__(self, secret: str, handle: Callable[[dict[str, Any]], None] = print_event) -> None:
        self.secret = secret
        self.handle = handle
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def receive(self, body: bytes, headers: Any) -> int:
        """The status code to answer."""
        if not verify_signature(self.secret, body, headers.get(SIGNATURE_HEADER)):
            return 401
        delivery_id = headers.get(DELIVERY_HEADER) or ""
        with self.lock:
            if delivery_id in self.seen:
                return 200
            try:
                self.handle(json.loads(body))
            except Exception:
                return 500
            self.seen.add(delivery_id)
        return 200

    def server(self, host: str, port: int) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_response(413)
                    self.end_headers()
                    return
                status = receiver.receive(self.rfile.read(length), self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Server((host, port), Handler)


def main() -> None:
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        sys.exit("set WEBHOOK_SECRET to the webhook's secret")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = Receiver(secret).server("0.0.0.0", port)
    say(f"listening on :{port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
