"""Which organizations may run the contact centre: the one question sign-in and every look-up ask.

An operator's organization is a registered recipient. When the recipient belongs to a registered
contractor, its whole approval chain must cover the contact-centre purpose now (the contractors' one rule,
``contractors.service.recipient_authority``); a recipient with no registered contractor keeps working, as
for sealing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection, select

from civicseal.contractors.errors import AuthorityRefused
from civicseal.contractors.service import recipient_authority
from civicseal.ledger.models import Recipient

CONTACT_CENTRE_PURPOSE: Final = "contact-centre"


def approved_for_contact_centre(conn: Connection, organization: str | None, *, now: datetime) -> bool:
    """Is this organization approved for the contact-centre purpose at ``now``? The city's own staff are."""
    if organization is None:
        return True
    recipient_id = conn.execute(select(Recipient.id).where(Recipient.name == organization)).scalar_one_or_none()
    if recipient_id is None:
        return False
    try:
        recipient_authority(conn, recipient_id, CONTACT_CENTRE_PURPOSE, on=now)
    except AuthorityRefused:
        return False
    return True
