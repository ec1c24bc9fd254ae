"""Every field a package can carry, defined once: where it comes from and what kind of data it is.

Purposes (purposes.toml) choose among these; the incident report reads the categories to say what a lost
package exposed. SQL aliases: ``e`` entitlements, ``r`` the household's recorded head, ``a`` the account an
entitlement is paid into (`programme.confirmation.PAYABLE_ACCOUNTS_SQL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """Data categories as APPI and an incident report speak of them."""

    IDENTIFIER = "identifier"  # pseudonyms and reference numbers
    NAME = "name"
    ADDRESS = "address"
    BIRTH_DATE = "birth date"
    BENEFIT = "benefit status"  # implies every member's residence-tax exemption
    FINANCIAL = "financial (bank account)"
    TAX = "tax"
    MY_NUMBER = "My Number"
    SEX = "sex"


@dataclass(frozen=True)
class Field:
    name: str
    sql: str | None  # None: computed at sealing (the pseudonym)
    category: Category
    # An encrypted field: SQL naming the column its ciphertext is bound to and its row's key (both vary by
    # row: an account given at confirmation, else the register's).
    encrypted_under_sql: str | None = None
    encrypted_row_key_sql: str | None = None


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("pseudonym", None, Category.IDENTIFIER),
        Field("reference_number", "e.reference_number", Category.IDENTIFIER),
        Field("head_name", "r.name", Category.NAME),
        Field("head_name_kana", "r.name_kana", Category.NAME),
        Field("head_sex", "r.sex", Category.SEX),
        Field("head_birth_date", "r.birth_date", Category.BIRTH_DATE),
        Field("postcode", "r.postcode", Category.ADDRESS),
        Field("address", "r.address", Category.ADDRESS),
        Field("status", "e.status", Category.BENEFIT),
        Field("amount", "e.amount", Category.BENEFIT),
        Field("bank_code", "a.bank_code", Category.FINANCIAL),
        Field("branch_code", "a.branch_code", Category.FINANCIAL),
        Field("account_type", "a.account_type", Category.FINANCIAL),
        Field("account_number", "a.account_number_enc", Category.FINANCIAL, "a.encrypted_under", "a.encrypted_row_key"),
        Field("holder_kana", "a.holder_kana", Category.FINANCIAL),
    )
}
