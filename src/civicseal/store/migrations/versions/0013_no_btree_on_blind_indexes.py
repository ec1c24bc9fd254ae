"""no b-tree on the register's blind indexes: no query looks a resident or an account up by one

Revision ID: 0013
Revises: 0011
"""

from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_index("ix_residents_my_number_bidx")
    with op.batch_alter_table("bank_accounts") as batch:
        batch.drop_index("ix_bank_accounts_account_number_bidx")


def downgrade() -> None:
    with op.batch_alter_table("bank_accounts") as batch:
        batch.create_index("ix_bank_accounts_account_number_bidx", ["account_number_bidx"], unique=False)
    with op.batch_alter_table("residents") as batch:
        batch.create_index("ix_residents_my_number_bidx", ["my_number_bidx"], unique=False)
