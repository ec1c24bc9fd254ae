"""Which organizations may run the contact centre: the one question user add, sign-in and every look-up
and action ask.

An operator's organization is a registered recipient, and the recipient must belong to a registered
contractor whose whole approval chain covers the contact-centre purpose now (the contractors' one rule,
``contractors.service.recipient_authority``). Unlike sealing, a recipient with no registered contractor is
refused: the centre answers from the city's live data, so only an organization under contract may ask.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection

from civicseal.contractors.errors import AuthorityRefused
from civicseal.contractors.service import recipient_authority

CONTACT_CENTRE_PURPOSE: Final = "contact-centre"


def approved_for_contact_centre(conn: Connection, organization: str | None, *, now: datetime) -> bool:
    """Is this organization approved for the contact-centre purpose at ``now``? The city's own staff are.

    An unknown recipient, one without a registered contractor, and one whose chain refuses the purpose
    (withdrawn, ended, never approved, narrower) all answer False. One query.
    """
    if organization is None:
        return True
    try:
        return recipient_authority(conn, organization, CONTACT_CENTRE_PURPOSE, on=now) is not None
    except AuthorityRefused:
        return False
