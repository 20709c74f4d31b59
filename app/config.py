"""Settings read from the environment and `.env` (SPEC §3)."""

from __future__ import annotations

import secrets
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = "./data"
DEFAULT_MQTT_CLIENT_ID = "infoscreen-monitor"


class Settings(BaseSettings):
    """One place for every tunable; field names mirror `.env.example`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    DATABASE_URL: str = ""
    DATA_DIR: Path = Path(DEFAULT_DATA_DIR)
    SCREENSHOTS_DIR: Path | None = None

    MQTT_ENABLED: bool = True
    MQTT_HOST: str = "localhost"
    MQTT_PORT: int = Field(default=1883, ge=1, le=65535)
    MQTT_USERNAME: str | None = None
    MQTT_PASSWORD: str | None = None
    MQTT_TLS: bool = False
    MQTT_CA_FILE: Path | None = None
    MQTT_CERT_FILE: Path | None = None
    MQTT_KEY_FILE: Path | None = None
    # Empty (or unset) means the default: DEFAULT_MQTT_CLIENT_ID, or a per-run id in development.
    MQTT_CLIENT_ID: str = DEFAULT_MQTT_CLIENT_ID
    MQTT_TOPIC_PREFIX: str = Field(default="infoscreen", min_length=1)
    MQTT_SHARED_GROUP: str | None = None

    MOSQUITTO_PASSWORD_FILE: Path | None = None
    MOSQUITTO_ACL_FILE: Path | None = None
    MOSQUITTO_PID_FILE: Path | None = None

    ENV: Literal["production", "prod", "development", "dev"] = "production"
    HEARTBEAT_GRACE_PERIOD_PROD: int = Field(default=170, ge=1)
    HEARTBEAT_GRACE_PERIOD_DEV: int = Field(default=180, ge=1)
    PRIORITY_SCREENSHOT_TTL_SECONDS: int = Field(default=120, ge=0)
    MAX_SCREENSHOT_BYTES: int = Field(default=5_242_880, ge=1)
    SCREENSHOT_HISTORY_PER_CLIENT: int = Field(default=20, ge=1)
    LOG_RETENTION_DAYS: int = Field(default=30, ge=1)

    SCREEN_ANALYSIS_ENABLED: bool = True
    FROZEN_AFTER_SCREENSHOTS: int = Field(default=3, ge=2)
    SCREEN_ANALYSIS_BACKLOG: int = Field(default=10_000, ge=1)

    # Status evaluation and incidents (SPEC §12).
    STATUS_EVALUATION_ENABLED: bool = True
    STATUS_EVALUATION_INTERVAL_SECONDS: float = Field(default=5.0, gt=0, le=300)
    STATUS_CONFIRM_SECONDS: int = Field(default=30, ge=0)
    RECOVERY_HEARTBEATS: int = Field(default=2, ge=1)
    # Notifications (SPEC §12): webhooks through a durable outbox.
    WEBHOOK_DELIVERY_ENABLED: bool = True
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=120)
    ALERT_REMINDER_MINUTES: int = Field(default=60, ge=1)
    GROUP_ALERT_THRESHOLD: int = Field(default=5, ge=1)
    # The wall clock of weekly maintenance windows (an IANA name, e.g. Europe/Berlin).
    MAINTENANCE_TIME_ZONE: str = "UTC"

    INITIAL_SUPERADMIN_TOKEN: str | None = None
    AUTO_MIGRATE: bool = True
    LOG_LEVEL: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"

    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=1, le=65535)
    # Comma-separated origins allowed to call the API from a browser (`*` for any); empty: CORS off.
    CORS_ORIGINS: str = ""
    # How long a dashboard login lasts (SPEC §11); a revoked token ends its sessions at once.
    SESSION_LIFETIME_HOURS: int = Field(default=168, ge=1, le=8760)

    _per_run_client_id: bool = PrivateAttr(default=False)

    @field_validator("ENV", mode="before")
    @classmethod
    def _lower_env(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("MAINTENANCE_TIME_ZONE")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def maintenance_zone(self) -> ZoneInfo:
        return ZoneInfo(self.MAINTENANCE_TIME_ZONE)

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "MQTT_USERNAME",
        "MQTT_PASSWORD",
        "MQTT_SHARED_GROUP",
        "MQTT_CA_FILE",
        "MQTT_CERT_FILE",
        "MQTT_KEY_FILE",
        "MOSQUITTO_PASSWORD_FILE",
        "MOSQUITTO_ACL_FILE",
        "MOSQUITTO_PID_FILE",
        "INITIAL_SUPERADMIN_TOKEN",
        "SCREENSHOTS_DIR",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _development_client_id(self) -> Self:
        """A development run on a shared broker must not take over another run's session.

        Two connections with one client id throw each other off, so with `ENV=development` and no
        (or an empty) `MQTT_CLIENT_ID` the id gets this host's name and a random suffix. Production keeps the
        fixed id, which is what lets the broker keep the service's session across restarts.
        """
        given = "MQTT_CLIENT_ID" in self.model_fields_set and self.MQTT_CLIENT_ID.strip()
        if given:
            return self
        if self.is_development:
            self.MQTT_CLIENT_ID = f"{DEFAULT_MQTT_CLIENT_ID}-{socket.gethostname()}-{secrets.token_hex(3)}"
            self._per_run_client_id = True
        else:
            self.MQTT_CLIENT_ID = DEFAULT_MQTT_CLIENT_ID
        return self

    @property
    def mqtt_client_id_is_per_run(self) -> bool:
        """The id was made for this run: no later run resumes its session, so the broker need not keep it."""
        return self._per_run_client_id

    @property
    def is_development(self) -> bool:
        return self.ENV in ("development", "dev")

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite+aiosqlite:///{self.DATA_DIR / 'monitor.db'}"

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.CORS_ORIGINS.split(",") if origin.strip()]

    @property
    def screenshots_dir(self) -> Path:
        return self.SCREENSHOTS_DIR or self.DATA_DIR / "screenshots"

    @property
    def thumbnails_dir(self) -> Path:
        """The dashboard's cached thumbnails (made from the screenshots, swept when those go)."""
        return self.DATA_DIR / "thumbnails"

    @property
    def heartbeat_grace_seconds(self) -> int:
        if self.is_development:
            return self.HEARTBEAT_GRACE_PERIOD_DEV
        return self.HEARTBEAT_GRACE_PERIOD_PROD

    @cached_property
    def initial_token_path(self) -> Path:
        return self.DATA_DIR / "initial-superadmin-token"


class SettingsError(Exception):
    """A configuration value that does not parse; the message names the variable."""


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        raise SettingsError(f"invalid configuration: {name}: {first['msg']}") from None
