"""What `app/services/mqtt_client.py` borrows from aiomqtt's and paho's internals, each checked by name.

`IngestClient` subclasses `aiomqtt.Client` and reaches past its public API (manual acknowledgement and
backpressure have none), which is why pyproject.toml pins aiomqtt exactly. An upgrade that moves one of
these internals fails here, naming it, instead of as lost messages or a stalled consumer under load.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiomqtt
import aiomqtt.types
import paho.mqtt.client as paho
import pytest
from packaging.requirements import Requirement

from app.services.mqtt_client import IngestClient, _InboundQueue

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
HIGH_WATER = 8

# (owner, name, parameters after self): the methods mqtt_client.py calls or overrides.
METHODS: list[tuple[type, str, list[str]]] = [
    (aiomqtt.Client, "__init__", ["hostname", "port", "queue_type", "max_queued_incoming_messages"]),
    (aiomqtt.Client, "_on_message", ["client", "userdata", "message"]),
    (aiomqtt.Client, "_on_socket_open", ["client", "userdata", "sock"]),
    (aiomqtt.Client, "_on_socket_close", ["client", "userdata", "sock"]),
    (paho.Client, "manual_ack_set", ["on"]),
    (paho.Client, "ack", ["mid", "qos"]),
    (paho.Client, "loop_read", ["max_packets"]),
]


def method_id(entry: tuple[type, str, list[str]]) -> str:
    owner, name, _ = entry
    return f"{owner.__module__}.{owner.__qualname__}.{name}"


def aiomqtt_pin() -> str:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = (Requirement(text) for text in dependencies if Requirement(text).name == "aiomqtt")
    return str(pin.specifier)


@pytest.fixture
async def client() -> IngestClient:
    # Built, never connected: aiomqtt's constructor already wires the paho callbacks and the queue.
    return IngestClient("127.0.0.1", 1, high_water=HIGH_WATER)


class TestPin:
    def test_aiomqtt_is_pinned_exactly_to_the_installed_version(self) -> None:
        assert aiomqtt_pin() == f"=={version('aiomqtt')}", (
            f"pyproject.toml pins aiomqtt {aiomqtt_pin()} but {version('aiomqtt')} is installed: "
            "check the internals below against the new version, then move the pin and the lock together"
        )


class TestSignatures:
    @pytest.mark.parametrize("entry", METHODS, ids=method_id)
    def test_method_takes_the_parameters_mqtt_client_passes(self, entry: tuple[type, str, list[str]]) -> None:
        owner, name, expected = entry
        method = getattr(owner, name, None)
        assert callable(method), f"{method_id(entry)} moved: it no longer exists"
        parameters = [parameter for parameter in inspect.signature(method).parameters if parameter != "self"]
        missing = [parameter for parameter in expected if parameter not in parameters]
        assert not missing, f"{method_id(entry)} moved: no parameter {missing} (it takes {parameters})"
        if name.startswith("_on_"):
            assert parameters[:3] == expected, f"{method_id(entry)} moved: paho calls it with {expected}"

    def test_paho_socket_type_alias_exists(self) -> None:
        assert hasattr(aiomqtt.types, "PahoSocket"), "aiomqtt.types.PahoSocket moved"

    def test_message_carries_qos_and_mid(self) -> None:
        message = aiomqtt.Message("t/x", b"", qos=1, retain=False, mid=7, properties=None)
        assert (message.qos, message.mid) == (1, 7), "aiomqtt.Message.qos / .mid moved (ack() sends mid back)"


class TestInstanceAttributes:
    async def test_paho_client_is_private_client_with_manual_ack_on(self, client: IngestClient) -> None:
        paho_client = getattr(client, "_client", None)
        assert isinstance(paho_client, paho.Client), "aiomqtt.Client._client (the paho client) moved"
        assert getattr(paho_client, "_manual_ack", None) is True, "paho.Client.manual_ack_set no longer sets it"
        assert hasattr(paho_client, "_sock"), "paho.Client._sock moved (the TLS `pending()` check reads it)"

    async def test_queue_is_built_from_queue_type_and_max_queued_incoming_messages(self, client: IngestClient) -> None:
        queue = getattr(client, "_queue", None)
        assert isinstance(queue, _InboundQueue), "aiomqtt.Client._queue no longer comes from queue_type"
        assert queue.qos0_limit == HIGH_WATER * 4, "aiomqtt no longer passes max_queued_incoming_messages as maxsize"

    async def test_loop_and_disconnected_future(self, client: IngestClient) -> None:
        assert getattr(client, "_loop", None) is asyncio.get_running_loop(), "aiomqtt.Client._loop moved"
        disconnected = getattr(client, "_disconnected", None)
        assert isinstance(disconnected, asyncio.Future), "aiomqtt.Client._disconnected (a Future) moved"

    @pytest.mark.parametrize("callback", ["on_message", "on_socket_open", "on_socket_close"])
    async def test_paho_calls_the_overrides(self, client: IngestClient, callback: str) -> None:
        registered: Callable[..., Any] | None = getattr(client._client, callback)
        override = getattr(client, f"_{callback}")
        assert registered == override, f"aiomqtt.Client no longer registers self._{callback} as paho's {callback}"


class TestReader:
    async def test_socket_open_registers_a_reader_that_pausing_can_remove(self, client: IngestClient) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        closed: list[bool] = []
        client.on_connection_lost = lambda: closed.append(True)
        try:
            client._on_socket_open(client._client, None, ours)
            assert client._socket_fd == ours.fileno()
            await asyncio.sleep(0)  # aiomqtt registers the reader through call_soon_threadsafe
            assert loop.remove_reader(ours.fileno()), (
                "aiomqtt.Client._on_socket_open no longer adds a reader on _loop for the socket: "
                "_pause_reading cannot stop reading"
            )
            loop.add_reader(ours.fileno(), client._read)
            client._on_socket_close(client._client, None, ours)
            assert not loop.remove_reader(ours.fileno()), "aiomqtt.Client._on_socket_close no longer removes the reader"
            assert client._socket_fd is None
            assert closed == [True]
        finally:
            ours.close()
            theirs.close()
