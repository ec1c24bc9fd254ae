"""entitlement history and accounts given at confirmation

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlement_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_entitlement_events_entitlement_id", "entitlement_events", ["entitlement_id"])
    op.create_table(
        "entitlement_accounts",
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id"), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("branch_code", sa.String(length=3), nullable=False),
        sa.Column("account_type", sa.SmallInteger(), nullable=False),
        sa.Column("account_number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("holder_kana", sa.String(length=100), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entitlement_id"),
    )


def downgrade() -> None:
    op.drop_table("entitlement_accounts")
    op.drop_index("ix_entitlement_events_entitlement_id", table_name="entitlement_events")
    op.drop_table("entitlement_events")
