"""register, programmes, entitlements and audit log

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=100), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "bank_accounts",
        sa.Column("household_code", sa.String(length=50), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("branch_code", sa.String(length=3), nullable=False),
        sa.Column("account_type", sa.SmallInteger(), nullable=False),
        sa.Column("account_number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("account_number_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("holder_kana", sa.String(length=100), nullable=False),
        sa.Column("row_mac", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("household_code", name=op.f("pk_bank_accounts")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bank_accounts_account_number_bidx"), ["account_number_bidx"], unique=False)

    op.create_table(
        "programmes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("reference_date", sa.Date(), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programmes")),
        sa.UniqueConstraint("name", name=op.f("uq_programmes_name")),
    )
    op.create_table(
        "reference_numbers",
        sa.Column("number", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_reference_numbers")),
    )
    op.create_table(
        "residents",
        sa.Column("resident_code", sa.String(length=50), nullable=False),
        sa.Column("household_code", sa.String(length=50), nullable=False),
        sa.Column("relationship", sa.String(length=16), nullable=False),
        sa.Column("is_head", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_kana", sa.String(length=100), nullable=False),
        sa.Column("sex", sa.SmallInteger(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("postcode", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("moved_in", sa.Date(), nullable=True),
        sa.Column("moved_out", sa.Date(), nullable=True),
        sa.Column("deceased", sa.Date(), nullable=True),
        sa.Column("my_number_enc", sa.LargeBinary(), nullable=True),
        sa.Column("my_number_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("row_mac", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("resident_code", name=op.f("pk_residents")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_residents_household_code"), ["household_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_residents_my_number_bidx"), ["my_number_bidx"], unique=False)

    op.create_table(
        "tax_assessments",
        sa.Column("resident_code", sa.String(length=50), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("taxed", sa.Boolean(), nullable=False),
        sa.Column("income_enc", sa.LargeBinary(), nullable=True),
        sa.Column("dependent_of", sa.String(length=50), nullable=True),
        sa.Column("row_mac", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("resident_code", "fiscal_year", name=op.f("pk_tax_assessments")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "entitlements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("household_code", sa.String(length=50), nullable=False),
        sa.Column("head_resident_code", sa.String(length=50), nullable=False),
        sa.Column("reference_number", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_entitlements_programme_id_programmes")
        ),
        sa.ForeignKeyConstraint(
            ["reference_number"],
            ["reference_numbers.number"],
            name=op.f("fk_entitlements_reference_number_reference_numbers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlements")),
        sa.UniqueConstraint("programme_id", "household_code", name=op.f("uq_entitlements_programme_id")),
        sa.UniqueConstraint("reference_number", name=op.f("uq_entitlements_reference_number")),
    )
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entitlements_head_resident_code"), ["head_resident_code"], unique=False)

    op.create_table(
        "programme_exclusions",
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("excluded_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["excluded_id"], ["programmes.id"], name=op.f("fk_programme_exclusions_excluded_id_programmes")
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_programme_exclusions_programme_id_programmes")
        ),
        sa.PrimaryKeyConstraint("programme_id", "excluded_id", name=op.f("pk_programme_exclusions")),
    )
    op.create_table(
        "entitlement_members",
        sa.Column("entitlement_id", sa.Integer(), nullable=False),
        sa.Column("resident_code", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["entitlement_id"], ["entitlements.id"], name=op.f("fk_entitlement_members_entitlement_id_entitlements")
        ),
        sa.PrimaryKeyConstraint("entitlement_id", "resident_code", name=op.f("pk_entitlement_members")),
    )
    with op.batch_alter_table("entitlement_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entitlement_members_resident_code"), ["resident_code"], unique=False)

    # The chain head starts at the genesis hash; audit appends lock and advance it.
    op.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')")


def downgrade() -> None:
    with op.batch_alter_table("entitlement_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entitlement_members_resident_code"))

    op.drop_table("entitlement_members")
    op.drop_table("programme_exclusions")
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entitlements_head_resident_code"))

    op.drop_table("entitlements")
    op.drop_table("tax_assessments")
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residents_my_number_bidx"))
        batch_op.drop_index(batch_op.f("ix_residents_household_code"))

    op.drop_table("residents")
    op.drop_table("reference_numbers")
    op.drop_table("programmes")
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_accounts_account_number_bidx"))

    op.drop_table("bank_accounts")
    op.drop_table("audit_log")
    op.drop_table("audit_head")
