"""read path: a 6-hour rollup beside the hourly one (log_counts_six_hourly)

A 24 h window read 24 hourly rows per client. With blocks of 6 hours it reads at most 3 hourly
rows and about 4 six-hour rows per client. The ingest service writes both rollups; this fills
the new one from the hourly rows already stored.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The 6-hour block of an hourly bucket_start, per backend (SQLite stores naive UTC text 'YYYY-MM-DD HH:...').
SIX_HOUR_BLOCK = {
    "postgresql": "bucket_start - make_interval(hours => CAST(EXTRACT(HOUR FROM bucket_start AT TIME ZONE 'UTC') AS INTEGER) % 6)",
    "sqlite": "substr(bucket_start, 1, 11) || printf('%02d', CAST(substr(bucket_start, 12, 2) AS INTEGER) / 6 * 6)"
    " || ':00:00.000000'",
}


def upgrade() -> None:
    op.create_table(
        "log_counts_six_hourly",
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Integer(), server_default="0", nullable=False),
        sa.Column("warn", sa.Integer(), server_default="0", nullable=False),
        sa.Column("info", sa.Integer(), server_default="0", nullable=False),
        sa.Column("debug", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bucket_start", "client_uuid"),
    )
    op.create_index("ix_log_counts_six_hourly_client_uuid", "log_counts_six_hourly", ["client_uuid"])
    op.execute(fill_from_hourly(op.get_bind().dialect.name))


def fill_from_hourly(dialect: str) -> str:
    """The 6-hour rollup summed from the hourly one (the benchmark loader runs it too)."""
    return (
        "INSERT INTO log_counts_six_hourly (bucket_start, client_uuid, error, warn, info, debug)"
        f" SELECT {SIX_HOUR_BLOCK[dialect]}, client_uuid, SUM(error), SUM(warn), SUM(info), SUM(debug)"
        " FROM log_counts_hourly GROUP BY 1, 2"
    )


def downgrade() -> None:
    op.drop_index("ix_log_counts_six_hourly_client_uuid", table_name="log_counts_six_hourly")
    op.drop_table("log_counts_six_hourly")
