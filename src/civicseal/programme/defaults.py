"""Defaults the commands show in their help, kept apart from the store so that ``--help`` starts at once."""

from __future__ import annotations

from typing import Final

# Share of members resident on D without a tax row for Y above which a run refuses unless told to accept it:
# a handful of unassessed people is normal, a quarter means a tax file is missing or incomplete.
DEFAULT_MAX_MISSING_TAX: Final = 0.25

FORM_REASON: Final = "confirmation form returned"  # the history's reason for a confirmation from a returned form
