"""Errors of the contact centre. Messages name the rule, never a value a caller or operator typed."""

from civicseal.errors import CivicsealError


class ContactError(CivicsealError):
    """The contact centre refused an operation; the message is safe to show the operator."""


class SignInRefused(ContactError):
    """Sign-in failed. Wrong name, password or code all read alike, so they tell an attacker nothing.

    ``reason`` (credentials, source, locked, organization) lets a page say it in the reader's language.
    """

    def __init__(
        self, message: str = "sign-in failed: check the name, password and one-time code", reason: str = "credentials"
    ) -> None:
        super().__init__(message)
        self.reason = reason


class NotAllowed(ContactError):
    """The signed-in user's role or organization does not allow this."""


class AccountLocked(ContactError):
    """The user's account is locked (failed sign-ins or an extraction limit); a supervisor unlocks it."""


class OrganizationNotApproved(NotAllowed):
    """The user's organization is not (or no longer) an approved contact-centre contractor."""
