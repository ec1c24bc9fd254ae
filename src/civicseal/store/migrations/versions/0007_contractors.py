"""contractors, and recipients' display names and contractors

Revision ID: 0007
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contractors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("contract_ref", sa.String(length=100), nullable=True),
        sa.Column("purposes", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["contractors.id"], name=op.f("fk_contractors_parent_id_contractors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contractors")),
        sa.UniqueConstraint("name", name=op.f("uq_contractors_name")),
    )
    with op.batch_alter_table("contractors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contractors_parent_id"), ["parent_id"], unique=False)
    # Plain ADD COLUMN, no batch copy: recreating `recipients` would trip the foreign keys of packages and
    # unlock_log in a populated SQLite store, and SQLite accepts a nullable column with REFERENCES as it is.
    op.add_column("recipients", sa.Column("display_name", sa.String(length=200), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE recipients ADD COLUMN contractor_id INTEGER REFERENCES contractors (id)")
    else:
        op.add_column("recipients", sa.Column("contractor_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_recipients_contractor_id_contractors"), "recipients", "contractors", ["contractor_id"], ["id"]
        )
    op.create_index(op.f("ix_recipients_contractor_id"), "recipients", ["contractor_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_recipients_contractor_id"), table_name="recipients")
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_column("contractor_id")
        batch_op.drop_column("display_name")
    with op.batch_alter_table("contractors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contractors_parent_id"))
    op.drop_table("contractors")
