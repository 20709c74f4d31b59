"""read path: each client's newest log and newest ERROR log as pointers (latest_logs), kept at ingest

The overview searched every client's logs twice (one backward index probe for the newest log, one
for the newest error): at 10,000 clients most of its time. The ingest service now keeps the ids
(and timestamps, to compare with late arrivals) in `latest_logs`, and the overview joins by them.
This fills the table from the logs already stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _newest(column: str, *, errors_only: bool) -> str:
    level = " AND level = 'ERROR'" if errors_only else ""
    return (
        f"(SELECT {column} FROM client_logs WHERE client_uuid = clients.uuid{level}"
        " ORDER BY timestamp DESC, id DESC LIMIT 1)"
    )


# Each client's newest log and error, on the (client_uuid[, level], timestamp, id) indexes; both backends.
FILL = (
    "INSERT INTO latest_logs (client_uuid, log_id, log_timestamp, error_id, error_timestamp)"
    f" SELECT uuid, {_newest('id', errors_only=False)}, {_newest('timestamp', errors_only=False)},"
    f" {_newest('id', errors_only=True)}, {_newest('timestamp', errors_only=True)}"
    " FROM clients WHERE EXISTS (SELECT 1 FROM client_logs WHERE client_uuid = clients.uuid)"
)


def upgrade() -> None:
    op.create_table(
        "latest_logs",
        sa.Column("client_uuid", sa.String(length=64), nullable=False),
        sa.Column("log_id", sa.BigInteger(), nullable=True),
        sa.Column("log_timestamp", UTCDateTime(), nullable=True),
        sa.Column("error_id", sa.BigInteger(), nullable=True),
        sa.Column("error_timestamp", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_uuid"], ["clients.uuid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_uuid"),
    )
    op.execute(FILL)


def downgrade() -> None:
    op.drop_table("latest_logs")
