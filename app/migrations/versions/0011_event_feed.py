"""event feed: the events of the live dashboard, the ticker's cursor, the indexes they scan by

`events` holds the last ten minutes of the live feed (SPEC §11); `event_ticks` the point in time
the ticker has announced time-driven transitions up to; `clients.announced_status` the status the
feed last announced per display. Indexes: priority screenshots by time (the ticker's range scan;
heartbeats by time came with 0013) and screenshots by hash (thumbnails).

Revision ID: 0011
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_at", "events", ["at"], unique=False)
    op.create_table(
        "event_ticks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("tick", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("announced_status", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_clients_last_priority_received_at", ["last_priority_received_at"], unique=False)
    op.create_index("ix_screenshots_hash", "screenshots", ["hash"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_screenshots_hash", table_name="screenshots")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("ix_clients_last_priority_received_at")
        batch_op.drop_column("announced_status")
    op.drop_table("event_ticks")
    op.drop_index("ix_events_at", table_name="events")
    op.drop_table("events")
