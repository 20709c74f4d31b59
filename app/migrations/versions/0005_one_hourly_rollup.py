"""one hourly rollup: the levels-as-columns table is written directly, no second table, no triggers

0003 kept a per-level rollup (`log_counts_hourly`, written at ingest) and a levels-as-columns twin
(`log_counts_hourly_wide`, written by triggers, read by the window counts). Every rollup write was
done twice. Now the application writes the wide layout itself; it takes the name
`log_counts_hourly`, and the per-level table and the triggers go.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = (("ERROR", "error"), ("WARN", "warn"), ("INFO", "info"), ("DEBUG", "debug"))


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS log_counts_hourly_wide_sync ON log_counts_hourly")
        op.execute("DROP FUNCTION IF EXISTS log_counts_hourly_wide_sync()")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS log_counts_hourly_wide_{name}")


def upgrade() -> None:
    _drop_triggers()
    op.drop_index("ix_log_counts_hourly_client_uuid", table_name="log_counts_hourly")
    op.drop_table("log_counts_hourly")
    op.drop_index("ix_log_counts_hourly_wide_client_uuid", table_name="log_counts_hourly_wide")
    op.rename_table("log_counts_hourly_wide", "log_counts_hourly")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX log_counts_hourly_wide_pkey RENAME TO log_counts_hourly_pkey")
    op.create_index("ix_log_counts_hourly_client_uuid", "log_counts_hourly", ["client_uuid"])


def downgrade() -> None:
    op.drop_index("ix_log_counts_hourly_client_uuid", table_name="log_counts_hourly")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX log_counts_hourly_pkey RENAME TO log_counts_hourly_wide_pkey")
    op.rename_table("log_counts_hourly", "log_counts_hourly_wide")
    op.create_index("ix_log_counts_hourly_wide_client_uuid", "log_counts_hourly_wide", ["client_uuid"])
    op.create_table(
        "log_counts_hourly",
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=5), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bucket_start", "client_uuid", "level"),
    )
    op.create_index("ix_log_counts_hourly_client_uuid", "log_counts_hourly", ["client_uuid"])
    for level, column in LEVELS:
        op.execute(
            "INSERT INTO log_counts_hourly (bucket_start, client_uuid, level, count) "
            f"SELECT bucket_start, client_uuid, '{level}', {column} FROM log_counts_hourly_wide WHERE {column} <> 0"
        )
    spec = importlib.util.spec_from_file_location("wide_0003", Path(__file__).with_name("0003_wide_hourly_counts.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.create_sync_triggers()
