"""relationship words as written (up to 50 characters) and the funnel of each programme run

Revision ID: 0005
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite does not enforce VARCHAR lengths; rebuilding its WITHOUT ROWID residents table is not worth it.
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("residents", "relationship", type_=sa.String(length=50), existing_nullable=False)
    op.create_table(
        "programme_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programmes.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("funnel", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_programme_runs_programme_id", "programme_runs", ["programme_id"])


def downgrade() -> None:
    op.drop_index("ix_programme_runs_programme_id", table_name="programme_runs")
    op.drop_table("programme_runs")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("residents", "relationship", type_=sa.String(length=16), existing_nullable=False)
