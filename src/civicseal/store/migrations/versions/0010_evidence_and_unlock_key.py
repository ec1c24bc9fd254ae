"""evidence and the unlock key: package identities wrapped for the key service; audit rows found by object

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_age", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_object_id"), ["object_id"], unique=False)


def downgrade() -> None:
    # Plain DROP INDEX / DROP COLUMN (SQLite ≥ 3.35 has it): a batch copy of `packages` would break the
    # foreign keys that custody, members and the unlock log hold on it.
    op.drop_index("ix_audit_log_object_id", table_name="audit_log")
    op.drop_column("packages", "identity_age")
