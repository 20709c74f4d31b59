"""read path: per-client log indexes end with the id

Logs are listed newest first with the id breaking timestamp ties (`ORDER BY timestamp DESC, id
DESC`), and the overview's newest log and newest error per client use the same order. With the id
as the last index column a backward index scan yields that order directly; without it PostgreSQL
adds an incremental sort to every per-client probe (about 5x slower per probe).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_client_logs_client_timestamp", table_name="client_logs")
    op.create_index("ix_client_logs_client_timestamp", "client_logs", ["client_uuid", "timestamp", "id"])
    op.drop_index("ix_client_logs_client_level_timestamp", table_name="client_logs")
    op.create_index("ix_client_logs_client_level_timestamp", "client_logs", ["client_uuid", "level", "timestamp", "id"])


def downgrade() -> None:
    op.drop_index("ix_client_logs_client_level_timestamp", table_name="client_logs")
    op.create_index("ix_client_logs_client_level_timestamp", "client_logs", ["client_uuid", "level", "timestamp"])
    op.drop_index("ix_client_logs_client_timestamp", table_name="client_logs")
    op.create_index("ix_client_logs_client_timestamp", "client_logs", ["client_uuid", "timestamp"])
