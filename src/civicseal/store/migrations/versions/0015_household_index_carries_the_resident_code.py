"""PostgreSQL's household index carries each member's resident code: the programme run reads the index alone

SQLite's already does (a WITHOUT ROWID table's index holds its key); PostgreSQL's pointed at the row, so
freezing a run's members fetched 120,000 rows from the table (0.29 → 0.17 s at 460,517 residents).

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COVERED = ["household_code", "is_head", "birth_date", "moved_in", "moved_out", "deceased"]


def upgrade() -> None:
    _household_index(include=["resident_code"])


def downgrade() -> None:
    _household_index(include=[])


def _household_index(include: list[str]) -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.drop_index("ix_residents_household_code", table_name="residents")
    op.create_index("ix_residents_household_code", "residents", COVERED, postgresql_include=include)
