"""The import's staging area: its tables, the rules that span rows and files as set-based SQL, and the merge.

Each staged row keeps its file line, so a rule broken across rows is still reported as ``file:line``. The
rules run in one read transaction (on SQLite it takes no write lock); each finding is a row of
``staged_faults`` and marks its row rejected. Rules run in the order the files are merged (residents, then
tax and accounts, which must name residents and households that remain valid), and within a file in the
order a reader checks a row: the first failing rule is the one reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from sqlalchemy import Connection, Date, bindparam, text

from civicseal.register.columns import Kind
from civicseal.store import staging
from civicseal.store.base import Base
from civicseal.store.bulk import SCRATCH_SAMPLE, analyze
from civicseal.store.engine import is_sqlite

TABLES: dict[Kind, tuple[str, tuple[str, ...], int]] = {
    Kind.RESIDENTS: (
        "residents",
        (
            "resident_code", "household_code", "relationship", "name", "name_kana", "sex", "birth_date",
            "postcode", "address", "moved_in", "moved_out", "deceased", "row_mac", "is_head",
            "my_number_enc", "my_number_bidx",
        ),
        1,
    ),
    Kind.TAX: (
        "tax_assessments",
        ("resident_code", "fiscal_year", "taxed", "dependent_of", "row_mac", "income_enc"),
        2,
    ),
    Kind.ACCOUNTS: (
        "bank_accounts",
        (
            "household_code", "bank_code", "branch_code", "account_type", "holder_kana", "row_mac",
            "account_number_enc", "account_number_bidx",
        ),
        1,
    ),
}  # fmt: skip
STAGED = {Kind.RESIDENTS: "staged_residents", Kind.TAX: "staged_tax", Kind.ACCOUNTS: "staged_accounts"}
# Each index covers what a rule reads of its rows (the line is the rowid, in every index), so the rules
# walk narrow indexes in key order instead of sorting the wide staged rows.
INDEXES = {
    Kind.RESIDENTS: ("resident_code, rejected", "household_code, rejected, is_head, moved_out, deceased"),
    Kind.TAX: ("resident_code, fiscal_year, rejected, unsupported",),
    Kind.ACCOUNTS: ("household_code",),
}
# A row's fate in the merge, counted before it: a key the store lacks, a changed digest, or nothing to write.
NEW, CHANGED, UNCHANGED = 1, 2, 0
BULK_LOAD = 10_000  # new rows into an empty table from which indexes are built afterwards
ZENGIN = ("zengin_column", "zengin_rule")  # the account's bank and branch rule, checked while reading


def staged_columns(kind: Kind) -> tuple[str, ...]:
    """The columns a batch fills, in order: the row's line, the table's columns, then what the rules need."""
    return ("line", *TABLES[kind][1], *(ZENGIN if kind is Kind.ACCOUNTS else ()))


def create(conn: Connection) -> None:
    """Every staging table, empty: a rule may look for rows of a file that is not in this import."""
    for kind, name in STAGED.items():
        extra = ["line INTEGER PRIMARY KEY", "rejected SMALLINT NOT NULL DEFAULT 0"]
        if kind is Kind.TAX:
            extra += ["unsupported SMALLINT NOT NULL DEFAULT 0"]  # its supporter names no resident
        if kind is Kind.ACCOUNTS:
            extra += ["zengin_column VARCHAR(50)", "zengin_rule VARCHAR(200)"]
        table, columns, _ = TABLES[kind]
        staging.create_table(conn, name, extra, table, columns)
    staging.create_table(conn, "staged_faults", ["kind VARCHAR(20)", "line INTEGER", "col VARCHAR(50)", "rule TEXT"])
    staging.create_table(conn, "staged_broken", ["household_code VARCHAR(50) PRIMARY KEY", "rule TEXT"])


def index(conn: Connection) -> None:
    """Indexes are built once the rows are in (a sort), not row by row. The rules' plans need the staged
    tables' sizes, not the shape of their values: a small sample does."""
    for kind, columns in INDEXES.items():
        for column in columns:
            staging.create_index(conn, STAGED[kind], column)
    analyze(conn, *STAGED.values(), sample=SCRATCH_SAMPLE)


def _run(conn: Connection, sql: str, today: date | None = None, **params: object) -> int:
    """Run a rule's statement; returns how many rows it wrote."""
    statement = text(sql)
    if today is not None:
        statement = statement.bindparams(bindparam("today", type_=Date))
        params["today"] = today
    return conn.execute(statement, params).rowcount


def _mark(conn: Connection, kind: Kind) -> None:
    _run(
        conn,
        f"UPDATE {STAGED[kind]} SET rejected = 1 WHERE rejected = 0"
        " AND line IN (SELECT line FROM staged_faults WHERE kind = :kind)",
        kind=str(kind),
    )


def _current(t: str) -> str:
    """Neither moved out nor deceased as of today (a date after today has not happened yet)."""
    return f"({t}.moved_out IS NULL OR {t}.moved_out > :today) AND ({t}.deceased IS NULL OR {t}.deceased > :today)"


def _holds_rows(conn: Connection, table: str) -> bool:
    """Whether a register table holds any row yet: a first import's rules need not look at the stored rows,
    nor its merge keep the table's indexes up row by row."""
    return conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is not None


def _unknown(column: str, value: str, stored: bool) -> str:
    """No resident (``column`` resident_code or household_code) the register holds after the merge has
    ``value``: neither a stored one (looked for only when ``stored``) nor a valid row of this import."""
    staged = f"NOT EXISTS (SELECT 1 FROM staged_residents k WHERE k.{column} = {value} AND k.rejected = 0)"
    return f"{_unregistered(column, value)} AND {staged}" if stored else staged


ZEROS_DROPPED = (
    "a registered code with its leading zeros dropped, as a spreadsheet drops them when it opens a CSV;"
    " format the column as text and export again"
)
ZEROS_DROPPED_BEFORE = (
    "a registered code with leading zeros the register lacks: an earlier import came through a spreadsheet"
    " that dropped them; import this file the same way, or rebuild the store from an export saved as text"
)


def _zeros_dropped(conn: Connection, kind: Kind, column: str) -> None:
    """A code of digits that the store lacks while it holds the same code with other leading zeros.

    A register opened in a spreadsheet and saved again loses them (101 for 000101), and would come back as
    a second register beside the first, every resident and household twice; so would the export as it was,
    after a first import that came through a spreadsheet. A register pads its codes to one width: the
    smallest stored code (one index look-up) tells whether the store holds codes padded with zeros, and
    to what width. If it does, only codes shorter than that are looked up; if not, only codes starting with
    0. Either way a re-import of the same export costs one pass over its codes. A tax or accounts file
    re-imported alone is checked against the registered codes the same way: its rows would otherwise be
    refused as naming no resident or household, which does not say why."""
    smallest = conn.exec_driver_sql(f"SELECT MIN({column}) FROM residents").scalar()
    if not smallest:  # an empty register: nothing to compare with
        return
    digits = f"s.{column} NOT GLOB '*[^0-9]*'" if is_sqlite(conn) else f"s.{column} ~ '^[0-9]+$'"
    if smallest.startswith("0"):
        rule, suspect = ZEROS_DROPPED, f"length(s.{column}) < :width"
        stored = f"substr(:zeros, 1, :width - length(s.{column})) || s.{column}"
    else:
        rule, suspect, stored = ZEROS_DROPPED_BEFORE, f"substr(s.{column}, 1, 1) = '0'", f"ltrim(s.{column}, '0')"
    _run(
        conn,
        "INSERT INTO staged_faults (kind, line, col, rule)"
        f" SELECT '{kind}', s.line, '{column}', '{rule}' FROM {STAGED[kind]} s"
        f" WHERE s.rejected = 0 AND {suspect} AND {digits}"
        f" AND NOT EXISTS (SELECT 1 FROM residents r WHERE r.{column} = s.{column})"
        f" AND EXISTS (SELECT 1 FROM residents r WHERE r.{column} = {stored})",
        width=len(smallest),
        zeros="0" * len(smallest),
    )
    _mark(conn, kind)


MY_NUMBER_TWICE = "the same My Number as line {line}: one person registered twice, or a number mistyped"
MY_NUMBER_STORED = (
    "the same My Number as a registered resident this file does not hold: one person registered twice, or a number"
    " mistyped"
)


def check_residents(conn: Connection, today: date) -> None:
    """A code of a stored one without its leading zeros; a code twice: every row after its first; a My Number
    twice among the rows left, every row after its first (a birth after today was refused as the row was read);
    a My Number a stored resident holds whom the file does not hold.

    My Numbers are compared by their blind index. Against the stored register only the file's rows whose
    number is new to their resident are compared (a whole register imported again has none, and the store
    keeps no b-tree on the blind index to look the others up by), and only with residents the file does not
    hold: the file's own rows replace theirs, so a number moved from one row to another (a mistype corrected)
    is no conflict. That catches a monthly file of changes (異動分) that registers someone already registered
    under another code."""
    for column in ("resident_code", "household_code"):
        _zeros_dropped(conn, Kind.RESIDENTS, column)
    _run(
        conn,
        "INSERT INTO staged_faults (kind, line, col, rule)"
        " SELECT 'residents', s.line, 'resident_code', 'appears twice (first on line ' || f.first || ')'"
        " FROM (SELECT resident_code, MIN(line) AS first FROM staged_residents"
        "  GROUP BY resident_code HAVING COUNT(*) > 1) AS f"
        " JOIN staged_residents s ON s.resident_code = f.resident_code WHERE s.line > f.first",
    )
    _mark(conn, Kind.RESIDENTS)
    before, after = MY_NUMBER_TWICE.split("{line}")
    _run(
        conn,
        "INSERT INTO staged_faults (kind, line, col, rule)"
        " SELECT 'residents', line, 'my_number', :before || first || :after"
        " FROM (SELECT line, MIN(line) OVER (PARTITION BY my_number_bidx) AS first FROM staged_residents"
        "  WHERE my_number_bidx IS NOT NULL AND rejected = 0) AS m WHERE line > first",
        before=before,
        after=after,
    )
    _mark(conn, Kind.RESIDENTS)
    _my_numbers_stored(conn)
    _check_heads(conn, today)
    _mark(conn, Kind.RESIDENTS)


# A valid row whose My Number is new to its resident (a new resident's, or one changed).
_FRESH_MY_NUMBER = (
    "s.rejected = 0 AND s.my_number_bidx IS NOT NULL AND NOT EXISTS (SELECT 1 FROM residents k"
    " WHERE k.resident_code = s.resident_code AND k.my_number_bidx = s.my_number_bidx)"
)


def _my_numbers_stored(conn: Connection) -> None:
    """The file's fresh My Numbers against the stored residents it does not hold. Looked for first (one look-up
    by key per row with a number: 0.3–0.7 s for a city), since comparing reads the whole register (no b-tree on
    the blind index) and a whole register imported again has none."""
    fresh = f"FROM staged_residents s WHERE {_FRESH_MY_NUMBER}"
    if not _holds_rows(conn, "residents") or conn.exec_driver_sql(f"SELECT 1 {fresh} LIMIT 1").first() is None:
        return
    _run(
        conn,
        f"INSERT INTO staged_faults (kind, line, col, rule) SELECT 'residents', s.line, 'my_number', :rule {fresh}"
        " AND EXISTS (SELECT 1 FROM residents r WHERE r.my_number_bidx = s.my_number_bidx"
        "  AND r.resident_code <> s.resident_code"
        "  AND NOT EXISTS (SELECT 1 FROM staged_residents o WHERE o.resident_code = r.resident_code"
        "   AND o.rejected = 0))",
        rule=MY_NUMBER_STORED,
    )
    _mark(conn, Kind.RESIDENTS)


def _check_heads(conn: Connection, today: date) -> None:
    """After the merge, a household with a current member has exactly one current head.

    Households named in the file are checked with their stored members; a household only left by someone
    in the file (a move to another household) is checked too, at the first mover's line. A household's
    problem is reported at its first row; its other rows are rejected with it. Into an empty register the
    households are the file's alone, counted straight from their covering index.
    """
    stored = _holds_rows(conn, "residents")
    head = (
        "CASE WHEN {t}.is_head AND {current} THEN 1 ELSE 0 END AS head, CASE WHEN {current} THEN 1 ELSE 0 END AS here"
    )
    _run(
        conn,
        "INSERT INTO staged_broken (household_code, rule)"
        " SELECT household_code, CASE WHEN SUM(head) = 0 THEN 'household has no current head'"
        "  ELSE 'household has ' || SUM(head) || ' current heads' END"
        " FROM ("
        f"  SELECT s.household_code, {head.format(t='s', current=_current('s'))}"
        "   FROM staged_residents s WHERE s.rejected = 0"
        f"{_stored_members(head.format(t='r', current=_current('r'))) if stored else ''}"
        " ) AS merged"
        " GROUP BY household_code HAVING SUM(here) > 0 AND SUM(head) <> 1",
        today,
    )
    household_rows = (
        "SELECT s.line, b.rule, MIN(s.line) OVER (PARTITION BY s.household_code) AS first"
        " FROM staged_broken b JOIN staged_residents s ON s.household_code = b.household_code"
        " WHERE s.rejected = 0"
    )
    movers = (
        "SELECT s.line, 'leaves its former household: ' || b.rule AS rule,"
        " MIN(s.line) OVER (PARTITION BY r.household_code) AS first"
        " FROM staged_broken b JOIN residents r ON r.household_code = b.household_code"
        " JOIN staged_residents s ON s.resident_code = r.resident_code"
        " WHERE s.rejected = 0 AND s.household_code <> r.household_code"
        " AND NOT EXISTS (SELECT 1 FROM staged_residents x WHERE x.household_code = r.household_code"
        "  AND x.rejected = 0)"
    )
    for rows in (household_rows, movers) if stored else (household_rows,):
        _run(
            conn,
            "INSERT INTO staged_faults (kind, line, col, rule)"
            " SELECT 'residents', line, CASE WHEN line = first THEN 'relationship' END,"
            "  CASE WHEN line = first THEN rule ELSE 'household rejected (see line ' || first || ')' END"
            f" FROM ({rows}) AS h",
        )


def _stored_members(columns: str) -> str:
    """The stored members of the households the file names or its movers leave, less those it holds."""
    return (
        "  UNION ALL"
        f"  SELECT r.household_code, {columns}"
        "   FROM residents r"
        "   WHERE r.household_code IN (SELECT household_code FROM staged_residents WHERE rejected = 0"
        "    UNION SELECT m.household_code FROM staged_residents s JOIN residents m"
        "     ON m.resident_code = s.resident_code WHERE s.rejected = 0)"
        "   AND NOT EXISTS (SELECT 1 FROM staged_residents s WHERE s.resident_code = r.resident_code"
        "    AND s.rejected = 0)"
    )


def check_tax(conn: Connection) -> None:
    """A row's code is not a registered one stripped of its zeros; it names a known resident; then it is not a
    second row for its resident and year (the first being the first row that breaks no rule); then its
    supporter, if any, is a known resident."""
    stored = _holds_rows(conn, "residents")
    _zeros_dropped(conn, Kind.TAX, "resident_code")
    _run(
        conn,
        "INSERT INTO staged_faults (kind, line, col, rule)"
        " SELECT 'tax', s.line, 'resident_code', 'names no resident in the register' FROM staged_tax s"
        f" WHERE s.rejected = 0 AND {_unknown('resident_code', 's.resident_code', stored)}",
    )
    _mark(conn, Kind.TAX)
    unsupported = _run(
        conn,
        "UPDATE staged_tax SET unsupported = 1 WHERE rejected = 0 AND dependent_of IS NOT NULL"
        f" AND {_unknown('resident_code', 'staged_tax.dependent_of', stored)}",
    )
    _later_rows(
        conn,
        Kind.TAX,
        "resident_code, fiscal_year",
        "unsupported = 0",
        ("fiscal_year", "second row for this resident and year"),
        ("'dependent_of'", "'names no resident in the register'"),
        all_fine=unsupported == 0,
    )


def check_accounts(conn: Connection) -> None:
    """An account's code is not a registered one stripped of its zeros; it names a known household; then it is
    not a second account for it (the first being the first row that breaks no rule); then its bank and branch
    are in the Zengin data."""
    stored = _holds_rows(conn, "residents")
    _zeros_dropped(conn, Kind.ACCOUNTS, "household_code")
    _run(
        conn,
        "INSERT INTO staged_faults (kind, line, col, rule)"
        " SELECT 'accounts', s.line, 'household_code', 'names no household in the register' FROM staged_accounts s"
        f" WHERE s.rejected = 0 AND {_unknown('household_code', 's.household_code', stored)}",
    )
    _mark(conn, Kind.ACCOUNTS)
    _later_rows(
        conn,
        Kind.ACCOUNTS,
        "household_code",
        "zengin_rule IS NULL",
        ("household_code", "second account for this household"),
        ("s.zengin_column", "s.zengin_rule"),
    )


def _later_rows(
    conn: Connection,
    kind: Kind,
    key: str,
    fine: str,
    second: tuple[str, str],
    otherwise: tuple[str, str],
    *,
    all_fine: bool = False,
) -> None:
    """A valid row after the first row of its key that is ``fine`` is a second row (``second``: column and
    rule); a row not ``fine`` otherwise breaks ``otherwise`` (SQL for its column and rule). Only keys with
    more than one row are grouped; a row alone with its key is looked at only when it is not ``fine``, and
    not at all when the caller knows every row is (``all_fine``)."""
    name = STAGED[kind]
    on = " AND ".join(f"d.{c} = s.{c}" for c in key.split(", "))
    column, rule = second
    _run(
        conn,
        "INSERT INTO staged_faults (kind, line, col, rule)"
        f" SELECT '{kind}', s.line,"
        f"  CASE WHEN d.first < s.line THEN '{column}' ELSE {otherwise[0]} END,"
        f"  CASE WHEN d.first < s.line THEN '{rule} (first on line ' || d.first || ')' ELSE {otherwise[1]} END"
        f" FROM (SELECT {key}, MIN(CASE WHEN {fine} THEN line END) AS first FROM {name} WHERE rejected = 0"
        f"  GROUP BY {key} HAVING COUNT(*) > 1) AS d"
        f" JOIN {name} s ON {on}"
        f" WHERE s.rejected = 0 AND (d.first < s.line OR NOT (s.{fine}))"
        + (
            ""
            if all_fine
            else " UNION ALL"
            f" SELECT '{kind}', s.line, {otherwise[0]}, {otherwise[1]} FROM {name} s"
            f" WHERE s.rejected = 0 AND NOT (s.{fine}) AND NOT EXISTS (SELECT 1 FROM {name} d"
            f"  WHERE {on} AND d.rejected = 0 AND d.line <> s.line)"
        ),
    )
    _mark(conn, kind)


def classify(conn: Connection, kind: Kind) -> dict[int, int]:
    """How many valid rows have each fate: a key the store lacks is new, a key it has an update when the
    digest changed, else nothing to write.

    Counted, not marked: :func:`merge` finds the same rows by the same conditions, and the store cannot
    change between the two (the merge holds the register and checks its generation). Marking them rewrote
    staged rows — on PostgreSQL each with a new entry in every staged index: 9 s of re-importing a city's
    unchanged register, 4.8 s of one whose export changed its date format."""
    table, names, key_width = TABLES[kind]
    name = STAGED[kind]
    staged_rows = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {name}").scalar_one()
    rejected = conn.execute(
        text("SELECT COUNT(DISTINCT line) FROM staged_faults WHERE kind = :kind"), {"kind": str(kind)}
    ).scalar_one()
    valid = staged_rows - rejected
    if not _holds_rows(conn, table):
        return {NEW: valid}  # an empty table: every valid row is new
    keys = names[:key_width]
    new, changed = conn.exec_driver_sql(  # one join for both counts: a second pass cost a second on PostgreSQL
        f"SELECT COALESCE(SUM(CASE WHEN t.{keys[0]} IS NULL THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN t.row_mac <> s.row_mac THEN 1 ELSE 0 END), 0)"
        f" FROM {name} s LEFT JOIN {table} t ON {_same_key(keys)} WHERE s.rejected = 0"
    ).one()
    return {NEW: new, CHANGED: changed, UNCHANGED: valid - new - changed}


def _not_stored(table: str, keys: Sequence[str]) -> str:
    """The store lacks staged row ``s``'s key: the row is new."""
    return f"NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {_same_key(keys)})"


def _same_key(keys: Sequence[str]) -> str:
    """Stored row ``t`` has staged row ``s``'s key."""
    return " AND ".join(f"t.{c} = s.{c}" for c in keys)


def faults(conn: Connection) -> Iterator[tuple[Kind, int, str | None, str]]:
    """What the rules found: (kind, line, column, rule); column None for a row rejected with its household."""
    for kind, line, column, rule in conn.exec_driver_sql("SELECT kind, line, col, rule FROM staged_faults"):
        yield Kind(kind), line, column, rule


def register_generation(conn: Connection) -> int:
    """The last import that changed the register: the merge refuses when another landed since the rules ran."""
    sql = "SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE object_id = 'register' AND action = 'register.import'"
    return int(conn.exec_driver_sql(sql).scalar_one())


REGISTER_TABLES = ", ".join(table for table, _, _ in TABLES.values())


def lock_register(conn: Connection) -> None:
    """One import merges at a time: SQLite's write lock does it; PostgreSQL is told (readers go on)."""
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"LOCK TABLE {REGISTER_TABLES} IN SHARE ROW EXCLUSIVE MODE")


# ------------------------------------------------------------------ a first import, straight into the register
#
# Into an empty register every valid row is new, and on PostgreSQL staging them first writes every row twice
# (and the merge alone runs on one core while the other waits). A first import that breaks no rule is loaded
# straight into the register's tables instead; these are its rules, in the form they take with no stored row
# and every row valid. They only say whether the load may stand: when one is broken, the import is run again
# the staged way, whose rules name the lines.


def register_empty(conn: Connection) -> bool:
    return not any(_holds_rows(conn, table) for table, _, _ in TABLES.values())


def claim_empty_register(conn: Connection) -> bool:
    """Take the register's tables alone for a first import (readers wait for its commit), and say whether they
    are still empty: another import may have landed since the caller looked."""
    conn.exec_driver_sql(f"LOCK TABLE {REGISTER_TABLES} IN ACCESS EXCLUSIVE MODE")
    return register_empty(conn)


def first_import_sound(conn: Connection, kinds: Sequence[Kind], today: date) -> bool:
    """Each household with a current member has one current head; no My Number is held twice; each tax row and
    supporter names a resident, each account a household."""
    current = _current("r")
    rules = [
        "SELECT 1 FROM residents r GROUP BY household_code"
        f" HAVING SUM(CASE WHEN {current} THEN 1 ELSE 0 END) > 0"
        f" AND SUM(CASE WHEN r.is_head AND {current} THEN 1 ELSE 0 END) <> 1 LIMIT 1",
        "SELECT 1 FROM residents WHERE my_number_bidx IS NOT NULL GROUP BY my_number_bidx HAVING COUNT(*) > 1 LIMIT 1",
    ]
    if Kind.TAX in kinds:
        rules += [
            f"SELECT 1 FROM tax_assessments t WHERE {_unregistered('resident_code', 't.resident_code')} LIMIT 1",
            "SELECT 1 FROM tax_assessments t WHERE t.dependent_of IS NOT NULL"
            f" AND {_unregistered('resident_code', 't.dependent_of')} LIMIT 1",
        ]
    if Kind.ACCOUNTS in kinds:
        rules += [f"SELECT 1 FROM bank_accounts a WHERE {_unregistered('household_code', 'a.household_code')} LIMIT 1"]
    return not any(conn.execute(text(rule), {"today": today}).first() for rule in rules)


def _unregistered(column: str, value: str) -> str:
    return f"NOT EXISTS (SELECT 1 FROM residents k WHERE k.{column} = {value})"


def merge(conn: Connection, kind: Kind, *, new: int, changed: int) -> None:
    """``new`` rows in key order (a b-tree filled from its end), then ``changed`` rows; unchanged rows are
    not touched. Counted beforehand by :func:`classify`, so nothing is asked of a table that has nothing to do."""
    table, names, key_width = TABLES[kind]
    name = STAGED[kind]
    keys, rest = names[:key_width], names[key_width:]
    columns = ", ".join(names)
    if new:
        empty = not _holds_rows(conn, table)  # every valid row is new
        with _indexes_built_after(conn, table, bulk=empty and new > BULK_LOAD):
            conn.exec_driver_sql(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {name} AS s WHERE s.rejected = 0"
                f"{'' if empty else ' AND ' + _not_stored(table, keys)} ORDER BY {', '.join(keys)}"
            )
    if changed:
        conn.exec_driver_sql(
            f"UPDATE {table} SET {', '.join(f'{c} = s.{c}' for c in rest)} FROM {name} AS s"
            f" WHERE {' AND '.join(f's.{c} = {table}.{c}' for c in keys)} AND s.rejected = 0"
            f" AND s.row_mac <> {table}.row_mac"
        )


@contextmanager
def _indexes_built_after(conn: Connection, table: str, *, bulk: bool) -> Iterator[None]:
    """Loading an empty table: secondary indexes are built once afterwards (a sort) rather than row by row.

    Inside the merge's transaction, so a failure leaves them as they were.
    """
    indexes = list(Base.metadata.tables[table].indexes) if bulk else []
    for ix in indexes:
        ix.drop(conn)
    yield
    for ix in indexes:
        ix.create(conn)
