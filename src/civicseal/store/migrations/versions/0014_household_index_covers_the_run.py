"""the household index carries what the programme run reads of each member: the run never reads a wide row

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COVERED = ["household_code", "is_head", "birth_date", "moved_in", "moved_out", "deceased"]


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_index("ix_residents_household_code")
        batch.create_index("ix_residents_household_code", COVERED, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_index("ix_residents_household_code")
        batch.create_index("ix_residents_household_code", ["household_code"], unique=False)
