"""Is a reference number a canary's? One function, so the canary rework can repoint it in one place."""

from __future__ import annotations

from sqlalchemy import Connection, select

from civicseal.programme.models import ReferenceNumber


def is_canary(conn: Connection, reference_number: str) -> bool:
    """Canary numbers are reserved in ``reference_numbers`` with kind ``canary``; no real household has one."""
    kind = conn.execute(select(ReferenceNumber.kind).where(ReferenceNumber.number == reference_number)).scalar()
    return kind == "canary"
