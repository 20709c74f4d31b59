"""Settings read from the environment and `.env` (SPEC §3)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = "./data"


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
    MQTT_CLIENT_ID: str = Field(default="infoscreen-monitor", min_length=1)
    MQTT_TOPIC_PREFIX: str = Field(default="infoscreen", min_length=1)
    MQTT_SHARED_GROUP: str | None = None

    ENV: Literal["production", "prod", "development", "dev"] = "production"
    HEARTBEAT_GRACE_PERIOD_PROD: int = Field(default=170, ge=1)
    HEARTBEAT_GRACE_PERIOD_DEV: int = Field(default=180, ge=1)
    PRIORITY_SCREENSHOT_TTL_SECONDS: int = Field(default=120, ge=0)
    MAX_SCREENSHOT_BYTES: int = Field(default=5_242_880, ge=1)
    SCREENSHOT_HISTORY_PER_CLIENT: int = Field(default=20, ge=1)
    LOG_RETENTION_DAYS: int = Field(default=30, ge=1)

    INITIAL_SUPERADMIN_TOKEN: str | None = None
    AUTO_MIGRATE: bool = True
    LOG_LEVEL: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"

    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=1, le=65535)
    # Comma-separated origins allowed to call the API from a browser (`*` for any); empty: CORS off.
    CORS_ORIGINS: str = ""

    @field_validator("ENV", mode="before")
    @classmethod
    def _lower_env(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "MQTT_USERNAME",
        "MQTT_PASSWORD",
        "MQTT_SHARED_GROUP",
        "INITIAL_SUPERADMIN_TOKEN",
        "SCREENSHOTS_DIR",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

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
    def heartbeat_grace_seconds(self) -> int:
        if self.ENV in ("development", "dev"):
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
