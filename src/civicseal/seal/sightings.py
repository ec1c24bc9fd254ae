"""Who a canary was given to: what an alert names when a canary's reference number turns up."""

from __future__ import annotations

from sqlalchemy import Connection, select

from civicseal.ledger.models import Package, Recipient
from civicseal.seal.models import CanaryHousehold, PackageCanary


def canary_holder(conn: Connection, reference_number: str) -> dict[str, str]:
    """The recipient the canary household belongs to and the latest package that carried it; empty when
    the store does not know the number as a canary's."""
    row = conn.execute(
        select(Recipient.name, PackageCanary.package_id)
        .select_from(CanaryHousehold)
        .join(Recipient, Recipient.id == CanaryHousehold.recipient_id)
        .outerjoin(PackageCanary, PackageCanary.canary_id == CanaryHousehold.id)
        .outerjoin(Package, Package.id == PackageCanary.package_id)
        .where(CanaryHousehold.reference_number == reference_number)
        .order_by(Package.created_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return {}
    return {"recipient": row[0]} | ({"package": row[1]} if row[1] else {})
