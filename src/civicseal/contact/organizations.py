"""Which organizations may run the contact centre: the one question sign-in and every look-up ask.

Today an organization is a registered recipient (``keys.recipients``), and being registered is the
approval. When contractor approval chains exist, this is the one function to repoint at them
(``contractors.service.check_authority(conn, recipient, CONTACT_CENTRE_PURPOSE, on=now)``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection, select

from civicseal.keys.models import Recipient

CONTACT_CENTRE_PURPOSE: Final = "contact-centre"


def approved_for_contact_centre(conn: Connection, organization: str | None, *, now: datetime) -> bool:
    """Is this organization approved for the contact-centre purpose at ``now``? The city's own staff are."""
    del now  # approvals do not expire yet; approval chains will be dated
    if organization is None:
        return True
    return conn.execute(select(Recipient.id).where(Recipient.name == organization)).first() is not None
