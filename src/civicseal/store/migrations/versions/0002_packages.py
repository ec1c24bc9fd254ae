"""packages, recipients, custody and the unlock log

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("age_recipient", sa.String(length=100), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipients")),
        sa.UniqueConstraint("name", name=op.f("uq_recipients_name")),
        sa.UniqueConstraint("token_id", name=op.f("uq_recipients_token_id")),
    )
    op.create_table(
        "packages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=True),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("key_service_url", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload_format", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("canaries", sa.Integer(), nullable=False),
        sa.Column("scrypt_log_n", sa.Integer(), nullable=True),
        sa.Column("passphrase_bits", sa.Integer(), nullable=True),
        sa.Column("identity_enc", sa.LargeBinary(), nullable=True),
        sa.Column("pseudonym_key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["programme_id"], ["programmes.id"], name=op.f("fk_packages_programme_id_programmes")),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"], name=op.f("fk_packages_recipient_id_recipients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
    )
    op.create_table(
        "unlock_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("package_id", sa.String(length=40), nullable=True),
        sa.Column("token_id", sa.String(length=32), nullable=True),
        sa.Column("recipient_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["recipients.id"], name=op.f("fk_unlock_log_recipient_id_recipients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unlock_log")),
    )
    with op.batch_alter_table("unlock_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unlock_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_unlock_log_package_id"), ["package_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_unlock_log_token_id"), ["token_id"], unique=False)

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
    op.create_table(
        "custody_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["package_id"], ["packages.id"], name=op.f("fk_custody_events_package_id_packages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_events")),
    )
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_custody_events_package_id"), ["package_id"], unique=False)

    op.create_table(
        "package_members",
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("resident_code", sa.String(length=50), nullable=False),
        sa.Column("household_code", sa.String(length=50), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["package_id"], ["packages.id"], name=op.f("fk_package_members_package_id_packages")),
        sa.PrimaryKeyConstraint("package_id", "resident_code", name=op.f("pk_package_members")),
    )
    with op.batch_alter_table("package_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_package_members_household_code"), ["household_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_package_members_pseudonym"), ["pseudonym"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("package_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_package_members_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_package_members_household_code"))

    op.drop_table("package_members")
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custody_events_package_id"))

    op.drop_table("custody_events")
    op.drop_table("canaries")
    with op.batch_alter_table("unlock_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unlock_log_token_id"))
        batch_op.drop_index(batch_op.f("ix_unlock_log_package_id"))
        batch_op.drop_index(batch_op.f("ix_unlock_log_at"))

    op.drop_table("unlock_log")
    op.drop_table("packages")
    op.drop_table("recipients")
