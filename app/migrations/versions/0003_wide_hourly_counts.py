"""read path: the hourly rollup side by side per client (log_counts_hourly_wide), kept by triggers

`log_counts_hourly` has one row per (hour, client, level); a 24 h window over N clients reads about
N x 24 x 3 of them and sums them per level. `log_counts_hourly_wide` holds the same counts with the
four levels as columns, one row per (hour, client): a third of the rows and no per-row level test.
It is kept exact by triggers on `log_counts_hourly`, so every writer of the rollup (ingest,
retention, client deletion) keeps it in step without knowing it exists. A deleted rollup row only
decrements (the client's own deletion cascades its wide rows away).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = (("ERROR", "error"), ("WARN", "warn"), ("INFO", "info"), ("DEBUG", "debug"))


def _values(row: str, delta: str) -> str:
    return ", ".join(f"CASE WHEN {row}.level = '{level}' THEN {delta} ELSE 0 END" for level, _ in LEVELS)


_COLUMNS = ", ".join(column for _, column in LEVELS)
_ADD = ", ".join(f"{column} = log_counts_hourly_wide.{column} + excluded.{column}" for _, column in LEVELS)
_SUBTRACT = ", ".join(
    f"{column} = {column} - CASE WHEN OLD.level = '{level}' THEN OLD.count ELSE 0 END" for level, column in LEVELS
)


def _upsert(row: str, delta: str) -> str:
    return (
        f"INSERT INTO log_counts_hourly_wide (bucket_start, client_uuid, {_COLUMNS}) "
        f"VALUES ({row}.bucket_start, {row}.client_uuid, {_values(row, delta)}) "
        f"ON CONFLICT (bucket_start, client_uuid) DO UPDATE SET {_ADD}"
    )


_DECREMENT = (
    f"UPDATE log_counts_hourly_wide SET {_SUBTRACT} "
    "WHERE bucket_start = OLD.bucket_start AND client_uuid = OLD.client_uuid"
)


def upgrade() -> None:
    op.create_table(
        "log_counts_hourly_wide",
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        *(sa.Column(column, sa.Integer(), nullable=False, server_default="0") for _, column in LEVELS),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bucket_start", "client_uuid"),
    )
    op.create_index("ix_log_counts_hourly_wide_client_uuid", "log_counts_hourly_wide", ["client_uuid"])
    create_sync_triggers()
    # Whatever the rollup already holds.
    sums = ", ".join(f"SUM(CASE WHEN level = '{level}' THEN count ELSE 0 END)" for level, _ in LEVELS)
    op.execute(
        f"INSERT INTO log_counts_hourly_wide (bucket_start, client_uuid, {_COLUMNS}) "
        f"SELECT bucket_start, client_uuid, {sums} FROM log_counts_hourly GROUP BY bucket_start, client_uuid"
    )


def create_sync_triggers() -> None:
    """The triggers that keep `log_counts_hourly_wide` in step (also used by 0005's downgrade)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION log_counts_hourly_wide_sync() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    {_DECREMENT};
                ELSIF TG_OP = 'UPDATE' THEN
                    IF NEW.count <> OLD.count THEN
                        {_upsert("NEW", "NEW.count - OLD.count")};
                    END IF;
                ELSE
                    {_upsert("NEW", "NEW.count")};
                END IF;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER log_counts_hourly_wide_sync AFTER INSERT OR UPDATE OR DELETE ON log_counts_hourly "
            "FOR EACH ROW EXECUTE FUNCTION log_counts_hourly_wide_sync()"
        )
    else:
        op.execute(
            "CREATE TRIGGER log_counts_hourly_wide_insert AFTER INSERT ON log_counts_hourly "
            f"BEGIN {_upsert('NEW', 'NEW.count')}; END"
        )
        op.execute(
            "CREATE TRIGGER log_counts_hourly_wide_update AFTER UPDATE ON log_counts_hourly "
            f"WHEN NEW.count <> OLD.count BEGIN {_upsert('NEW', 'NEW.count - OLD.count')}; END"
        )
        op.execute(
            f"CREATE TRIGGER log_counts_hourly_wide_delete AFTER DELETE ON log_counts_hourly BEGIN {_DECREMENT}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS log_counts_hourly_wide_sync ON log_counts_hourly")
        op.execute("DROP FUNCTION IF EXISTS log_counts_hourly_wide_sync()")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS log_counts_hourly_wide_{name}")
    op.drop_index("ix_log_counts_hourly_wide_client_uuid", table_name="log_counts_hourly_wide")
    op.drop_table("log_counts_hourly_wide")
