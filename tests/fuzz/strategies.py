"""Hypothesis strategies for everything a display can send, valid-ish and hostile, and the read check.

Values mix what a display should send with what an attacker or a broken display does: nesting far
beyond the 32-level bound, integers beyond 64 bits, NaN and infinities, lone surrogates and other odd
unicode, timestamps at and beyond the edges of what is stored or far in the future, and wrong types.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st
from PIL import Image

# A few displays, so that inputs pile up on the same rows; and uuids that must be refused.
UUIDS = ["disp-1", "disp-2", "9f1c2d3e-0000-4000-8000-00000000abcd"]
BAD_UUIDS = ["", "..", "a" * 65, "bad uuid", "x/y", "-x", "é", "\x00"]
LEVELS = ["error", "ERROR", "warn", "Warning", "info", "debug"]
BAD_LEVELS = ["fatal", "", "错误"]
SCREENSHOT_TYPES = ["periodic", "event_start", "event_stop", "EVENT_START", "other", ""]
PROCESS_STATUSES = ["running", "crashed", "starting", "stopped", "exploded"]
SCREEN_HEALTH = ["OK", "black", "FROZEN", "UNKNOWN", "grey"]
EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "0001-01-02T00:00:00Z",
    "9999-12-29T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-03-09T21:05:00Z",
    "2026-03-09T21:30:00+00:00",
    "2026-03-09",
    "",
    "now",
    "２０２６-03-09T21:00:00Z",
]


def mostly(valid: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    """One of `valid` three times in four, else one of `odd`."""
    return st.sampled_from(valid * 3 * len(odd) + odd * len(valid))


def nest(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return {"deep": value}


# Text as displays and attackers write it: any code point, lone surrogates included.
odd_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
integers = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([2**53, 2**63, 2**64, -(2**63) - 1, 10**30]))
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, odd_text)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(odd_text, children, max_size=3),
    max_leaves=12,
)
# Depths around the 32-level bound and orjson's limit of 254, not only the small ones integers() favours.
deep_values = st.one_of(st.sampled_from([31, 32, 33, 253, 254, 255, 300, 900]), st.integers(1, 400)).map(nest)
contexts = st.one_of(
    st.none(),
    st.dictionaries(odd_text, json_values, max_size=4),
    st.dictionaries(odd_text, json_values, max_size=4),
    deep_values,
    deep_values,
    st.just({"big": "x" * 17_000}),
    json_values,
)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)).map(
    lambda delta: timezone(timedelta(minutes=delta // timedelta(minutes=1)))
)
timestamps = st.one_of(
    st.sampled_from(EDGE_TIMESTAMPS),
    st.sampled_from(EDGE_TIMESTAMPS),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59), timezones=offsets).map(
        datetime.isoformat
    ),
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.booleans(),
    odd_text,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly what the field should hold, sometimes anything at all."""
    return st.one_of(valid, valid, valid, json_values)


heartbeats = st.fixed_dictionaries(
    {},
    optional={
        "hostname": either(st.text(max_size=300)),
        "ip": either(st.text(max_size=70)),
        "model": either(st.text(max_size=20)),
        "current_event_id": either(integers),
        "current_process": either(st.text(max_size=20)),
        "process_status": either(st.sampled_from(PROCESS_STATUSES)),
        "process_pid": either(integers),
        "unknown": json_values,
    },
)
healths = st.fixed_dictionaries(
    {},
    optional={
        "process_status": either(st.sampled_from(PROCESS_STATUSES)),
        "screen_health_status": either(st.sampled_from(SCREEN_HEALTH)),
        "current_process": either(st.text(max_size=20)),
        "process_pid": either(integers),
        "current_event_id": either(integers),
    },
)
log_bodies = st.fixed_dictionaries(
    {"message": either(st.one_of(odd_text, st.text(min_size=8190, max_size=8200)))},
    optional={
        "context": contexts,
        "timestamp": timestamps,
        "message_id": either(st.text(max_size=70)),
    },
)
uuids = mostly(UUIDS, BAD_UUIDS)
levels = mostly(LEVELS, BAD_LEVELS)
http_logs = st.fixed_dictionaries({"level": either(levels)}).flatmap(
    lambda level: log_bodies.map(lambda body: {**level, **body})
)


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="JPEG")
    return buffer.getvalue()


images = st.one_of(
    st.sampled_from(["red", "green", "blue"]).map(png),
    st.sampled_from(["red", "black"]).map(jpeg),
    st.binary(max_size=64),
    st.binary(max_size=64).map(lambda junk: b"\xff\xd8\xff" + junk),
    st.binary(max_size=64).map(lambda junk: b"\x89PNG\r\n\x1a\n" + junk),
)


def encoded(value: Any) -> bytes:
    """JSON as a hostile client writes it: `NaN` and `Infinity` allowed, lone surrogates as escapes."""
    return json.dumps(value, allow_nan=True).encode()


def client_path(client_uuid: str) -> str:
    return quote(client_uuid, safe="")


READ_PATHS = (
    "/api/client-logs/monitoring-overview",
    "/api/client-logs/monitoring-overview?hours=168",
    "/api/client-logs/recent-errors?limit=100",
    "/api/client-logs/summary?hours=168",
    "/api/client-logs/test",
    "/api/clients",
)
CLIENT_READ_PATHS = (
    "/api/client-logs/{uuid}/logs?limit=500",
    "/api/clients/{uuid}",
    "/api/clients/{uuid}/screenshots",
)


def _strict_json(content: bytes) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(content, parse_constant=refuse)


async def assert_every_read_answers(http: httpx.AsyncClient, headers: dict[str, str], client_uuid: str | None) -> None:
    """Every read endpoint answers 200 with valid JSON (no NaN, no Infinity), that client's too."""
    paths = list(READ_PATHS)
    if client_uuid is not None:
        paths += [template.format(uuid=client_path(client_uuid)) for template in CLIENT_READ_PATHS]
    for path in paths:
        response = await http.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        _strict_json(response.content)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
