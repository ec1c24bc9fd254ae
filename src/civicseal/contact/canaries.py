"""Is a reference number a canary's? One function, so the canary rework can repoint it in one place."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists

from civicseal.programme.models import ReferenceNumber


def is_canary(reference_number: str | None) -> ColumnElement[bool]:
    """True when the number is reserved in ``reference_numbers`` with kind ``canary`` (no real household has
    one): an expression, so a look-up asks it inside its one guard query instead of a round trip of its own."""
    return exists().where(ReferenceNumber.number == reference_number, ReferenceNumber.kind == "canary")
