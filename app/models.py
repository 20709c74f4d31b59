"""SQLModel tables (SPEC §2). API shapes live in `app.schemas`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel
from typing_extensions import TypeAliasType

# Each set of stored values is named once. As a type alias it is one named enum in the OpenAPI schema
# (a `$ref`), so a generated client gets one enum per concept, on input and output alike.
LogLevel = TypeAliasType("LogLevel", Literal["ERROR", "WARN", "INFO", "DEBUG"])
ProcessStatus = TypeAliasType("ProcessStatus", Literal["running", "crashed", "starting", "stopped"])
ScreenHealthStatus = TypeAliasType("ScreenHealthStatus", Literal["OK", "BLACK", "FROZEN", "UNKNOWN"])
ScreenshotType = TypeAliasType("ScreenshotType", Literal["periodic", "event_start", "event_stop"])
PriorityScreenshotType = TypeAliasType("PriorityScreenshotType", Literal["event_start", "event_stop"])
Role = TypeAliasType("Role", Literal["device", "user", "editor", "admin", "superadmin"])
# Not stored: worked out per request by the status rules (SPEC §8), worst first.
# What the service sees in a screenshot (SPEC §14), and why a detected screen makes a display critical.
ScreenAnalysis = TypeAliasType("ScreenAnalysis", Literal["OK", "BLACK", "FROZEN"])
DetectedScreenReason = TypeAliasType("DetectedScreenReason", Literal["screen_black", "screen_frozen"])
DisplayStatus = TypeAliasType("DisplayStatus", Literal["offline", "critical", "warning", "healthy"])
# Why a display has its status (SPEC §12): every reason of the status it has, none of a milder one.
StatusReason = TypeAliasType(
    "StatusReason",
    Literal[
        "heartbeat_late",
        "last_will",
        "deactivated",
        "process_crashed",
        "screen_black",
        "screen_frozen",
        "error_logs",
        "process_starting",
        "process_stopped",
        "warn_logs",
    ],
)

LOG_LEVELS: tuple[str, ...] = get_args(LogLevel.__value__)
PROCESS_STATUSES: tuple[str, ...] = get_args(ProcessStatus.__value__)
SCREEN_HEALTH_STATUSES: tuple[str, ...] = get_args(ScreenHealthStatus.__value__)
SCREENSHOT_TYPES: tuple[str, ...] = get_args(ScreenshotType.__value__)
PRIORITY_SCREENSHOT_TYPES: tuple[str, ...] = get_args(PriorityScreenshotType.__value__)
ROLES: tuple[str, ...] = get_args(Role.__value__)
DISPLAY_STATUSES: tuple[str, ...] = get_args(DisplayStatus.__value__)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend.

    SQLite keeps naive text, so values are stored as naive UTC there (string order is time order)
    and get their `+00:00` back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class ClientGroup(SQLModel, table=True):
    __tablename__ = "client_groups"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False, unique=True))


class Client(SQLModel, table=True):
    __tablename__ = "clients"
    __table_args__ = (
        # The status evaluator finds heartbeats that crossed the grace period by a range on these.
        Index("ix_clients_last_alive", "last_alive"),  # migration 0013
        Index("ix_clients_changed_at", "changed_at"),  # migration 0013
        # The event ticker's range scan for priority screenshots ending (and `last_alive` above for heartbeats).
        Index("ix_clients_last_priority_received_at", "last_priority_received_at"),  # migration 0011
    )

    uuid: str = Field(sa_column=Column(String(64), primary_key=True))
    hostname: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    ip: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=255)
    group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("client_groups.id", ondelete="SET NULL"), index=True),
    )
    registration_time: datetime | None = _utc_column()
    last_alive: datetime | None = _utc_column()
    is_active: bool = Field(default=True)
    # Set by `offline` on the status topic (MQTT last will); a later heartbeat outranks it.
    offline_announced_at: datetime | None = _utc_column()

    current_event_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    current_process: str | None = Field(default=None, max_length=255)
    process_status: str | None = Field(default=None, max_length=16)
    process_pid: int | None = Field(default=None, sa_column=Column(BigInteger))
    screen_health_status: str | None = Field(default=None, max_length=16)

    last_screenshot_analyzed: datetime | None = _utc_column()
    last_screenshot_hash: str | None = Field(default=None, max_length=64)
    latest_screenshot_type: str | None = Field(default=None, max_length=16)
    latest_screenshot_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    last_priority_screenshot_type: str | None = Field(default=None, max_length=16)
    last_priority_received_at: datetime | None = _utc_column()
    last_priority_screenshot_hash: str | None = Field(default=None, max_length=64)
    last_priority_screenshot_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    # What the service sees on the screen (SPEC §14): OK, BLACK or FROZEN, from the analysis of the
    # screenshot `detected_screenshot_id` (the newest analysed: an older result never overwrites it).
    detected_screen_health: str | None = Field(default=None, max_length=16)
    detected_screen_health_reason: str | None = Field(default=None, max_length=32)
    detected_screenshot_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    # When an input of the status rules other than the heartbeat's time last changed (process or screen
    # status, a last will, activation, the detected screen): the status evaluator re-reads only these.
    changed_at: datetime | None = _utc_column()
    # Heartbeats received, ever: the evaluator counts those since a display went offline (SPEC §12).
    heartbeat_count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The status the event feed last announced for this display (SPEC §11): a `status` event is written
    # when the status worked out after a write differs from it.
    announced_status: str | None = Field(default=None, max_length=16)


class ClientLog(SQLModel, table=True):
    __tablename__ = "client_logs"
    __table_args__ = (
        Index("ix_client_logs_client_timestamp", "client_uuid", "timestamp", "id"),  # migration 0004
        Index("ix_client_logs_client_level_timestamp", "client_uuid", "level", "timestamp", "id"),  # 0004
        Index("ix_client_logs_level_timestamp", "level", "timestamp"),
        Index("ix_client_logs_timestamp_client_level", "timestamp", "client_uuid", "level"),  # migration 0002
        Index("uq_client_logs_client_message_id", "client_uuid", "message_id", unique=True),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    client_uuid: str = Field(
        sa_column=Column(String(64), ForeignKey("clients.uuid", ondelete="CASCADE"), nullable=False)
    )
    timestamp: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    level: str = Field(sa_column=Column(String(5), nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))
    # Compact JSON text of the context object, or NULL when there is none.
    context: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class LatestLog(SQLModel, table=True):
    """Each client's newest log and newest ERROR log (latest timestamp, then highest id), kept at ingest.

    The overview joins the logs by these ids instead of searching each client's logs. Retention
    only deletes a client's newest log together with all its older ones, so an id that no longer
    matches a log means there is none (the join gives null).
    """

    __tablename__ = "latest_logs"
    __table_args__ = (
        # The status evaluator's ranges: errors and warnings leaving the window, and new ones arriving.
        Index("ix_latest_logs_error_timestamp", "error_timestamp"),  # migration 0013
        Index("ix_latest_logs_warn_timestamp", "warn_timestamp"),  # migration 0013
        Index("ix_latest_logs_changed_at", "changed_at"),  # migration 0013
    )

    client_uuid: str = Field(sa_type=String(64), foreign_key="clients.uuid", ondelete="CASCADE", primary_key=True)
    log_id: int | None = Field(default=None, sa_type=BigInteger)
    log_timestamp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error_id: int | None = Field(default=None, sa_type=BigInteger)
    error_timestamp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    warn_id: int | None = Field(default=None, sa_type=BigInteger)
    warn_timestamp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Server time an ERROR or WARN log last arrived (whatever its own timestamp).
    changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class _LevelCountsRow(SQLModel):
    """One rollup row: exact log counts of one client in one UTC time bucket, the levels side by side.

    Kept in step with `client_logs` by the ingest service, retention and client deletion
    (`ingest.adjust_log_counts`); the window counts read these instead of counting logs.
    """

    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    client_uuid: str = Field(
        sa_type=String(64), foreign_key="clients.uuid", ondelete="CASCADE", primary_key=True, index=True
    )
    error: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    warn: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    info: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    debug: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class LogCountHourly(_LevelCountsRow, table=True):
    """Counts per UTC hour."""

    __tablename__ = "log_counts_hourly"


class LogCountSixHourly(_LevelCountsRow, table=True):
    """Counts per 6-hour UTC block (00, 06, 12 and 18 h), written beside the hourly rollup.

    A day-long window reads about 4 of these rows per client plus at most 3 hourly ones, instead of 24.
    """

    __tablename__ = "log_counts_six_hourly"


class LogTotal(SQLModel, table=True):
    """Exact all-time log count per level, so `/test` never counts the log table."""

    __tablename__ = "log_totals"

    level: str = Field(sa_column=Column(String(5), primary_key=True))
    count: int = Field(sa_column=Column(BigInteger, nullable=False))


class Screenshot(SQLModel, table=True):
    __tablename__ = "screenshots"
    __table_args__ = (
        Index("ix_screenshots_client_received", "client_uuid", "received_at", "id"),
        Index("ix_screenshots_hash", "hash"),  # thumbnails look screenshots up by hash (migration 0011)
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    client_uuid: str = Field(
        sa_column=Column(String(64), ForeignKey("clients.uuid", ondelete="CASCADE"), nullable=False)
    )
    screenshot_type: str = Field(sa_column=Column(String(16), nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    captured_at: datetime | None = _utc_column()
    hash: str = Field(sa_column=Column(String(64), nullable=False))
    size: int = Field(sa_column=Column(Integer, nullable=False))
    format: str = Field(sa_column=Column(String(8), nullable=False))
    filename: str = Field(sa_column=Column(String(255), nullable=False))
    # Screen analysis (SPEC §14), filled after the commit; NULL until analysed.
    analysis: str | None = Field(default=None, sa_column=Column(String(8), nullable=True))
    analysed_at: datetime | None = _utc_column()
    luminance_mean: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    luminance_spread: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    luminance_p99: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    bright_share: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    # The grey grid of `screen_analysis.HASH_GRID` cells, hex: screenshots are compared by it.
    perceptual_hash: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The display's event when the screenshot was analysed (right after it was stored).
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    client_uuid: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_used_at: datetime | None = _utc_column()
    revoked: bool = Field(default=False)


class MqttCredential(SQLModel, table=True):
    """A display's broker account (SPEC §13): its username is its uuid; the secret is kept only hashed.

    `password_hash` is in Mosquitto's own format, so the broker's password file is written from these rows.
    """

    __tablename__ = "mqtt_credentials"

    client_uuid: str = Field(sa_column=Column(String(64), primary_key=True))
    password_hash: str = Field(sa_column=Column(String(255), nullable=False))
    token_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("api_tokens.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = _utc_column()


class DisplayState(SQLModel, table=True):
    """The status evaluator's memory of one display (SPEC §12): its confirmed status and a pending one.

    A pending status becomes the confirmed one once it has held `STATUS_CONFIRM_SECONDS`
    (`recheck_at` is then); recovery from offline needs `RECOVERY_HEARTBEATS` heartbeats after
    `offline_heartbeats` (the display's `heartbeat_count` when it was last seen offline).
    """

    __tablename__ = "display_states"
    __table_args__ = (
        Index("ix_display_states_recheck_at", "recheck_at"),
        Index("ix_display_states_status", "status"),
        Index("ix_display_states_pending_status", "pending_status"),
    )

    client_uuid: str = Field(sa_type=String(64), foreign_key="clients.uuid", ondelete="CASCADE", primary_key=True)
    status: str = Field(sa_column=Column(String(16), nullable=False))
    reasons: str = Field(sa_column=Column(Text, nullable=False))
    # When the confirmed status began, and when the evaluator first saw the display (uptime counts from there).
    status_since: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    tracked_since: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    pending_status: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    pending_since: datetime | None = _utc_column()
    recheck_at: datetime | None = _utc_column()
    offline_heartbeats: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class StatusChange(SQLModel, table=True):
    """One confirmed transition of a display's status, with the screenshots of that moment (SPEC §12)."""

    __tablename__ = "status_history"
    __table_args__ = (
        Index("ix_status_history_client_at", "client_uuid", "at", "id"),
        Index("ix_status_history_at", "at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    client_uuid: str = Field(
        sa_column=Column(String(64), ForeignKey("clients.uuid", ondelete="CASCADE"), nullable=False)
    )
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    from_status: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    to_status: str = Field(sa_column=Column(String(16), nullable=False))
    # JSON array of `StatusReason`s.
    reasons: str = Field(sa_column=Column(Text, nullable=False))
    screenshot_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    priority_screenshot_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class Incident(SQLModel, table=True):
    """A display offline or critical, from the confirmed transition into it until it recovers (SPEC §12)."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_opened_at", "opened_at", "id"),
        Index("ix_incidents_client_opened", "client_uuid", "opened_at"),
        Index("ix_incidents_group_opened", "group_id", "opened_at"),
        Index("ix_incidents_closed_at", "closed_at"),
        Index("ix_incidents_remind_at", "remind_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    client_uuid: str = Field(
        sa_column=Column(String(64), ForeignKey("clients.uuid", ondelete="CASCADE"), nullable=False)
    )
    # The display's group when the incident opened.
    group_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    reasons: str = Field(sa_column=Column(Text, nullable=False))
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = _utc_column()
    acknowledged_at: datetime | None = _utc_column()
    acknowledged_by: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    screenshot_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    priority_screenshot_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # When the next reminder is due while the incident is open (null once closed), and the last one went.
    remind_at: datetime | None = _utc_column()
    reminded_at: datetime | None = _utc_column()
    # When its opened notification went to the outbox; null while a maintenance window held it back.
    notified_at: datetime | None = _utc_column()


# What a webhook may be sent (SPEC §12): one display's incident opened, reminded, recovered, or one
# notification for many displays of a group at once.
NotificationKind = TypeAliasType(
    "NotificationKind", Literal["incident_opened", "incident_reminder", "incident_recovered", "group_alert"]
)
NOTIFICATION_KINDS: tuple[str, ...] = get_args(NotificationKind.__value__)


class MaintenanceWindow(SQLModel, table=True):
    """When one display's or one group's notifications are silenced (SPEC §12; `app.services.maintenance`)."""

    __tablename__ = "maintenance_windows"

    id: int | None = Field(default=None, primary_key=True)
    client_uuid: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    group_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    starts_at: datetime | None = _utc_column()
    ends_at: datetime | None = _utc_column()
    # Weekly recurrence: comma-separated weekday numbers (Monday 0) and local "HH:MM" times; null: once.
    weekdays: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    start_time: str | None = Field(default=None, sa_column=Column(String(5), nullable=True))
    end_time: str | None = Field(default=None, sa_column=Column(String(5), nullable=True))
    description: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Webhook(SQLModel, table=True):
    """An endpoint that receives notifications, signed with its secret (SPEC §12)."""

    __tablename__ = "webhooks"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str = Field(sa_column=Column(String(200), nullable=False))
    # Only displays of this group (when the incident opened); null: every display.
    group_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # JSON array of `NotificationKind`s it receives.
    events: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Notification(SQLModel, table=True):
    """The durable outbox: one delivery of one event to one webhook, written with the transition.

    `payload` is the exact body sent (retries send the same bytes); `delivery_id` is the receiver's
    idempotency key. Deliveries of one webhook with the same `order_key` (a display, or a group) go
    out in id order: a later one waits while an earlier one is pending.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_order", "webhook_id", "order_key", "id"),
        Index("ix_notifications_kind_group", "kind", "group_id", "status"),
        Index("ix_notifications_created_at", "created_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    delivery_id: str = Field(sa_column=Column(String(36), nullable=False, unique=True))
    webhook_id: int = Field(sa_column=Column(Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False))
    kind: str = Field(sa_column=Column(String(24), nullable=False))
    order_key: str = Field(sa_column=Column(String(80), nullable=False))
    group_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    # pending, sent or failed (given up after 24 hours of retries).
    status: str = Field(sa_column=Column(String(8), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # A replica that took it for sending holds it until then (a replica that dies mid-send lets go).
    claimed_until: datetime | None = _utc_column()
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = _utc_column()


class DashboardSession(SQLModel, table=True):
    """A browser's login to the dashboard (SPEC §11): only a hash of the cookie's session id is kept.

    The session lives no longer than its token: deleting the token deletes it (cascade), and a revoked
    token is refused when the session is looked up.
    """

    __tablename__ = "dashboard_sessions"

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    token_id: int = Field(
        sa_column=Column(Integer, ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    csrf_token: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class Event(SQLModel, table=True):
    """One event of the live feed (SPEC §11), written in the transaction of the write that caused it.

    Kept for `EVENT_RETENTION` (ten minutes): what a reconnecting stream may ask for with `Last-Event-ID`.
    """

    __tablename__ = "events"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    client_uuid: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # The event's `data`: compact camelCase JSON, sent as it is.
    payload: str = Field(sa_column=Column(Text, nullable=False))


class EventTick(SQLModel, table=True):
    """Where the event ticker's time-driven transitions got to: one row, moved by compare-and-set,
    so that with several replicas each transition is announced once in all."""

    __tablename__ = "event_ticks"

    name: str = Field(sa_column=Column(String(32), primary_key=True))
    tick: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def utcnow() -> datetime:
    return datetime.now(UTC)
