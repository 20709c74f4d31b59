"""read path: covering index for the window's edge hour

The window counts read the logs of at most half an hour around `since` (the rest comes from the
hourly rollup). A covering index on (timestamp, client_uuid, level) lets that part be an
index-only scan; it also serves everything the plain timestamp index served (retention, newest
logs), so that one is dropped and ingest keeps the same number of indexes to maintain.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_client_logs_timestamp_client_level", "client_logs", ["timestamp", "client_uuid", "level"], unique=False
    )
    op.drop_index("ix_client_logs_timestamp", table_name="client_logs")


def downgrade() -> None:
    op.create_index("ix_client_logs_timestamp", "client_logs", ["timestamp"], unique=False)
    op.drop_index("ix_client_logs_timestamp_client_level", table_name="client_logs")
