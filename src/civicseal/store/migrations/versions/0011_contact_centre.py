"""contact centre: users, sessions, look-ups, alerts, call notes, change requests

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contact_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("organization", sa.String(64)),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("totp_secret_enc", sa.LargeBinary()),
        sa.Column("totp_last_step", sa.Integer(), nullable=False),
        sa.Column("api_token_id", sa.String(32), unique=True),
        sa.Column("api_token_sha256", sa.String(64)),
        sa.Column("failed_signins", sa.Integer(), nullable=False),
        sa.Column("locked_at", TZ),
        sa.Column("locked_reason", sa.String(32)),
        sa.Column("hourly_limit", sa.Integer(), nullable=False),
        sa.Column("miss_limit_percent", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "contact_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("contact_users.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("ended_reason", sa.String(16)),
    )
    op.create_index("ix_contact_sessions_user_id", "contact_sessions", ["user_id"])
    op.create_table(
        "contact_signin_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_contact_signin_failures_source_at", "contact_signin_failures", ["source", "at"])
    op.create_table(
        "contact_lookups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("contact_users.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("call_reference", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id")),
        sa.Column("reference_number", sa.String(12)),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("audit_seq", sa.Integer()),
    )
    op.create_index("ix_contact_lookups_user_at", "contact_lookups", ["user_id", "at"])
    op.create_index("ix_contact_lookups_audit_seq", "contact_lookups", ["audit_seq"])
    op.create_table(
        "contact_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("contact_users.id"), nullable=False),
        sa.Column("reference_number", sa.String(12)),
        sa.Column("cleared_at", TZ),
    )
    op.create_index("ix_contact_alerts_at", "contact_alerts", ["at"])
    op.create_table(
        "contact_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("contact_users.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("call_reference", sa.String(32), nullable=False),
        sa.Column("note_enc", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_contact_notes_entitlement_id", "contact_notes", ["entitlement_id"])
    op.create_table(
        "contact_change_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entitlement_id", sa.Integer(), sa.ForeignKey("entitlements.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("details_enc", sa.LargeBinary(), nullable=False),
        sa.Column("requested_by", sa.Integer(), sa.ForeignKey("contact_users.id"), nullable=False),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("contact_users.id")),
        sa.Column("decided_at", TZ),
    )
    op.create_index("ix_contact_change_requests_entitlement_id", "contact_change_requests", ["entitlement_id"])


def downgrade() -> None:
    for table in (
        "contact_change_requests",
        "contact_notes",
        "contact_alerts",
        "contact_lookups",
        "contact_signin_failures",
        "contact_sessions",
        "contact_users",
    ):
        op.drop_table(table)
