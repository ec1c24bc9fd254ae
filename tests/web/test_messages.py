"""A refused form is told in the page's language: the services' English messages, in Japanese."""

from __future__ import annotations

import re

import pytest

from civicseal.contact.actions import AccountForm, check_account
from civicseal.contact.errors import ContactError
from civicseal.contact.lookup import check_call_reference, parse_field
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status, check_transition
from civicseal.register import normalize
from civicseal.web.i18n import WHOLE_JA, error_text

ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


def refusal(action: object, *args: object) -> str:
    with pytest.raises(ContactError) as info:
        action(*args)  # type: ignore[operator]
    return str(info.value)


def account(**fields: str) -> AccountForm:
    typed = {"bank_code": "0001", "branch_code": "001", "account_type": "普通", "account_number": "1234567"}
    return AccountForm(**{**typed, "holder_kana": "アマガサキ タロウ", **fields})


@pytest.mark.parametrize(
    "message",
    [
        refusal(check_call_reference, "通話１"),
        refusal(parse_field, "birth date", normalize.parse_date, "昭和35年13月1日"),
        refusal(parse_field, "birth date", normalize.parse_date, "昭和70年1月1日"),
        refusal(parse_field, "name kana", normalize.normalize_kana, "yamada"),
        refusal(parse_field, "postcode", normalize.parse_postcode, "660085"),
        refusal(parse_field, "postcode", normalize.parse_postcode, "66"),
        refusal(check_account, account(bank_code="0002")),
        refusal(check_account, account(bank_code="12345")),
        refusal(check_account, account(branch_code="999")),
        refusal(check_account, account(account_type="定期")),
        refusal(check_account, account(account_number="12-34")),
        refusal(check_account, account(holder_kana="山田")),
        *WHOLE_JA,
    ],
)
def test_each_refusal_an_operator_meets_reads_in_japanese(message: str) -> None:
    shown = error_text(message, "ja")
    assert ENGLISH_WORD.search(shown) is None, shown
    assert error_text(message, "en") == message


def test_a_status_change_is_told_with_the_statuses_the_page_shows() -> None:
    with pytest.raises(ProgrammeError) as info:
        check_transition(Status.PAID, Status.CONFIRMED)
    told = "この世帯は「振込済み」のため、「確認済み（振込準備中）」にはできません。"
    assert error_text(str(info.value), "ja") == told


def test_a_message_the_tables_do_not_know_is_shown_as_the_service_worded_it() -> None:
    assert error_text("birth date: a rule written later", "ja") == "birth date: a rule written later"
    assert error_text("サインインできません。", "ja") == "サインインできません。"
