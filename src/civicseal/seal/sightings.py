"""Who a canary was given to: what an alert names when a canary's reference number turns up."""

from __future__ import annotations

from sqlalchemy import Connection, select

from civicseal.keys.models import Recipient
from civicseal.seal.models import Canary, Package


def canary_holder(conn: Connection, reference_number: str) -> dict[str, str]:
    """The package that carried the canary and its recipient; empty when the store does not know."""
    row = conn.execute(
        select(Canary.package_id, Recipient.name)
        .join(Package, Package.id == Canary.package_id)
        .join(Recipient, Recipient.id == Package.recipient_id)
        .where(Canary.reference_number == reference_number)
    ).first()
    return {} if row is None else {"package": row[0], "recipient": row[1]}
