"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "client_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "log_totals",
        sa.Column("level", sa.String(length=5), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("level"),
    )
    op.create_table(
        "clients",
        sa.Column("uuid", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("registration_time", UTCDateTime(), nullable=True),
        sa.Column("last_alive", UTCDateTime(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("offline_announced_at", UTCDateTime(), nullable=True),
        sa.Column("current_event_id", sa.BigInteger(), nullable=True),
        sa.Column("current_process", sa.String(length=255), nullable=True),
        sa.Column("process_status", sa.String(length=16), nullable=True),
        sa.Column("process_pid", sa.BigInteger(), nullable=True),
        sa.Column("screen_health_status", sa.String(length=16), nullable=True),
        sa.Column("last_screenshot_analyzed", UTCDateTime(), nullable=True),
        sa.Column("last_screenshot_hash", sa.String(length=64), nullable=True),
        sa.Column("latest_screenshot_type", sa.String(length=16), nullable=True),
        sa.Column("latest_screenshot_id", sa.BigInteger(), nullable=True),
        sa.Column("last_priority_screenshot_type", sa.String(length=16), nullable=True),
        sa.Column("last_priority_received_at", UTCDateTime(), nullable=True),
        sa.Column("last_priority_screenshot_hash", sa.String(length=64), nullable=True),
        sa.Column("last_priority_screenshot_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["group_id"], ["client_groups.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("uuid"),
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clients_group_id"), ["group_id"], unique=False)

    op.create_table(
        "client_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("level", sa.String(length=5), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("client_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_client_logs_client_level_timestamp", ["client_uuid", "level", "timestamp"], unique=False
        )
        batch_op.create_index("ix_client_logs_client_timestamp", ["client_uuid", "timestamp"], unique=False)
        batch_op.create_index("ix_client_logs_level_timestamp", ["level", "timestamp"], unique=False)
        batch_op.create_index("ix_client_logs_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("uq_client_logs_client_message_id", ["client_uuid", "message_id"], unique=True)

    op.create_table(
        "log_counts_hourly",
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=5), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bucket_start", "client_uuid", "level"),
    )
    with op.batch_alter_table("log_counts_hourly", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_counts_hourly_client_uuid"), ["client_uuid"], unique=False)

    op.create_table(
        "screenshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("screenshot_type", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("captured_at", UTCDateTime(), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        batch_op.create_index("ix_screenshots_client_received", ["client_uuid", "received_at", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        batch_op.drop_index("ix_screenshots_client_received")

    op.drop_table("screenshots")
    with op.batch_alter_table("log_counts_hourly", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_counts_hourly_client_uuid"))

    op.drop_table("log_counts_hourly")
    with op.batch_alter_table("client_logs", schema=None) as batch_op:
        batch_op.drop_index("uq_client_logs_client_message_id")
        batch_op.drop_index("ix_client_logs_timestamp")
        batch_op.drop_index("ix_client_logs_level_timestamp")
        batch_op.drop_index("ix_client_logs_client_timestamp")
        batch_op.drop_index("ix_client_logs_client_level_timestamp")

    op.drop_table("client_logs")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clients_group_id"))

    op.drop_table("clients")
    op.drop_table("log_totals")
    op.drop_table("client_groups")
    op.drop_table("api_tokens")
