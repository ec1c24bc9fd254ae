"""Bank business days: a transfer can only be settled on a day the Zengin system runs."""

from __future__ import annotations

from datetime import date, timedelta

import jpholiday

from civicseal.payments.errors import PaymentsError

_YEAR_END_CLOSURE = ((12, 31), (1, 1), (1, 2), (1, 3))  # 年末年始: banks close 31 Dec to 3 Jan


def is_bank_business_day(day: date) -> bool:
    """Not a weekend, not a public holiday (jpholiday, substitute holidays included), not 31 Dec–3 Jan."""
    return day.weekday() < 5 and (day.month, day.day) not in _YEAR_END_CLOSURE and not jpholiday.is_holiday(day)


def next_business_day(day: date) -> date:
    """The first bank business day on or after ``day``."""
    while not is_bank_business_day(day):
        day += timedelta(days=1)
    return day


def check_pay_date(day: date) -> date:
    """Refuse a pay date the banks would not settle on, naming the next one that works."""
    if not is_bank_business_day(day):
        raise PaymentsError(
            f"pay date {day.isoformat()} is not a bank business day (weekend, public holiday or 31 Dec-3 Jan);"
            f" the next one is {next_business_day(day).isoformat()}"
        )
    return day
