"""What the city knows of the packages it sealed: for `package list` and `package show`."""

from __future__ import annotations

import json

from sqlalchemy import Engine, Row, func, select

from civicseal import cseal as fmt
from civicseal.clock import as_utc
from civicseal.cseal.errors import SealError
from civicseal.custody.service import current_state, timeline
from civicseal.keys.models import UnlockAttempt
from civicseal.ledger.models import Package, PackageMember, Recipient


def _summary(package: Row, recipient: str, custody: str | None) -> dict[str, object]:
    return {
        "package_id": package.id,
        "purpose": package.purpose,
        "recipient": recipient,
        "recipient_name": package.recipient_name or recipient,  # what people read
        "mode": package.mode,
        "records": package.records,
        "canaries": package.canaries,
        "created": fmt.rfc3339(as_utc(package.created_at)),
        "expires": fmt.rfc3339(as_utc(package.expires_at)),
        "custody": custody,
        "revoked": package.revoked_at is not None,
    }


def list_packages(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Package.__table__, Recipient.name.label("recipient"), Recipient.display_name.label("recipient_name"))
            .join(Recipient, Recipient.id == Package.recipient_id)
            .order_by(Package.created_at)
        ).all()
        return [_summary(p, p.recipient, current_state(conn, p.id)) for p in rows]


def show_package(engine: Engine, package_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            select(Package.__table__, Recipient.name.label("recipient"), Recipient.display_name.label("recipient_name"))
            .join(Recipient, Recipient.id == Package.recipient_id)
            .where(Package.id == package_id)
        ).first()
        if row is None:
            raise SealError(f"no package {package_id}")
        package, recipient = row, row.recipient
        members = conn.execute(
            select(func.count(), func.count(func.distinct(PackageMember.household_code))).where(
                PackageMember.package_id == package_id
            )
        ).one()
        attempts = conn.execute(
            select(UnlockAttempt.__table__)
            .where(UnlockAttempt.package_id == package_id)
            .order_by(UnlockAttempt.at, UnlockAttempt.id)
        ).all()
        unlocks = [
            {"at": fmt.rfc3339(as_utc(a.at)), "outcome": a.outcome, "source": a.source, "token_id": a.token_id}
            for a in attempts
        ]
        shown = _summary(package, recipient, current_state(conn, package_id))
    shown |= {
        "residents_affected": int(members[0]),
        "households_affected": int(members[1]),
        "fields": package.fields.split(","),
        "revoked_reason": package.revoked_reason,
        "manifest": json.loads(package.manifest),
        "custody": timeline(engine, package_id),
        "unlock_log": unlocks,
    }
    return shown
