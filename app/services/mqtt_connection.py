"""How the service (and the simulator) reach the broker: TLS, and what a failed connection means.

A wrong password or certificate is a configuration problem an operator must fix, not a transient
outage: it is logged as one error line that names the variables to check, and the caller keeps
retrying with its backoff (the broker's files or certificates may be fixed in the meantime).
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from app.config import Settings

# CONNACK codes for refused credentials: MQTT 5 (0x86 bad user name or password, 0x87 not
# authorized) and MQTT 3.1.1 (4, 5).
_REFUSED_CREDENTIALS = {0x86, 0x87, 4, 5}


class _ClosingSSLSocket(ssl.SSLSocket):
    """paho leaves the socket of a failed handshake to the garbage collector; close it at once."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class MqttConfigurationError(Exception):
    """The TLS settings cannot be used as given (a missing or unreadable CA, certificate or key)."""


def tls_context(
    settings: Settings, *, ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext | None:
    """With `MQTT_TLS=true`: verify the broker against `MQTT_CA_FILE` (else the system's CAs) and its name."""
    if not settings.MQTT_TLS:
        return None
    ca_file = ca_file or settings.MQTT_CA_FILE
    cert_file = cert_file or settings.MQTT_CERT_FILE
    key_file = key_file or settings.MQTT_KEY_FILE
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise MqttConfigurationError(f"MQTT_CA_FILE {ca_file} is not a usable CA certificate: {exc}") from None
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise MqttConfigurationError(
                f"MQTT_CERT_FILE {cert_file} / MQTT_KEY_FILE {key_file} are not a usable certificate and key: {exc}"
            ) from None
    context.sslsocket_class = _ClosingSSLSocket
    return context


def describe_failure(exc: aiomqtt.MqttError, *, host: str, port: int) -> tuple[int, str]:
    """A log level and one line for a failed connection: refused credentials and TLS failures are errors."""
    if isinstance(exc, aiomqtt.MqttCodeError):
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if isinstance(exc, MqttConnectError) and code in _REFUSED_CREDENTIALS:
            return logging.ERROR, (
                f"MQTT broker {host}:{port} refused the connection ({exc}): check MQTT_USERNAME / MQTT_PASSWORD "
                "and that the account is in the broker's password file"
            )
    text = str(exc)
    if "SSL" in text or "certificate" in text.lower():
        return logging.ERROR, (
            f"MQTT TLS connection to {host}:{port} failed ({text}): check MQTT_CA_FILE, the broker certificate's "
            "name (it must match MQTT_HOST) and MQTT_TLS / MQTT_PORT"
        )
    return logging.WARNING, f"MQTT broker {host}:{port} unavailable: {text}"
