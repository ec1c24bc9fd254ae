"""payment batches, their items and the payees held out of them

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programmes.id"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pay_date", sa.Date(), nullable=False),
        sa.Column("payer_code", sa.String(length=10), nullable=False),
        sa.Column("payer_bank", sa.String(length=4), nullable=False),
        sa.Column("payer_branch", sa.String(length=3), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("package_id", sa.String(length=40), sa.ForeignKey("packages.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_batches_programme_id", "payment_batches", ["programme_id"])
    op.create_table(
        "payment_items",
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("payment_batches.id"), nullable=False),
        sa.Column("item_no", sa.Integer(), nullable=False),
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id"), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("branch_code", sa.String(length=3), nullable=False),
        sa.Column("account_type", sa.SmallInteger(), nullable=False),
        sa.Column("account_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("return_code", sa.String(length=10), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", "item_no"),
    )
    op.create_index("ix_payment_items_entitlement_id", "payment_items", ["entitlement_id"])
    op.create_table(
        "payment_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("payment_batches.id"), nullable=False),
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id"), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=100), nullable=True),
        sa.Column("cleared_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_holds_batch_id", "payment_holds", ["batch_id"])
    op.create_index("ix_payment_holds_entitlement_id", "payment_holds", ["entitlement_id"])


def downgrade() -> None:
    op.drop_table("payment_holds")
    op.drop_table("payment_items")
    op.drop_table("payment_batches")
