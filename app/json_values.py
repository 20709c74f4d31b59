"""JSON values that always serialize (SPEC §5): a depth limit, and a safe copy of what orjson refuses.

orjson refuses containers nested about 255 deep, integers beyond 64 bits and strings with lone
surrogates; the standard library's decoder raises `RecursionError` on very deep text. A display can
send any of these, so what is stored is bounded here and what is read is never trusted to be.
"""

from __future__ import annotations

from typing import Any

import orjson

# A log context nested deeper than this is stored (and read) as `{"truncated": true}`.
MAX_CONTEXT_DEPTH = 32
MAX_CONTEXT_BYTES = 16 * 1024
_LOWEST_INT, _HIGHEST_INT = -(2**63), 2**64 - 1  # what orjson serializes
# orjson's own limit is 254 levels; a response's envelope takes a few of them.
_RESPONSE_DEPTH = 200


def truncated() -> dict[str, Any]:
    return {"truncated": True}


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether dicts and lists in `value` nest more than `limit` levels (`{"a": 1}` is one level).

    Iterative, so a hostile value cannot exhaust the interpreter's stack.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def storable_text(value: str) -> str:
    """`value` with each lone surrogate (`"\\ud800"` in JSON) replaced by U+FFFD: no database or encoder takes one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _number(value: int) -> int | float | None:
    if _LOWEST_INT <= value <= _HIGHEST_INT:
        return value
    try:
        return float(value)
    except OverflowError:
        return None


def serializable(value: Any, *, max_depth: int) -> Any:
    """A copy of `value` that orjson serializes: containers deeper than `max_depth` become
    `{"truncated": true}`, integers beyond 64 bits floats (or null), lone surrogates U+FFFD, keys
    strings. Recursion is bounded by `max_depth`."""
    return _serializable(value, max_depth)


def _serializable(value: Any, levels_left: int) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return _number(value)
    if isinstance(value, dict):
        if levels_left <= 0:
            return truncated()
        return {storable_text(str(key)): _serializable(item, levels_left - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if levels_left <= 0:
            return truncated()
        return [_serializable(item, levels_left - 1) for item in value]
    return value  # datetimes and the like: orjson's own types


def bounded_context(context: dict[str, Any]) -> dict[str, Any]:
    """The context to store: `{"truncated": true}` when nested deeper than `MAX_CONTEXT_DEPTH` or larger
    than `MAX_CONTEXT_BYTES` as compact UTF-8 JSON, else a copy that always serializes."""
    if nests_deeper_than(context, MAX_CONTEXT_DEPTH):
        return truncated()
    storable: dict[str, Any] = serializable(context, max_depth=MAX_CONTEXT_DEPTH)
    return truncated() if len(orjson.dumps(storable)) > MAX_CONTEXT_BYTES else storable


def dumps(value: Any) -> bytes:
    """orjson, and when it refuses the value a serializable copy (NaN and infinities become null)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return orjson.dumps(serializable(value, max_depth=_RESPONSE_DEPTH))
