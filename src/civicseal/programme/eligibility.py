"""The rules of the 2022 residence-tax-exempt household benefit, as set-based SQL.

Each rule is one named function returning a SQL fragment, so the rule a city's auditor reads is the rule
the database runs. ``stage`` aggregates the members resident on the reference date per household in one pass
over the register (their registered heads counted in the same pass), and counts the funnel in a handful of
statements — never a Python object per resident, and no per-member staging table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, text

from civicseal.programme.lifecycle import TRANSITIONS, Status
from civicseal.store.bulk import SCRATCH_SAMPLE, analyze
from civicseal.store.engine import bytewise, is_sqlite

HOUSEHOLDS = "cs_run_households"
NEW = "cs_run_new"
QUALIFYING = "cs_run_qualifying"


def resident_on_reference_date(r: str = "r") -> str:
    """Resident on D: (moved_in, else birth date) ≤ D, and moved_out and deceased each empty or after D.

    Moving out or dying on D means gone on D; moving in on D means resident. ``r``: the residents alias.
    """
    return (
        f"COALESCE({r}.moved_in, {r}.birth_date) <= :d"
        f" AND ({r}.moved_out IS NULL OR {r}.moved_out > :d)"
        f" AND ({r}.deceased IS NULL OR {r}.deceased > :d)"
    )


def member_is_taxed() -> str:
    """Taxed on the per-capita levy of fiscal year Y. A member with no row for Y was not assessed: exempt."""
    return "CASE WHEN t.taxed THEN 1 ELSE 0 END"


def member_is_dependant_of_taxed() -> str:
    """A member whose row for Y names a supporter whose own row for Y says taxed.

    Where the supporter lives, or whether they are still resident on D, does not matter.
    A member with no row is no one's dependant.
    """
    return "CASE WHEN s.taxed THEN 1 ELSE 0 END"


def household_all_exempt() -> str:
    """Every member resident on D is exempt from the per-capita levy."""
    return "h.taxed_members = 0"


def household_not_dependants_only() -> str:
    """Excluded where every member is a dependant of a taxed person."""
    return "h.dependant_members < h.members"


def household_not_paid_before() -> str:
    """Excluded where an excluded earlier programme has an entitlement, in any state, for the household
    code, or for a household whose recorded head is a member here on D.

    One set of excluded household codes for the whole run, not a search per household: per household, the
    second search walked the members of every all-exempt household (0.18 s of a city's run on SQLite)
    even when the programme excludes none.
    """
    return (
        "h.household_code NOT IN (SELECT e.household_code FROM entitlements e"
        " JOIN programme_exclusions x ON x.excluded_id = e.programme_id WHERE x.programme_id = :programme"
        " UNION SELECT m.household_code FROM entitlements e"
        " JOIN programme_exclusions x ON x.excluded_id = e.programme_id"
        " JOIN residents m ON m.resident_code = e.head_resident_code"
        f" WHERE x.programme_id = :programme AND {resident_on_reference_date('m')})"
    )


def qualifying() -> str:
    return f"{household_all_exempt()} AND {household_not_dependants_only()} AND {household_not_paid_before()}"


@dataclass(frozen=True)
class Funnel:
    households: int
    resident_on_date: int
    all_exempt: int
    not_dependants_only: int
    not_paid_before: int
    members_without_tax_row: int
    members_on_date: int  # residents resident on D, the base of the missing-tax share
    tax_rows_for_year: bool  # any tax row at all for fiscal year Y


def registered_head() -> str:
    """Over a household's members resident on D: how many are its registered head, and (when one is) which.

    Nearly every household has exactly one; :func:`head` looks the others up. Ranking every member in the
    pass instead (a sortable text key per member) cost PostgreSQL 0.1 s of a city's run.
    """
    return (
        "SUM(CASE WHEN r.is_head THEN 1 ELSE 0 END) AS heads, MIN(CASE WHEN r.is_head THEN r.resident_code END) AS head"
    )


def head(collate: str) -> str:
    """The head of a household on D: the registered head resident on D, else the oldest member, ties broken by
    resident code (two registered heads on D — one moved out after D, say — the older of them).
    ``collate``: :func:`~civicseal.store.engine.bytewise`, so both stores break ties alike."""
    oldest = (
        "SELECT m.resident_code FROM residents m"
        f" WHERE m.household_code = h.household_code AND {resident_on_reference_date('m')}"
        f" ORDER BY CASE WHEN m.is_head THEN 0 ELSE 1 END, m.birth_date, m.resident_code{collate} LIMIT 1"
    )
    return f"CASE WHEN h.heads = 1 THEN h.head ELSE ({oldest}) END"


REGISTER_HOUSEHOLDS = "SELECT COUNT(*) FROM (SELECT DISTINCT household_code FROM residents) r"


def stage(conn: Connection, *, programme_id: int, reference_date: date, fiscal_year: int) -> Funnel:
    """Fill the run's temporary tables and count the funnel; the tables live until the transaction ends."""
    params = {"d": reference_date.isoformat(), "y": fiscal_year, "programme": programme_id}
    # Counted before the run's memory is raised: with the default, PostgreSQL reads the codes in order from
    # their covering index (0.06 s for a city) instead of hashing the whole table (0.17 s).
    households = conn.execute(text(REGISTER_HOUSEHOLDS)).scalar_one()
    if not is_sqlite(conn):  # hash joins and aggregates stay in memory instead of spilling
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
    for table in (HOUSEHOLDS, QUALIFYING, NEW):
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    # One pass over the register: the households with members resident on D, their taxes and dependants
    # counted, and their registered heads among them.
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {HOUSEHOLDS} AS SELECT r.household_code AS household_code,"
            " COUNT(*) AS members,"
            f" SUM({member_is_taxed()}) AS taxed_members,"
            f" SUM({member_is_dependant_of_taxed()}) AS dependant_members,"
            " SUM(CASE WHEN t.resident_code IS NULL THEN 1 ELSE 0 END) AS without_row,"
            f" {registered_head()}"
            " FROM residents r"
            " LEFT JOIN tax_assessments t ON t.resident_code = r.resident_code AND t.fiscal_year = :y"
            " LEFT JOIN tax_assessments s ON s.resident_code = t.dependent_of AND s.fiscal_year = :y"
            f" WHERE {resident_on_reference_date()}"
            " GROUP BY r.household_code"
        ),
        params,
    )
    # No key: the households are unique by the grouping, and a b-tree filled in hash order cost PostgreSQL
    # 0.15 s; only a later run's look-up of its entitlements in it wants an index (SQLite makes one then).
    conn.execute(
        text(f"CREATE TEMPORARY TABLE {QUALIFYING} (household_code VARCHAR(50) NOT NULL, head VARCHAR(50) NOT NULL)")
    )
    # HOUSEHOLDS is only ever scanned (the earlier-programme rule is one set, not a join), so it needs no
    # statistics; QUALIFYING is joined with the entitlements, for which its size is what matters.
    conn.execute(text(f"INSERT INTO {QUALIFYING} {qualifying_households_sql(bytewise(conn))}"), params)
    analyze(conn, QUALIFYING, sample=SCRATCH_SAMPLE)
    row = conn.execute(
        text(
            "SELECT COUNT(*),"
            f" COALESCE(SUM(CASE WHEN {household_all_exempt()} THEN 1 ELSE 0 END), 0),"
            f" COALESCE(SUM(CASE WHEN {household_all_exempt()} AND {household_not_dependants_only()}"
            " THEN 1 ELSE 0 END), 0),"
            f" (SELECT COUNT(*) FROM {QUALIFYING}),"
            f" COALESCE(SUM(without_row), 0), COALESCE(SUM(members), 0),"
            " (SELECT COUNT(*) FROM (SELECT 1 FROM tax_assessments WHERE fiscal_year = :y LIMIT 1) any_row)"
            f" FROM {HOUSEHOLDS} h"
        ),
        params,
    ).one()
    *counts, any_tax_row = (int(v) for v in row)
    return Funnel(int(households), *counts, tax_rows_for_year=any_tax_row > 0)


def qualifying_households_sql(collate: str) -> str:
    """Qualifying households with their head (:func:`head`)."""
    return f"SELECT h.household_code, {head(collate)} FROM {HOUSEHOLDS} h WHERE {qualifying()}"


def members_sql() -> str:
    """After :func:`stage_new`: (entitlement id, resident code) of every member resident on D of the households
    this run entitled — the members frozen with each entitlement."""
    return (
        "SELECT e.id, r.resident_code FROM entitlements e"
        f" JOIN {NEW} q ON q.household_code = e.household_code"
        " JOIN residents r ON r.household_code = e.household_code"
        f" WHERE e.programme_id = :programme AND {resident_on_reference_date()}"
    )


def stage_new(conn: Connection, params: dict[str, object]) -> int:
    """After :func:`stage`: the qualifying households not yet entitled, numbered in household-code order."""
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {NEW} AS SELECT household_code, head,"
            f" ROW_NUMBER() OVER (ORDER BY household_code{bytewise(conn)}) AS n"
            f" FROM {QUALIFYING} q WHERE NOT EXISTS (SELECT 1 FROM entitlements e"
            " WHERE e.programme_id = :programme AND e.household_code = q.household_code)"
        ),
        params,
    )
    return int(conn.execute(text(f"SELECT COUNT(*) FROM {NEW}")).scalar_one())


def no_longer_qualifying_sql() -> str:
    """After :func:`stage`: the programme's entitlements (reference number, id, status), still withdrawable,
    whose household no longer qualifies on the current register."""
    withdrawable = ", ".join(f"'{s}'" for s in WITHDRAWABLE)
    return (
        "SELECT e.reference_number, e.id, e.status FROM entitlements e WHERE e.programme_id = :programme"
        f" AND e.status IN ({withdrawable})"
        f" AND NOT EXISTS (SELECT 1 FROM {QUALIFYING} q WHERE q.household_code = e.household_code)"
    )


WITHDRAWABLE = tuple(sorted(s for s, nxt in TRANSITIONS.items() if Status.WITHDRAWN in nxt))
