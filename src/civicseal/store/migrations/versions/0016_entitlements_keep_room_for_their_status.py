"""PostgreSQL keeps half of each entitlements page free, so a status change of a whole run stays on its page

An entitlement's status changes several times in its life (eligible, notified, confirmed, paid), each time
for a whole package or batch at once. With full pages PostgreSQL wrote every changed row to another page and
added an entry for it to each of the table's five indexes: notifying a city's 74,661 households took 0.92 s.
With room on the page the change is a heap-only update, no index touched: 0.17 s. SQLite has no such
setting. Only pages written from now on keep the room.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE entitlements SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE entitlements RESET (fillfactor)")
