"""What the service tells an operator when the broker cannot be reached as configured."""

from __future__ import annotations

import logging
from pathlib import Path

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from app.config import Settings
from app.services.mqtt_connection import MqttConfigurationError, describe_failure, tls_context


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


class TestTlsContext:
    def test_no_tls_no_context(self) -> None:
        assert tls_context(settings()) is None

    def test_tls_verifies_the_broker_and_its_name(self) -> None:
        context = tls_context(settings(MQTT_TLS=True))
        assert context is not None
        assert context.check_hostname

    def test_a_missing_ca_file_is_a_configuration_error_naming_the_variable(self, tmp_path: Path) -> None:
        with pytest.raises(MqttConfigurationError, match="MQTT_CA_FILE"):
            tls_context(settings(MQTT_TLS=True, MQTT_CA_FILE=tmp_path / "missing.crt"))

    def test_an_unusable_client_certificate_names_its_variables(self, tmp_path: Path) -> None:
        (tmp_path / "client.crt").write_text("not a certificate")
        with pytest.raises(MqttConfigurationError, match="MQTT_CERT_FILE"):
            tls_context(settings(MQTT_TLS=True, MQTT_CERT_FILE=tmp_path / "client.crt"))


class TestDescribeFailure:
    def test_refused_credentials_are_an_error_naming_the_variables(self) -> None:
        error = MqttConnectError(ReasonCode(PacketTypes.CONNACK, "Bad user name or password"))
        level, line = describe_failure(error, host="broker", port=1883)
        assert level == logging.ERROR
        assert "MQTT_USERNAME / MQTT_PASSWORD" in line
        assert "broker:1883" in line

    def test_a_certificate_that_does_not_verify_is_an_error_naming_the_ca(self) -> None:
        error = aiomqtt.MqttError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        level, line = describe_failure(error, host="broker", port=8883)
        assert level == logging.ERROR
        assert "MQTT_CA_FILE" in line

    def test_a_broker_that_is_down_is_a_warning(self) -> None:
        level, line = describe_failure(aiomqtt.MqttError("[Errno 111] Connection refused"), host="b", port=1)
        assert level == logging.WARNING
        assert "unavailable" in line
