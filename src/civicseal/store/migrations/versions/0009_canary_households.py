"""canary households per recipient

Canaries become persistent households per recipient and programme (``canary_households``), with the
packages that carried them in ``package_canaries``; the per-package ``canaries`` table is folded into
them (a legacy canary keeps its package's recipient and the returns address every canary then carried).

Revision ID: 0009
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None

LEGACY_ADDRESS = "兵庫県尼崎市東七松町1丁目23-1 個人情報保護担当"
LEGACY_POSTCODE = "660-8501"


def upgrade() -> None:
    op.create_table(
        "canary_households",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("reference_number", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_kana", sa.String(length=100), nullable=False),
        sa.Column("sex", sa.SmallInteger(), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=False),
        sa.Column("postcode", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("twin_entitlement_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_canary_households_programme_id_programmes")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["recipients.id"], name=op.f("fk_canary_households_recipient_id_recipients")
        ),
        sa.ForeignKeyConstraint(
            ["twin_entitlement_id"],
            ["entitlements.id"],
            name=op.f("fk_canary_households_twin_entitlement_id_entitlements"),
        ),
        sa.ForeignKeyConstraint(
            ["reference_number"],
            ["reference_numbers.number"],
            name=op.f("fk_canary_households_reference_number_reference_numbers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canary_households")),
        sa.UniqueConstraint("reference_number", name=op.f("uq_canary_households_reference_number")),
    )
    with op.batch_alter_table("canary_households", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_canary_households_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_canary_households_programme_id"), ["programme_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_canary_households_recipient_id"), ["recipient_id"], unique=False)
    op.create_table(
        "package_canaries",
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["canary_id"], ["canary_households.id"], name=op.f("fk_package_canaries_canary_id_canary_households")
        ),
        sa.ForeignKeyConstraint(["package_id"], ["packages.id"], name=op.f("fk_package_canaries_package_id_packages")),
        sa.PrimaryKeyConstraint("package_id", "canary_id", name=op.f("pk_package_canaries")),
    )
    with op.batch_alter_table("package_canaries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_package_canaries_pseudonym"), ["pseudonym"], unique=False)
    op.execute(
        sa.text(
            "INSERT INTO canary_households (recipient_id, programme_id, reference_number, name, name_kana, sex,"
            " birth_date, postcode, address, status, amount, created_at)"
            " SELECT p.recipient_id, p.programme_id, c.reference_number, c.name, c.name_kana, 1, c.birth_date,"
            " :postcode, :address, 'eligible', 100000, p.created_at"
            " FROM canaries c JOIN packages p ON p.id = c.package_id WHERE p.programme_id IS NOT NULL"
        ).bindparams(postcode=LEGACY_POSTCODE, address=LEGACY_ADDRESS)
    )
    op.execute(
        "INSERT INTO package_canaries (package_id, canary_id, pseudonym)"
        " SELECT c.package_id, h.id, c.pseudonym FROM canaries c"
        " JOIN canary_households h ON h.reference_number = c.reference_number"
    )
    op.drop_table("canaries")


def downgrade() -> None:
    op.create_table(
        "canaries",
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.Column("reference_number", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_kana", sa.String(length=100), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(["package_id"], ["packages.id"], name=op.f("fk_canaries_package_id_packages")),
        sa.ForeignKeyConstraint(
            ["reference_number"],
            ["reference_numbers.number"],
            name=op.f("fk_canaries_reference_number_reference_numbers"),
        ),
        sa.PrimaryKeyConstraint("package_id", "pseudonym", name=op.f("pk_canaries")),
        sa.UniqueConstraint("reference_number", name=op.f("uq_canaries_reference_number")),
    )
    # The old table held a reference number once: each canary keeps the first package that carried it.
    op.execute(
        "INSERT INTO canaries (package_id, pseudonym, reference_number, name, name_kana, birth_date)"
        " SELECT pc.package_id, pc.pseudonym, h.reference_number, h.name, h.name_kana, h.birth_date"
        " FROM package_canaries pc JOIN canary_households h ON h.id = pc.canary_id"
        " WHERE pc.package_id = (SELECT MIN(o.package_id) FROM package_canaries o WHERE o.canary_id = pc.canary_id)"
    )
    with op.batch_alter_table("package_canaries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_package_canaries_pseudonym"))
    op.drop_table("package_canaries")
    with op.batch_alter_table("canary_households", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_canary_households_recipient_id"))
        batch_op.drop_index(batch_op.f("ix_canary_households_programme_id"))
        batch_op.drop_index(batch_op.f("ix_canary_households_name"))
    op.drop_table("canary_households")
