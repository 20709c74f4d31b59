"""status evaluation: display states, status history, incidents, webhooks and their outbox (SPEC §12)

The evaluator reads only what changed: `clients.changed_at` and `heartbeat_count` (kept at ingest),
the newest WARN log beside the newest ERROR in `latest_logs`, and indexes for its ranges.

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _newest_warn(column: str) -> str:
    return (
        f"(SELECT {column} FROM client_logs WHERE client_uuid = latest_logs.client_uuid AND level = 'WARN'"
        " ORDER BY timestamp DESC, id DESC LIMIT 1)"
    )


# Each client's newest WARN log, on the (client_uuid, level, timestamp, id) index; both backends.
FILL_WARN = f"UPDATE latest_logs SET warn_id = {_newest_warn('id')}, warn_timestamp = {_newest_warn('timestamp')}"


def _id_column() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_count", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.create_index("ix_clients_last_alive", ["last_alive"])
        batch_op.create_index("ix_clients_changed_at", ["changed_at"])
    with op.batch_alter_table("latest_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warn_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("warn_timestamp", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("changed_at", UTCDateTime(), nullable=True))
        batch_op.create_index("ix_latest_logs_error_timestamp", ["error_timestamp"])
        batch_op.create_index("ix_latest_logs_warn_timestamp", ["warn_timestamp"])
        batch_op.create_index("ix_latest_logs_changed_at", ["changed_at"])
    op.execute(FILL_WARN)
    op.create_table(
        "display_states",
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("status_since", UTCDateTime(), nullable=False),
        sa.Column("tracked_since", UTCDateTime(), nullable=False),
        sa.Column("pending_status", sa.String(length=16), nullable=True),
        sa.Column("pending_since", UTCDateTime(), nullable=True),
        sa.Column("recheck_at", UTCDateTime(), nullable=True),
        sa.Column("offline_heartbeats", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_uuid"),
    )
    op.create_index("ix_display_states_recheck_at", "display_states", ["recheck_at"])
    op.create_index("ix_display_states_status", "display_states", ["status"])
    op.create_index("ix_display_states_pending_status", "display_states", ["pending_status"])
    op.create_table(
        "status_history",
        _id_column(),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("screenshot_hash", sa.String(length=64), nullable=True),
        sa.Column("priority_screenshot_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_status_history_client_at", "status_history", ["client_uuid", "at", "id"])
    op.create_index("ix_status_history_at", "status_history", ["at"])
    op.create_table(
        "incidents",
        _id_column(),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("screenshot_hash", sa.String(length=64), nullable=True),
        sa.Column("priority_screenshot_hash", sa.String(length=64), nullable=True),
        sa.Column("remind_at", UTCDateTime(), nullable=True),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at", "id"])
    op.create_index("ix_incidents_client_opened", "incidents", ["client_uuid", "opened_at"])
    op.create_index("ix_incidents_group_opened", "incidents", ["group_id", "opened_at"])
    op.create_index("ix_incidents_closed_at", "incidents", ["closed_at"])
    op.create_index("ix_incidents_remind_at", "incidents", ["remind_at"])
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", UTCDateTime(), nullable=True),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("weekdays", sa.String(length=20), nullable=True),
        sa.Column("start_time", sa.String(length=5), nullable=True),
        sa.Column("end_time", sa.String(length=5), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "notifications",
        _id_column(),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("order_key", sa.String(length=80), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_order", "notifications", ["webhook_id", "order_key", "id"])
    op.create_index("ix_notifications_kind_group", "notifications", ["kind", "group_id", "status"])
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("webhooks")
    op.drop_table("maintenance_windows")
    op.drop_table("incidents")
    op.drop_table("status_history")
    op.drop_table("display_states")
    with op.batch_alter_table("latest_logs", schema=None) as batch_op:
        for index in ("ix_latest_logs_changed_at", "ix_latest_logs_warn_timestamp", "ix_latest_logs_error_timestamp"):
            batch_op.drop_index(index)
        for name in ("changed_at", "warn_timestamp", "warn_id"):
            batch_op.drop_column(name)
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("ix_clients_changed_at")
        batch_op.drop_index("ix_clients_last_alive")
        batch_op.drop_column("heartbeat_count")
        batch_op.drop_column("changed_at")
