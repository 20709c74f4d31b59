"""screen analysis: the measurements and verdict per screenshot, the detected screen health per display

Screenshots get the analysis (OK, BLACK or FROZEN), when it ran, the luminance statistics and the
perceptual hash behind it, and the display's event id at that moment; clients get the detected
screen health, its reason and the screenshot it comes from. All nullable: screenshots stored before
this revision count as not analysed, and the service analyses each display's latest one at start-up.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCREENSHOT_COLUMNS = (
    ("analysis", sa.String(length=8)),
    ("analysed_at", UTCDateTime()),
    ("luminance_mean", sa.Float()),
    ("luminance_spread", sa.Float()),
    ("luminance_p99", sa.Float()),
    ("bright_share", sa.Float()),
    ("perceptual_hash", sa.Text()),
    ("event_id", sa.BigInteger()),
)
CLIENT_COLUMNS = (
    ("detected_screen_health", sa.String(length=16)),
    ("detected_screen_health_reason", sa.String(length=32)),
    ("detected_screenshot_id", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        for name, type_ in SCREENSHOT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name, type_ in CLIENT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name, _ in reversed(CLIENT_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        for name, _ in reversed(SCREENSHOT_COLUMNS):
            batch_op.drop_column(name)
