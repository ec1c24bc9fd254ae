"""Register import: encodings, the rules of DESIGN.md ("Register and programme: rules decided" → Import),
atomicity, idempotency, rejects and field encryption, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from civicseal.cli import run
from civicseal.register import importer, staged
from civicseal.register.columns import Kind, english_header
from civicseal.register.errors import RegisterError
from civicseal.register.importer import GAIJI, ImportRefused, ImportSummary, Problem, import_register
from civicseal.register.models import tax_row_key
from civicseal.register.normalize import my_number_check_digit
from civicseal.store.errors import StoreError
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from civicseal.store.staging import staging_area
from tests.registers import resident, tax

NOW = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)  # 2024-06-01 12:00 in Tokyo

RESIDENT_HEADER = english_header(Kind.RESIDENTS)
TAX_HEADER = english_header(Kind.TAX)
ACCOUNT_HEADER = english_header(Kind.ACCOUNTS)

MY_NUMBER = "123456789018"  # check digit 8
OTHER_MY_NUMBER = "987654321093"  # check digit 3


# ---------------------------------------------------------------------------------------------- helpers


person, tax_row = resident, tax  # the shared defaults of tests/registers.py


def account_row(household: str, bank: str = "0001", branch: str = "001", number: str = "1234567", **fields) -> dict:
    return {
        "household_code": household,
        "bank_code": bank,
        "branch_code": branch,
        "account_type": "1",
        "account_number": number,
        "holder_kana": "アマガサキ タロウ",
        **fields,
    }


def csv_text(header: list[str], rows: list[dict[str, str]] | list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header] if isinstance(row, dict) else row)
    return out.getvalue()


def write(path: Path, text: str, *, encoding: str = "utf-8", bom: bool = False, crlf: bool = False) -> Path:
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def residents_csv(directory: Path, rows: list[dict[str, str]], name: str = "residents.csv", **kw) -> Path:
    return write(directory / name, csv_text(RESIDENT_HEADER, rows), **kw)


def tax_csv(directory: Path, rows: list[dict[str, str]], name: str = "tax.csv", **kw) -> Path:
    return write(directory / name, csv_text(TAX_HEADER, rows), **kw)


def accounts_csv(directory: Path, rows: list[dict[str, str]], name: str = "accounts.csv", **kw) -> Path:
    return write(directory / name, csv_text(ACCOUNT_HEADER, rows), **kw)


def raw_residents(directory: Path, lines: list[str], name: str = "residents.csv") -> Path:
    """A residents file written line by line, exactly as given (for rows the csv module would not write)."""
    return write(directory / name, ",".join(RESIDENT_HEADER) + "\n" + "".join(line + "\n" for line in lines))


def raw_line(code: str, household: str, **fields: str) -> str:
    row = person(code, household, **fields)
    return ",".join(row[column] for column in RESIDENT_HEADER)


def do_import(home: Home, cipher: FieldCipher, *paths: Path, **kw) -> ImportSummary:
    kw.setdefault("now", NOW)
    return import_register(home.engine, cipher, list(paths), **kw)


def refusal(home: Home, cipher: FieldCipher, *paths: Path, **kw) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        do_import(home, cipher, *paths, **kw)
    return info.value


def problems(exc: ImportRefused) -> list[tuple[str, int, str, str]]:
    return [(p.file, p.line, p.column, p.rule) for p in exc.problems]


def query(home: Home, sql: str) -> list[tuple]:
    with home.engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql).all()]


def count(home: Home, table: str) -> int:
    return query(home, f"SELECT COUNT(*) FROM {table}")[0][0]


def counts(home: Home) -> dict[str, int]:
    return {table: count(home, table) for table in ("residents", "tax_assessments", "bank_accounts", "audit_log")}


def register_keys(home: Home) -> list[tuple]:
    """The register tables' keys and indexes, by name and definition (a first import on PostgreSQL takes them
    off for its load and builds them again)."""
    if home.engine.dialect.name == "sqlite":
        sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN {tables} ORDER BY name"
    else:
        sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN {tables} ORDER BY indexname"
    return query(home, sql.format(tables="('residents', 'tax_assessments', 'bank_accounts')"))


def day(value: object) -> str | None:
    """A date column as ISO text: PostgreSQL returns dates, SQLite the stored text."""
    return None if value is None else str(value)


def cli(home: Home, *args: str) -> int:
    return run(["register", "import", *args, "--home", str(home.path)])


# ---------------------------------------------------------------------------------------------- encodings


JA_RESIDENT_HEADER = [
    "住民コード",
    "世帯番号",
    "続柄",
    "氏名",
    "氏名カナ",
    "性別",
    "生年月日",
    "郵便番号",
    "住所",
    "住定日",
    "転出日",
    "死亡日",
    "個人番号",
]
JA_TAX_HEADER = ["住民コード", "年度", "均等割", "所得金額", "扶養者住民コード"]
JA_ACCOUNT_HEADER = ["世帯番号", "金融機関コード", "支店コード", "預金種目", "口座番号", "口座名義カナ"]


def test_cp932_with_japanese_headers_era_dates_and_halfwidth_kana(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    residents = [
        ["A1", "H1", "世帯主", "髙橋 一郎", "ﾀｶﾊｼ ｲﾁﾛｳ", "男", "S45.3.1", "〒６６０－０８８１",
         "兵庫県尼崎市東七松町１丁目２３－１", "令和4年6月1日", "", "", "1234 5678 9018"],
        ["A2", "H1", "妻", "高橋　　花子", "ﾔﾏﾀﾞ ﾀﾛｳ", "女", "平成31年4月30日", "6600881",
         "兵庫県尼崎市東七松町1丁目23-1", "令和元年5月1日", "", "", ""],
        ["A3", "H1", "長男", "高橋 次郎", "たかはし じろう", "M", "R4.6.1", "660-0881",
         "兵庫県尼崎市東七松町1丁目23-1", "", "", "", ""],
    ]  # fmt: skip
    taxes = [["A1", "令和4年度", "課税", "1,234,567", ""], ["A2", "R4", "非課税", "-50,000", "A1"]]
    accounts = [["H1", "1", "1", "普通", "1234", "ﾀｶﾊｼ ｲﾁﾛｳ"]]  # codes as a spreadsheet leaves them
    files = [
        write(tmp_path / "residents.csv", csv_text(JA_RESIDENT_HEADER, residents), encoding="cp932"),
        write(tmp_path / "tax.csv", csv_text(JA_TAX_HEADER, taxes), encoding="cp932"),
        write(tmp_path / "accounts.csv", csv_text(JA_ACCOUNT_HEADER, accounts), encoding="cp932"),
    ]
    assert b"\xee\xe0" in files[0].read_bytes()  # 髙 in CP932 (an IBM extension, not in plain Shift_JIS)

    summary = do_import(home, cipher, *files)

    assert (summary.residents.new, summary.tax.new, summary.accounts.new) == (3, 2, 1)
    assert (summary.rows_read, summary.rejected, summary.problems) == (6, 0, [])
    stored = query(
        home,
        "SELECT resident_code, relationship, is_head, name, name_kana, sex, birth_date, postcode, address, moved_in"
        " FROM residents ORDER BY resident_code",
    )
    address = "兵庫県尼崎市東七松町1丁目23-1"
    assert [(r[0], r[1], bool(r[2]), r[3], r[4], r[5], day(r[6]), r[7], r[8], day(r[9])) for r in stored] == [
        ("A1", "世帯主", True, "髙橋 一郎", "タカハシ イチロウ", 1, "1970-03-01", "660-0881", address, "2022-06-01"),
        ("A2", "妻", False, "高橋 花子", "ヤマダ タロウ", 2, "2019-04-30", "660-0881", address, "2019-05-01"),
        ("A3", "長男", False, "高橋 次郎", "タカハシ ジロウ", 1, "2022-06-01", "660-0881", address, None),
    ]
    taxes_stored = query(
        home, "SELECT resident_code, fiscal_year, taxed, income_enc, dependent_of FROM tax_assessments ORDER BY 1"
    )
    assert [
        (r[0], r[1], bool(r[2]), cipher.decrypt(r[3], "tax_assessments.income", tax_row_key(r[0], r[1])), r[4])
        for r in taxes_stored
    ] == [
        ("A1", 2022, True, "1234567", None),
        ("A2", 2022, False, "-50000", "A1"),
    ]
    ((bank, branch, kind, number, holder, household),) = query(
        home,
        "SELECT bank_code, branch_code, account_type, account_number_enc, holder_kana, household_code"
        " FROM bank_accounts",
    )
    assert (bank, branch, kind, holder) == ("0001", "001", 1, "タカハシ イチロウ")
    assert cipher.decrypt(number, "bank_accounts.account_number", household) == "0001234"


def test_utf8_with_bom_and_crlf_imports_and_counts_physical_lines(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    residents = residents_csv(
        tmp_path,
        [person("B1", "H1", moved_in="2020/4/1"), person("B2", "H1", relationship="child", birth_date="2010年5月6日")],
        bom=True,
        crlf=True,
    )
    accounts = accounts_csv(tmp_path, [account_row("H1", bank="0005", branch="001")], bom=True, crlf=True)
    assert residents.read_bytes().startswith(b"\xef\xbb\xbfresident_code,") and b"\r\n" in residents.read_bytes()

    summary = do_import(home, cipher, residents, accounts)

    assert (summary.residents.new, summary.accounts.new) == (2, 1)
    assert [day(d) for (d,) in query(home, "SELECT birth_date FROM residents ORDER BY 1")] == [
        "1960-04-01",
        "2010-05-06",
    ]
    assert query(home, "SELECT bank_code, branch_code FROM bank_accounts") == [("0005", "001")]

    bad = residents_csv(
        tmp_path, [person("B3", "H2"), person("B4", "H2", relationship="child", sex="X")], name="bad.csv", crlf=True
    )
    assert problems(refusal(home, cipher, bad)) == [("bad.csv", 3, "sex", "not a known sex code")]


def test_utf16_is_refused_for_the_whole_file(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = residents_csv(tmp_path, [person("C1", "H1")], encoding="utf-16")
    exc = refusal(home, cipher, path)
    assert exc.problems == [Problem("residents.csv", 0, "", "is UTF-16 or binary; save it as CSV in UTF-8 or CP932")]
    assert str(exc).splitlines()[0] == "residents.csv: is UTF-16 or binary; save it as CSV in UTF-8 or CP932"
    assert count(home, "residents") == 0


def test_a_mixed_file_is_refused_at_its_first_line_that_is_not_utf8(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    header = (",".join(RESIDENT_HEADER) + "\n").encode()
    utf8 = (raw_line("D1", "H1", name="山田 太郎") + "\n").encode("utf-8")
    ascii_line = (raw_line("D2", "H2", name="Yamada", name_kana="ヤマダ") + "\n").encode("utf-8")
    cp932 = (raw_line("D3", "H3", name="髙田 花子") + "\n").encode("cp932")
    rule = "not UTF-8 while other lines are (mixed encodings)"

    (tmp_path / "a.csv").write_bytes(header + utf8 + ascii_line + cp932 + utf8.replace(b"D1", b"D4"))
    assert problems(refusal(home, cipher, tmp_path / "a.csv")) == [("a.csv", 4, "-", rule)]

    (tmp_path / "b.csv").write_bytes(header + cp932 + utf8)
    assert problems(refusal(home, cipher, tmp_path / "b.csv")) == [("b.csv", 2, "-", rule)]
    assert count(home, "residents") == 0


def test_a_file_that_decodes_in_neither_encoding_is_refused(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    line = raw_line("E1", "H1", name="XX").encode().replace(b"XX", b"\x81\x7f")  # bad trail byte in CP932 too
    (tmp_path / "r.csv").write_bytes((",".join(RESIDENT_HEADER) + "\n").encode() + line + b"\n")
    exc = refusal(home, cipher, tmp_path / "r.csv")
    assert exc.problems == [Problem("r.csv", 0, "", "is neither UTF-8 nor CP932")]


# ---------------------------------------------------------------------------------------------- atomicity, messages


def test_one_bad_row_refuses_the_whole_import_and_writes_nothing(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    before = counts(home)
    residents = residents_csv(
        tmp_path,
        [
            person("F1", "H1", my_number=MY_NUMBER),
            person("F2", "H1", relationship="spouse"),
            person("F3", "H2", sex="unknown"),
            person("F4", "H3"),
        ],
    )
    taxes = tax_csv(tmp_path, [tax_row("F1", income="1000"), tax_row("F2")])
    accounts = accounts_csv(tmp_path, [account_row("H1")])

    exc = refusal(home, cipher, residents, taxes, accounts)

    assert problems(exc) == [("residents.csv", 4, "sex", "not a known sex code")]
    assert str(exc).endswith("import refused: 1 problem; nothing was written")
    assert before["residents"] == before["tax_assessments"] == before["bank_accounts"] == 0
    assert counts(home) == before  # no row and no audit entry beyond `init`


def staging_left(home: Home) -> list[Path]:
    """What a staging area left in the home (on SQLite it is a scratch file beside the database)."""
    return list(home.path.glob("*.part"))


@pytest.mark.parametrize("workers", [False, True], ids=["here", "workers"])
def test_a_refusal_found_after_most_rows_were_staged_leaves_nothing(
    home: Home, cipher: FieldCipher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: bool
) -> None:
    monkeypatch.setattr(importer, "BATCH_BYTES", 1024)  # a few rows a batch: most batches are staged first
    if workers:
        monkeypatch.setattr(importer, "PARALLEL_BYTES", 0)
    before, keys = counts(home), register_keys(home)
    people = [person(f"N{i}", f"H{i}") for i in range(200)]
    residents = residents_csv(tmp_path, [*people, person("N7", "H7", relationship="child")])
    taxes = tax_csv(tmp_path, [*(tax_row(f"N{i}") for i in range(200)), tax_row("N999")])

    # On PostgreSQL, a first import: every row is loaded into the register's tables, then found to break rules
    assert problems(refusal(home, cipher, residents, taxes)) == [
        ("residents.csv", 202, "resident_code", "appears twice (first on line 9)"),
        ("tax.csv", 202, "resident_code", "names no resident in the register"),
    ]
    assert counts(home) == before
    assert register_keys(home) == keys
    assert staging_left(home) == []

    summary = do_import(home, cipher, residents, taxes, rejects=tmp_path / "rejects.csv")
    assert (summary.residents.new, summary.tax.new, summary.rejected) == (200, 200, 2)


def test_rows_staged_by_workers_are_stored_as_parsed_here(
    home: Home, cipher: FieldCipher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers send their rows on as COPY text (PostgreSQL) or write them to the staging file (SQLite):
    backslashes, empty optional values, flags, numbers and ciphertexts arrive as the parent would store them."""
    monkeypatch.setattr(importer, "BATCH_BYTES", 512)
    monkeypatch.setattr(importer, "PARALLEL_BYTES", 0)
    names = ["A\\B", "\\N", "C\\tD"]  # a backslash, and what COPY would read as NULL or a tab if unescaped
    numbers = [MY_NUMBER, "", ""]
    people = [person(f"W{i}", f"H{i}", name=name, my_number=numbers[i]) for i, name in enumerate(names)]
    taxes = [tax_row("W0", income="1200000"), tax_row("W1", levy="taxed", income="", dependent_of="W0")]
    files = [residents_csv(tmp_path, people), tax_csv(tmp_path, taxes), accounts_csv(tmp_path, [account_row("H0")])]

    summary = do_import(home, cipher, *files)

    assert (summary.residents.new, summary.tax.new, summary.accounts.new) == (3, 2, 1)
    residents = query(home, "SELECT resident_code, name, my_number_enc, moved_out FROM residents ORDER BY 1")
    assert [(code, name, moved_out) for code, name, _, moved_out in residents] == [
        ("W0", "A\\B", None),
        ("W1", "\\N", None),
        ("W2", "C\\tD", None),
    ]
    assert cipher.decrypt(bytes(residents[0][2]), "residents.my_number", "W0") == MY_NUMBER
    assert [row[2] for row in residents[1:]] == [None, None]
    stored = query(home, "SELECT resident_code, taxed, income_enc, dependent_of FROM tax_assessments ORDER BY 1")
    assert [(code, bool(taxed), dependent) for code, taxed, _, dependent in stored] == [
        ("W0", False, None),
        ("W1", True, "W0"),
    ]
    assert cipher.decrypt(bytes(stored[0][2]), "tax_assessments.income", tax_row_key("W0", 2022)) == "1200000"
    assert stored[1][2] is None
    account = query(home, "SELECT bank_code, account_number_enc FROM bank_accounts")
    assert account[0][0] == "0001"
    assert cipher.decrypt(bytes(account[0][1]), "bank_accounts.account_number", "H0") == "1234567"


def test_the_staged_register_keeps_names_and_addresses_out_of_the_planners_sample(home: Home) -> None:
    """The rules' plans come from an ANALYZE of the staged rows. On PostgreSQL the staged copy samples no name or
    address, as the store does not (``LIKE`` does not copy that): under a Japanese collation sorting them was
    most of that ANALYZE's time."""
    with staging_area(home.engine) as conn, conn.begin():
        staged.create(conn)
        columns = [row[0] for row in conn.exec_driver_sql("SELECT * FROM staged_residents").cursor.description]
        assert {"name", "address", "name_kana"} <= set(columns)
        if conn.dialect.name == "postgresql":
            apart = conn.exec_driver_sql(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'staged_residents'::regclass AND attnum > 0"
                " AND attstattarget = 0"
            )
            assert sorted(apart.scalars()) == ["address", "name"]


GAIJI_CHAR = b"\xf0\x40".decode("cp932")  # a city's own character: CP932's first user-defined code


@pytest.mark.parametrize("workers", [False, True], ids=["here", "workers"])
def test_a_gaiji_is_imported_as_it_is_and_its_row_named_never_its_value(
    home: Home, cipher: FieldCipher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: bool
) -> None:
    if workers:
        monkeypatch.setattr(importer, "BATCH_BYTES", 512)
        monkeypatch.setattr(importer, "PARALLEL_BYTES", 0)
    people = [
        person("G1", "H1", name=f"髙橋 {GAIJI_CHAR}子"),
        person("G2", "H2"),
        person("G3", "H3", address=f"兵庫県尼崎市{GAIJI_CHAR}町1-2"),
        person("G4", "H4", name=f"{GAIJI_CHAR}田 太郎", birth_date="2099-01-01"),  # rejected: no note
        person("G5", "H1", relationship=f"{GAIJI_CHAR}の子"),  # a 続柄 word a city wrote with its own character
    ]
    path = residents_csv(tmp_path, people, encoding="cp932", crlf=True)

    summary = do_import(home, cipher, path, rejects=tmp_path / "rejects.csv")

    assert [str(note) for note in summary.notes] == [
        f"residents.csv:2: name: {GAIJI}",
        f"residents.csv:4: address: {GAIJI}",
        f"residents.csv:6: relationship: {GAIJI}",
    ]
    assert (summary.rejected, summary.as_dict()["rows_with_gaiji"]) == (1, 3)
    assert query(home, "SELECT name FROM residents WHERE resident_code = 'G1'") == [(f"髙橋 {GAIJI_CHAR}子",)]


def test_cli_names_the_rows_with_a_gaiji_and_what_to_do(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = residents_csv(tmp_path, [person("G1", "H1", name=f"髙橋 {GAIJI_CHAR}子")], encoding="cp932")
    assert run(["register", "import", str(path), "--home", str(home.path)]) == 0
    out = capsys.readouterr().out
    assert f"residents.csv:2: name: {GAIJI}" in out and "mapped with the city's 外字 table" in out
    assert GAIJI_CHAR not in out


@pytest.mark.parametrize("first", [True, False], ids=["first import", "into a register"])
def test_an_import_stopped_once_every_row_is_written_leaves_nothing(
    home: Home, cipher: FieldCipher, tmp_path: Path, first: bool
) -> None:
    """Stopped after the last table is written and before the commit: on PostgreSQL a first import loads the
    register's tables themselves, any other merges into them; either way nothing remains."""
    if not first:
        do_import(home, cipher, residents_csv(tmp_path, [person("K0", "H0")], name="earlier.csv"))
    before, keys = counts(home), register_keys(home)
    files = [
        residents_csv(tmp_path, [person("K1", "H1"), person("K2", "H2")]),
        tax_csv(tmp_path, [tax_row("K1"), tax_row("K2")]),
        accounts_csv(tmp_path, [account_row("H1")]),
    ]

    def stop_before_the_commit(stage: str, done: int, total: int) -> None:
        if stage == "writing" and done == total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        do_import(home, cipher, *files, progress=stop_before_the_commit)
    assert counts(home) == before
    assert register_keys(home) == keys
    assert staging_left(home) == []
    assert do_import(home, cipher, *files).residents.new == 2


def test_an_import_that_lands_while_another_is_checked_sends_that_one_back(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """The rules ran against the register as it was; another import changed it before the merge began. (Into
    a register that holds rows: a first import on PostgreSQL holds the register alone from its start.)"""
    do_import(home, cipher, residents_csv(tmp_path, [person("J0", "H0")], name="earlier.csv"))
    first = residents_csv(tmp_path, [person("J1", "H1")], name="first.csv")
    other = residents_csv(tmp_path, [person("J2", "H1")], name="other.csv")  # H1 would have two heads

    def land_the_other(stage: str, done: int, total: int) -> None:
        if stage == "writing" and done == 0:
            do_import(home, cipher, other)

    with pytest.raises(RegisterError, match="another register import landed while this one was checked"):
        do_import(home, cipher, first, progress=land_the_other)
    assert query(home, "SELECT resident_code FROM residents ORDER BY 1") == [("J0",), ("J2",)]
    assert problems(refusal(home, cipher, first)) == [("first.csv", 2, "relationship", "household has 2 current heads")]


def stages_of(home: Home, cipher: FieldCipher, *paths: Path, **kw) -> list[str]:
    """The progress stages an import reports, in order, each once."""
    seen: list[str] = []

    def note(stage: str, done: int, total: int) -> None:
        if stage not in seen:
            seen.append(stage)

    with contextlib.suppress(ImportRefused):
        do_import(home, cipher, *paths, progress=note, **kw)
    return seen


def test_a_first_import_on_postgresql_is_read_once_unless_a_row_breaks_a_rule(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """Into an empty PostgreSQL register a first import is loaded straight into its tables; one whose rows
    break a rule that spans rows is undone and read a second time the staged way, whose rules name the lines
    (the bars say so). An import with rejects expects such rows and is staged at once. SQLite always stages,
    and reads once."""
    postgresql = home.engine.dialect.name == "postgresql"
    headless = residents_csv(tmp_path, [person("N1", "H1", relationship="child")], name="headless.csv")
    with_rejects = {"rejects": tmp_path / "rejects.csv"}
    loaded = ["reading residents", "checking"] if postgresql else []  # undone when its checks fail
    assert stages_of(home, cipher, headless) == [*loaded, "reading residents" + " again" * postgresql]
    assert stages_of(home, cipher, headless, **with_rejects) == ["reading residents", "writing"]
    assert count(home, "residents") == 0  # the one row was rejected with its household
    clean = [
        residents_csv(tmp_path, [person("N1", "H1"), person("N2", "H1", relationship="child")]),
        tax_csv(tmp_path, [tax_row("N1"), tax_row("N2")]),
    ]
    checked = ["checking"] if postgresql else []  # the staged way checks before its "writing" bar
    assert stages_of(home, cipher, *clean) == ["reading residents", "reading tax", *checked, "writing"]
    assert query(home, "SELECT resident_code, is_head FROM residents ORDER BY 1") == [("N1", True), ("N2", False)]
    assert do_import(home, cipher, *clean).residents.unchanged == 2  # the same rows as the staged way stores


def test_a_second_import_waits_for_a_first_that_holds_the_register(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """Two imports into an empty register at once: on PostgreSQL the first holds the tables alone until it
    commits, so the second is checked against its rows, not against an empty register."""
    if home.engine.dialect.name != "postgresql":
        pytest.skip("on SQLite the second is sent back at its merge (the test above)")
    first = residents_csv(tmp_path, [person("W1", "H1")], name="first.csv")
    other = residents_csv(tmp_path, [person("W2", "H1")], name="other.csv")  # H1 would have two heads
    waiting: list[BaseException | ImportSummary] = []

    def start_the_other(stage: str, done: int, total: int) -> None:
        if stage == "writing" and not threads:
            thread = threading.Thread(target=lambda: waiting.append(_outcome(home, cipher, other)))
            thread.start()
            thread.join(timeout=1)
            assert thread.is_alive()  # it waits for this import's commit
            threads.append(thread)

    threads: list[threading.Thread] = []
    assert do_import(home, cipher, first, progress=start_the_other).residents.new == 1
    threads[0].join(timeout=60)
    refused = waiting[0]
    assert isinstance(refused, ImportRefused)
    assert problems(refused) == [("other.csv", 2, "relationship", "household has 2 current heads")]
    assert query(home, "SELECT resident_code FROM residents") == [("W1",)]


def _outcome(home: Home, cipher: FieldCipher, path: Path) -> BaseException | ImportSummary:
    try:
        return do_import(home, cipher, path)
    except BaseException as exc:  # the test reads it
        return exc


def test_errors_name_file_line_column_and_rule_never_the_value(
    home: Home, cipher: FieldCipher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, birth = "蛭子谷 刹那", "1987-02-30"
    path = residents_csv(
        tmp_path, [person("G1", "H1"), person("G2", "H1", relationship="child", name=name, birth_date=birth)]
    )
    exc = refusal(home, cipher, path)
    assert problems(exc) == [("residents.csv", 3, "birth_date", "not a valid date")]
    message = str(exc)
    assert message.splitlines()[0] == "residents.csv:3: birth_date: not a valid date"
    for value in (name, "蛭子谷", birth, "G2"):
        assert value not in message

    capsys.readouterr()
    assert cli(home, str(path), "--json") == 1
    out, err = capsys.readouterr()
    refused = json.loads(out)  # under --json, the refusal is one object on stdout
    assert set(refused) == {"error", "rule"}
    assert refused["error"].count("residents.csv:") == 1
    assert refused["error"].startswith("residents.csv:3: birth_date: not a valid date")
    assert err == ""
    assert "Traceback" not in err
    for value in (name, "蛭子谷", birth):
        assert value not in err
    assert count(home, "residents") == 0


def test_the_first_100_problems_are_printed_then_how_many_more(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    rows = [person("I0", "H0")] + [person(f"I{i}", f"HX{i}", sex="X") for i in range(1, 151)]
    exc = refusal(home, cipher, residents_csv(tmp_path, rows))

    assert len(exc.problems) == 150
    assert [p.line for p in exc.problems] == list(range(3, 153))
    lines = str(exc).splitlines()
    assert lines[:100] == [f"residents.csv:{line}: sex: not a known sex code" for line in range(3, 103)]
    assert lines[100] == "… and 50 more problems"
    assert lines[101] == "import refused: 150 problems; nothing was written"
    assert len(lines) == 102


# ---------------------------------------------------------------------------------------------- row shape


def test_rows_with_more_or_fewer_fields_than_the_header(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    good = raw_line("J1", "H1")
    path = raw_residents(tmp_path, [good, good.replace("J1", "J2").rsplit(",", 1)[0], good.replace("J1", "J3") + ",x"])
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 3, "-", "has 12 fields where the header has 13"),
        ("residents.csv", 4, "-", "has 14 fields where the header has 13"),
    ]


def test_a_line_break_inside_a_quoted_field_is_a_control_character(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    broken = raw_line("K2", "H2", name='"尼崎\n太郎"')  # one record over physical lines 3 and 4
    path = raw_residents(tmp_path, [raw_line("K1", "H1"), broken, raw_line("K3", "H3", sex="X")])
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 3, "name", "contains a control character"),
        ("residents.csv", 5, "sex", "not a known sex code"),  # line numbers stay physical after it
    ]

    crlf = write(tmp_path / "crlf.csv", path.read_text(encoding="utf-8"), crlf=True)
    assert problems(refusal(home, cipher, crlf)) == [
        ("crlf.csv", 3, "name", "contains a control character"),
        ("crlf.csv", 5, "sex", "not a known sex code"),
    ]
    assert count(home, "residents") == 0


def test_a_lone_cr_is_a_control_character(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = raw_residents(
        tmp_path,
        [
            raw_line("L1", "H1", name="尼崎\t太郎"),  # a tab is let through as a space
            raw_line("L2", "H2", name="尼崎\r太郎"),
            raw_line("L3", "H3", name='"尼崎\r太郎"'),
            raw_line("L4", "H4", address="兵庫県\x07尼崎市"),
            raw_line("L5", "H5", sex="X"),
        ],
    )
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 3, "-", "contains a control character or a broken quote"),
        ("residents.csv", 4, "name", "contains a control character"),
        ("residents.csv", 5, "address", "contains a control character"),
        ("residents.csv", 6, "sex", "not a known sex code"),
    ]


def test_fields_longer_than_their_limit_after_normalization(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = residents_csv(
        tmp_path,
        [
            person("M1", "H1", name="a" * 101),
            person("M2", "H2", name="a" * 50 + "\u3000\u3000 " + "a" * 49),  # 100 once the spaces fold
            person("M3", "H3", address="兵" * 201),
            person("M4", "H4", address="兵" * 200),
            person("M" + "5" * 50, "H5"),
            person("M6", "H6", name_kana="ア" * 101),
        ],
    )
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 2, "name", "longer than 100 characters"),
        ("residents.csv", 4, "address", "longer than 200 characters"),
        ("residents.csv", 6, "resident_code", "longer than 50 characters"),
        ("residents.csv", 7, "name_kana", "longer than 100 characters"),
    ]


# ---------------------------------------------------------------------------------------------- headers


def test_header_errors_are_reported_on_line_1(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    unknown = write(tmp_path / "unknown.csv", csv_text([*RESIDENT_HEADER, "favourite_colour"], []))
    exc = refusal(home, cipher, unknown)
    assert problems(exc) == [("unknown.csv", 1, "column 14 (N)", "unknown column for a residents file")]
    assert "favourite_colour" not in str(exc)

    missing = write(tmp_path / "missing.csv", csv_text([c for c in RESIDENT_HEADER if c != "sex"], []))
    assert problems(refusal(home, cipher, missing)) == [
        ("missing.csv", 1, "sex", "required column is missing (headed 性別 or sex)")
    ]
    # recognized by the columns only a residents file has, so each missing one is named, the name column too
    no_name = [c for c in RESIDENT_HEADER if c not in ("name", "resident_code")]
    assert problems(refusal(home, cipher, write(tmp_path / "no_name.csv", csv_text(no_name, [])))) == [
        ("no_name.csv", 1, "name", "required column is missing (headed 氏名, 漢字氏名, 氏名(漢字) or name)"),
        (
            "no_name.csv",
            1,
            "resident_code",
            "required column is missing (headed 住民コード, 宛名番号, 宛名コード, 住民番号, 個人コード"
            " or resident_code)",
        ),
    ]

    twice = ["住民となった日" if c == "moved_in" else c for c in RESIDENT_HEADER] + ["住定日"]
    assert problems(refusal(home, cipher, write(tmp_path / "twice.csv", csv_text(twice, [])))) == [
        ("twice.csv", 1, "moved_in", "column appears twice")
    ]

    nothing = write(tmp_path / "nothing.csv", "a,b,c\n1,2,3\n")
    assert problems(refusal(home, cipher, nothing)) == [
        ("nothing.csv", 0, "", "header does not tell a residents, tax or accounts file; check the first line")
    ]

    # optional columns may be left out; 住民となった日 is moved_in
    optional = [
        "住民となった日" if c == "moved_in" else c for c in RESIDENT_HEADER if c not in ("my_number", "deceased")
    ]
    ok = write(tmp_path / "ok.csv", csv_text(optional, [person("N1", "H1", 住民となった日="2001-02-03")]))
    assert do_import(home, cipher, ok).residents.new == 1
    assert [day(d) for (d,) in query(home, "SELECT moved_in FROM residents")] == ["2001-02-03"]


def test_a_header_without_rows_imports_nothing_and_says_so(
    home: Home, cipher: FieldCipher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = counts(home)
    residents = residents_csv(tmp_path, [])
    taxes = write(tmp_path / "tax.csv", csv_text(JA_TAX_HEADER, []), encoding="cp932")
    summary = do_import(home, cipher, residents, taxes)
    assert summary.rows_read == 0
    assert summary.as_dict() == dict.fromkeys(summary.as_dict(), 0)
    assert counts(home) == before

    capsys.readouterr()
    assert cli(home, str(residents)) == 0
    out, _ = capsys.readouterr()
    assert "nothing imported" in out

    assert cli(home, str(residents), "--json") == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == summary.as_dict()
    assert counts(home) == before


# ---------------------------------------------------------------------------------------------- keys and references


def test_a_resident_code_twice(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = residents_csv(tmp_path, [person("P1", "H1"), person("P2", "H2"), person("P1", "H3")])
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 4, "resident_code", "appears twice (first on line 2)")
    ]


def test_a_my_number_twice_is_refused_at_its_later_rows(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    """One person registered under two codes (a move processed as a new resident), or a number typed twice:
    the rows after the first are refused, naming the first's line and never the number. A row already refused
    for its code is not told again; with --rejects the rest imports."""
    rows = [
        person("N1", "H1", my_number=MY_NUMBER),
        person("N2", "H2", my_number=OTHER_MY_NUMBER),
        person("N3", "H3", my_number=MY_NUMBER),
        person("N1", "H4", my_number=MY_NUMBER),  # the code twice: that rule speaks for this row
        person("N4", "H5"),
        person("N5", "H6", my_number=MY_NUMBER),
    ]
    path = residents_csv(tmp_path, rows)
    rule = "the same My Number as line 2: one person registered twice, or a number mistyped"
    refused = refusal(home, cipher, path)
    assert problems(refused) == [
        ("residents.csv", 4, "my_number", rule),
        ("residents.csv", 5, "resident_code", "appears twice (first on line 2)"),
        ("residents.csv", 7, "my_number", rule),
    ]
    assert MY_NUMBER not in str(refused)
    summary = do_import(home, cipher, path, rejects=tmp_path / "rejects.csv")
    assert (summary.residents.new, summary.rejected) == (3, 3)


def test_a_my_number_a_stored_resident_holds_is_refused_unless_the_file_holds_that_resident(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """A monthly file of changes that registers someone already registered under another code is refused at
    that row, naming neither the number nor the other resident. A number moved from one resident to another
    (a mistype corrected) is no conflict when the file holds both, nor is the whole register imported again."""
    registered = [person("S1", "H1", my_number=MY_NUMBER), person("S2", "H2")]
    do_import(home, cipher, residents_csv(tmp_path, registered))
    changes = residents_csv(tmp_path, [person("S3", "H3", my_number=MY_NUMBER)], name="changes.csv")
    refused = refusal(home, cipher, changes)
    assert problems(refused) == [("changes.csv", 2, "my_number", staged.MY_NUMBER_STORED)]
    assert MY_NUMBER not in str(refused) and "S1" not in str(refused)
    assert count(home, "residents") == 2

    summary = do_import(home, cipher, residents_csv(tmp_path, registered))
    assert (summary.residents.new, summary.residents.updated) == (0, 0)
    moved = [person("S1", "H1", my_number=OTHER_MY_NUMBER), person("S2", "H2", my_number=MY_NUMBER)]
    summary = do_import(home, cipher, residents_csv(tmp_path, moved, name="corrected.csv"))
    assert summary.residents.updated == 2


def test_statistics_are_taken_again_only_for_tables_an_import_wrote(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """PostgreSQL plans from statistics an import takes (ANALYZE) of what it wrote; a register imported again
    unchanged keeps them, and the time ANALYZE would take."""
    if home.engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans without statistics")

    def analyzed() -> dict[str, int]:
        sql = "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname IN ('residents', 'tax_assessments')"
        return dict(query(home, sql))  # type: ignore[arg-type]

    residents = residents_csv(tmp_path, [person("A1", "H1"), person("A2", "H2")])
    taxes = tax_csv(tmp_path, [tax_row("A1"), tax_row("A2")])
    do_import(home, cipher, residents, taxes)
    first = analyzed()
    do_import(home, cipher, residents, taxes)
    assert analyzed() == first
    do_import(home, cipher, residents_csv(tmp_path, [person("A1", "H1"), person("A3", "H3")], name="more.csv"))
    assert analyzed() == {"residents": first["residents"] + 1, "tax_assessments": first["tax_assessments"]}


def test_a_my_number_twice_stops_a_first_import_loaded_straight_into_the_register(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """With every code unique, only the My Number rule is broken: a first import on PostgreSQL, loaded
    straight into the register, is undone for it too, and the rows named."""
    path = residents_csv(tmp_path, [person("M1", "H1", my_number=MY_NUMBER), person("M2", "H2", my_number=MY_NUMBER)])
    rule = "the same My Number as line 2: one person registered twice, or a number mistyped"
    assert problems(refusal(home, cipher, path)) == [("residents.csv", 3, "my_number", rule)]
    assert count(home, "residents") == 0


def test_a_birth_after_today_is_refused_before_a_code_is_counted_twice(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """A birth after today is refused as its row is read, so a code's first row is its first row born by
    today, wherever the later birth stands."""
    path = residents_csv(
        tmp_path,
        [
            person("P1", "H1", birth_date="2024-06-02"),
            person("P1", "H2"),
            person("P2", "H3"),
            person("P2", "H4", birth_date="2030-01-01"),
            person("P2", "H5"),
        ],
    )
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 2, "birth_date", "after today"),
        ("residents.csv", 5, "birth_date", "after today"),
        ("residents.csv", 6, "resident_code", "appears twice (first on line 4)"),
    ]


def test_plain_batches_are_cut_as_csv_reader_cuts_them() -> None:
    """The split that skips csv.reader gives its columns, and leaves every batch it could read otherwise to it
    (a row of empty cells too: csv.reader's way leaves it out)."""
    lines = ["a,b,c", "d,,f", ",e,"]
    assert importer._plain_columns(lines, 3) == [list(c) for c in zip(*csv.reader(lines), strict=True)]
    for other in (['a,"b",c'], ["a,b\r,c"], ["a,\x00,c"], ["a,b,c", ""], ["a,b,c", ",,"], ["a,b"], ["a,b,c,d"], []):
        assert importer._plain_columns(other, 3) is None, other


def test_tax_rows_must_name_residents_once_a_year(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    residents = residents_csv(
        tmp_path,
        [
            person("Q1", "H1"),
            person("Q2", "H1", relationship="child"),
            person("Q3", "H2"),
            person("Q4", "H3", moved_out="2023-01-01"),
        ],
    )
    taxes = tax_csv(
        tmp_path,
        [
            tax_row("Q1", "2022", levy="taxed"),
            tax_row("Q1", "R4"),  # the same fiscal year, spelled differently
            tax_row("Q1", "2021"),
            tax_row("Q9", "2022"),
            tax_row("Q2", "2022", dependent_of="Q8"),
            tax_row("Q3", "2022", dependent_of="Q1"),  # a supporter in another household
            tax_row("Q2", "2021", dependent_of="Q4"),  # a supporter who has moved out
        ],
    )
    assert problems(refusal(home, cipher, residents, taxes)) == [
        ("tax.csv", 3, "fiscal_year", "second row for this resident and year (first on line 2)"),
        ("tax.csv", 5, "resident_code", "names no resident in the register"),
        ("tax.csv", 6, "dependent_of", "names no resident in the register"),
    ]

    fixed = tax_csv(
        tmp_path,
        [tax_row("Q1", "2022", levy="taxed"), tax_row("Q3", dependent_of="Q1"), tax_row("Q2", dependent_of="Q4")],
    )
    assert do_import(home, cipher, residents, fixed).tax.new == 3
    # a later tax file refers to the residents already in the store
    later = tax_csv(tmp_path, [tax_row("Q4", "2023", dependent_of="Q1")], name="tax2024.csv")
    assert do_import(home, cipher, later).tax.new == 1
    assert count(home, "tax_assessments") == 4


def test_accounts_must_name_a_household_once_and_a_known_branch(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    residents = residents_csv(tmp_path, [person("S1", "H1"), person("S2", "H2"), person("S3", "H3")])
    accounts = accounts_csv(
        tmp_path,
        [
            account_row("H1"),
            account_row("H9"),
            account_row("H1", bank="0005", number="7654321"),
            account_row("H2", bank="9998"),
            account_row("H3", branch="999"),
            account_row("H4", bank="12345"),
            account_row("H2", holder_kana="ヰカダ"),  # ヰ is not in the Zengin payee-name set
        ],
    )
    assert problems(refusal(home, cipher, residents, accounts)) == [
        ("accounts.csv", 3, "household_code", "names no household in the register"),
        ("accounts.csv", 4, "household_code", "second account for this household (first on line 2)"),
        ("accounts.csv", 5, "bank_code", "not a bank in the Zengin data"),  # the bank named, not the branch
        ("accounts.csv", 6, "branch_code", "not a branch of this bank in the Zengin data"),
        ("accounts.csv", 7, "bank_code", "not 1 to 4 digits"),
        ("accounts.csv", 8, "holder_kana", "not characters a Zengin file can carry"),
    ]

    padded = accounts_csv(tmp_path, [account_row("H1", bank="1", branch="1", number="42")], name="padded.csv")
    assert do_import(home, cipher, residents, padded).accounts.new == 1
    ((bank, branch, number, household),) = query(
        home, "SELECT bank_code, branch_code, account_number_enc, household_code FROM bank_accounts"
    )
    assert (bank, branch, cipher.decrypt(number, "bank_accounts.account_number", household)) == (
        "0001",
        "001",
        "0000042",
    )


# ---------------------------------------------------------------------------------------------- heads


def test_each_household_with_a_current_member_has_one_current_head(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    gone = {"moved_out": "2023-03-31"}
    path = residents_csv(
        tmp_path,
        [
            person("T1", "H1", relationship="child"),  # line 2: H1 has two heads
            person("T2", "H1"),
            person("T3", "H1", relationship="世帯主"),
            person("T4", "H2", relationship="spouse"),  # line 5: H2 has no head
            person("T5", "H2", relationship="child"),
            person("T6", "H3", relationship="spouse", **gone),  # H3: everyone left, no head needed
            person("T7", "H3", relationship="child", deceased="2020-01-01"),
            person("T8", "H4", **gone),  # line 9: H4's head moved out, a current member remains
            person("T9", "H4", relationship="child"),
            person("T10", "H5", **gone),  # H5: the old head moved out, a new one is current
            person("T11", "H5", relationship="HEAD"),
            person("T12", "H6", moved_out="2024-06-02"),  # H6: moving out tomorrow is still current
            person("T13", "H6", relationship="child"),
        ],
    )
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 2, "relationship", "household has 2 current heads"),
        ("residents.csv", 5, "relationship", "household has no current head"),
        ("residents.csv", 9, "relationship", "household has no current head"),
    ]


def test_heads_are_checked_after_the_merge_with_the_store(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    first = residents_csv(tmp_path, [person("U1", "H1"), person("U2", "H1", relationship="child")], name="one.csv")
    do_import(home, cipher, first)

    second_head = residents_csv(tmp_path, [person("U3", "H1")], name="two.csv")
    assert problems(refusal(home, cipher, second_head)) == [
        ("two.csv", 2, "relationship", "household has 2 current heads")
    ]

    handover = residents_csv(
        tmp_path, [person("U1", "H1", moved_out="2024-01-01"), person("U3", "H1")], name="three.csv"
    )
    summary = do_import(home, cipher, handover)
    assert (summary.residents.new, summary.residents.updated) == (1, 1)


def test_a_head_moving_to_another_household_leaves_no_household_headless(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    first = residents_csv(tmp_path, [person("U1", "H1"), person("U2", "H1", relationship="child")], name="one.csv")
    do_import(home, cipher, first)
    moved = residents_csv(tmp_path, [person("U1", "H2")], name="two.csv")  # U2 stays behind in H1, headless
    assert problems(refusal(home, cipher, moved)) == [
        ("two.csv", 2, "relationship", "leaves its former household: household has no current head")
    ]


# ---------------------------------------------------------------------------------------------- values


def test_values_that_break_a_rule(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    wrong_check = MY_NUMBER[:11] + str((my_number_check_digit(MY_NUMBER[:11]) + 1) % 10)
    path = residents_csv(
        tmp_path,
        [
            person("V1", "H1", birth_date="2024-06-02"),  # tomorrow in Tokyo
            person("V2", "H2", birth_date="平成31年5月1日"),
            person("V3", "H3", sex="X"),
            person("V4", "H4", my_number=wrong_check),
            person("V5", "H5", birth_date="2024-06-01", sex="female", my_number=MY_NUMBER),
            person("V6", "H6", sex="9", my_number="9876-5432-1093"),
        ],
    )
    assert problems(refusal(home, cipher, path)) == [
        ("residents.csv", 2, "birth_date", "after today"),
        ("residents.csv", 3, "birth_date", "date after the era ended"),
        ("residents.csv", 4, "sex", "not a known sex code"),
        ("residents.csv", 5, "my_number", "not a valid My Number"),
    ]

    # "today" is the day in Asia/Tokyo: 15:30 UTC on 1 June is already 2 June there
    born_today = residents_csv(tmp_path, [person("V1", "H1", birth_date="2024-06-02")], name="today.csv")
    assert do_import(home, cipher, born_today, now=datetime(2024, 6, 1, 15, 30, tzinfo=UTC)).residents.new == 1


# ---------------------------------------------------------------------------------------------- idempotency


SECRETS = (
    "SELECT 'r', resident_code, my_number_enc, my_number_bidx, row_mac FROM residents"
    " UNION ALL SELECT 't', resident_code, income_enc, NULL, row_mac FROM tax_assessments"
    " UNION ALL SELECT 'a', household_code, account_number_enc, account_number_bidx, row_mac FROM bank_accounts"
)


def stored_bytes(home: Home) -> list[tuple]:
    rows = query(home, SECRETS)
    return sorted((r[0], r[1], *(None if v is None else bytes(v) for v in r[2:])) for r in rows)


def test_importing_the_same_files_twice_changes_nothing(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    files = [
        residents_csv(
            tmp_path,
            [person("W1", "H1", my_number=MY_NUMBER), person("W2", "H1", relationship="child"), person("W3", "H2")],
        ),
        tax_csv(tmp_path, [tax_row("W1", income="3,000,000", levy="taxed"), tax_row("W2", dependent_of="W1")]),
        accounts_csv(tmp_path, [account_row("H1"), account_row("H2", bank="0005", number="1")]),
    ]
    first = do_import(home, cipher, *files)
    assert (first.residents.new, first.tax.new, first.accounts.new) == (3, 2, 2)
    before = stored_bytes(home)

    second = do_import(home, cipher, *files)

    assert (second.residents.new, second.residents.updated, second.residents.unchanged) == (0, 0, 3)
    assert (second.tax.new, second.tax.updated, second.tax.unchanged) == (0, 0, 2)
    assert (second.accounts.new, second.accounts.updated, second.accounts.unchanged) == (0, 0, 2)
    assert stored_bytes(home) == before  # not even re-encrypted


def test_the_same_rows_saved_again_in_cp932_with_crlf_are_unchanged(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """A row's digest is taken over its line as text: a UTF-8 file's own bytes, or another file's lines encoded
    again. Excel saving the same export as CP932 with CRLF line ends rewrites nothing."""
    rows = [person("E1", "H1", name="髙橋 一郎"), person("E2", "H1", relationship="妻", name="髙橋 花子")]
    do_import(home, cipher, residents_csv(tmp_path, rows))
    before = stored_bytes(home)

    again = residents_csv(tmp_path, rows, name="excel.csv", encoding="cp932", crlf=True)
    summary = do_import(home, cipher, again)

    assert b"\r\n" in again.read_bytes()
    assert (summary.residents.new, summary.residents.updated, summary.residents.unchanged) == (0, 0, 2)
    assert stored_bytes(home) == before


def test_a_monthly_extract_adds_updates_and_leaves_the_rest(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    """New, changed and unchanged rows in one re-import: only the new are inserted and only the changed
    rewritten; an unchanged row keeps its stored bytes, and a rejected row is neither."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    residents = [person("M1", "H1"), person("M2", "H1", relationship="child"), person("M3", "H2")]
    taxes = [tax_row("M1"), tax_row("M3")]
    do_import(home, cipher, residents_csv(first, residents), tax_csv(first, taxes))
    unchanged_before = [row for row in stored_bytes(home) if row[1] in ("M1", "M2")]

    moved = {**residents[2], "address": "兵庫県尼崎市東七松町1丁目23-1"}
    born = person("M4", "H1", relationship="child", birth_date="2024-05-20")
    unborn = person("M5", "H1", relationship="child", birth_date="2099-01-01")  # after today: rejected
    summary = do_import(
        home,
        cipher,
        residents_csv(second, [residents[0], residents[1], moved, born, unborn]),
        tax_csv(second, [*taxes, tax_row("M4")]),
        rejects=tmp_path / "rejects.csv",
    )

    assert (summary.residents.new, summary.residents.updated, summary.residents.unchanged) == (1, 1, 2)
    assert (summary.tax.new, summary.tax.updated, summary.tax.unchanged) == (1, 0, 2)
    assert summary.rejected == 1
    assert query(home, "SELECT resident_code, address FROM residents ORDER BY resident_code") == [
        ("M1", "兵庫県尼崎市昭和通2丁目1-1"),
        ("M2", "兵庫県尼崎市昭和通2丁目1-1"),
        ("M3", "兵庫県尼崎市東七松町1丁目23-1"),
        ("M4", "兵庫県尼崎市昭和通2丁目1-1"),
    ]
    assert [row for row in stored_bytes(home) if row[1] in ("M1", "M2")] == unchanged_before


def test_an_export_in_another_spelling_rewrites_its_rows_with_the_same_values(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """A new system exports the same register with slashed dates: every row's digest changes, so every row is
    an update, and each holds afterwards what it held before."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    residents = [person("S1", "H1", moved_in="2020-04-01"), person("S2", "H1", relationship="child")]
    do_import(home, cipher, residents_csv(first, residents))
    values = (
        "SELECT resident_code, household_code, relationship, is_head, name, name_kana, sex, birth_date, postcode,"
        " address, moved_in, moved_out, deceased FROM residents ORDER BY resident_code"
    )
    before, digests = query(home, values), query(home, "SELECT row_mac FROM residents ORDER BY resident_code")
    slashed = [{**r, **{k: r[k].replace("-", "/") for k in ("birth_date", "moved_in")}} for r in residents]

    summary = do_import(home, cipher, residents_csv(second, slashed))

    assert (summary.residents.new, summary.residents.updated, summary.residents.unchanged) == (0, 2, 0)
    assert query(home, values) == before
    rewritten = query(home, "SELECT row_mac FROM residents ORDER BY resident_code")
    assert all(a != b for a, b in zip(rewritten, digests, strict=True))


def test_a_newer_register_updates_and_never_deletes(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    residents = [
        person("X1", "H1"),
        person("X2", "H1", relationship="child"),
        person("X3", "H1", relationship="spouse"),
    ]
    do_import(home, cipher, residents_csv(old, residents), accounts_csv(old, [account_row("H1", number="1111111")]))

    new = tmp_path / "new"
    new.mkdir()
    newer = [residents[0], {**residents[1], "moved_out": "2024-05-01"}]  # X3 is not in the newer export
    replaced = account_row("H1", bank="0005", branch="001", number="2222222", holder_kana="ｱﾏｶﾞｻｷ ﾊﾅｺ")
    summary = do_import(home, cipher, residents_csv(new, newer), accounts_csv(new, [replaced]))

    assert (summary.residents.new, summary.residents.updated, summary.residents.unchanged) == (0, 1, 1)
    assert (summary.accounts.new, summary.accounts.updated, summary.accounts.unchanged) == (0, 1, 0)
    stored = query(home, "SELECT resident_code, moved_out FROM residents ORDER BY resident_code")
    assert [(code, day(moved_out)) for code, moved_out in stored] == [
        ("X1", None),
        ("X2", "2024-05-01"),
        ("X3", None),
    ]
    ((bank, number, bidx, holder, household),) = query(
        home,
        "SELECT bank_code, account_number_enc, account_number_bidx, holder_kana, household_code FROM bank_accounts",
    )
    assert (bank, cipher.decrypt(number, "bank_accounts.account_number", household), holder) == (
        "0005",
        "2222222",
        "アマガサキ ハナコ",
    )
    assert bytes(bidx) == cipher.blind_index("2222222", "bank_accounts.account_number")


# ---------------------------------------------------------------------------------------------- rejects


def test_rejects_imports_the_valid_rows_and_writes_the_rest_aside(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    residents = raw_residents(
        tmp_path,
        [
            raw_line("Y1", "H1"),
            raw_line("Y2", "H1", relationship="child", sex="X"),  # line 3
            raw_line("Y3", "H2", relationship="child"),  # lines 4-6: H2 has two heads
            raw_line("Y4", "H2"),
            raw_line("Y5", "H2"),
            raw_line("Y6", "H3", name="尼崎\r太郎"),  # line 7: lone CR
            raw_line("Y7", "H4"),
        ],
    )
    taxes = tax_csv(tmp_path, [tax_row("Y1"), tax_row("Y4"), tax_row("Y7")])
    rejects = tmp_path / "out" / "rejects.csv"
    rejects.parent.mkdir()

    summary = do_import(home, cipher, residents, taxes, rejects=rejects)

    assert (summary.residents.new, summary.tax.new) == (2, 2)
    assert summary.rows_read == 10
    assert summary.rejected == 6
    assert sorted(r[0] for r in query(home, "SELECT resident_code FROM residents")) == ["Y1", "Y7"]
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    lines = residents.read_bytes().decode().split("\n")  # read_text and splitlines would split at the lone CR
    assert rejects.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM: Japanese Excel reads it as UTF-8
    with rejects.open(encoding="utf-8-sig", newline="") as f:
        written = list(csv.reader(f))
    assert written == [
        ["file", "line", "rules", "raw_line"],
        ["residents.csv", "3", "sex: not a known sex code", lines[2]],
        ["residents.csv", "4", "relationship: household has 2 current heads", lines[3]],
        ["residents.csv", "5", "household rejected (see line 4)", lines[4]],
        ["residents.csv", "6", "household rejected (see line 4)", lines[5]],
        ["residents.csv", "7", "-: contains a control character or a broken quote", lines[6]],
        ["tax.csv", "3", "resident_code: names no resident in the register", "Y4,2022,exempt,0,"],
    ]
    assert count(home, "audit_log") == 2


def test_cli_rejects_prints_the_count_and_exits_0(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = residents_csv(tmp_path, [person("Z1", "H1"), person("Z2", "H2", sex="X")])
    rejects = tmp_path / "rejects.csv"
    capsys.readouterr()
    assert cli(home, str(path), "--rejects", str(rejects)) == 0
    out, _ = capsys.readouterr()
    assert "1 rows rejected and written to" in out
    assert "rejects.csv" in out
    assert count(home, "residents") == 1
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600

    again = residents_csv(tmp_path, [person("Z1", "H1"), person("Z3", "H3")], name="again.csv")
    assert cli(home, str(again), "--json") == 0
    out, _ = capsys.readouterr()
    figures = json.loads(out)  # one JSON object and nothing else
    assert (figures["residents_new"], figures["residents_unchanged"], figures["rejected_rows"]) == (1, 1, 0)


# ---------------------------------------------------------------------------------------------- encryption


def test_my_number_income_and_account_number_are_stored_encrypted(
    home: Home, cipher: FieldCipher, tmp_path: Path, backend: str
) -> None:
    income, account = "8765432", "7654321"
    files = [
        residents_csv(
            tmp_path,
            [
                person("AA1", "H1", my_number=MY_NUMBER),
                person("AA2", "H2", my_number="9876-5432-1093"),  # OTHER_MY_NUMBER, written otherwise
                person("AA3", "H3"),
            ],
        ),
        tax_csv(tmp_path, [tax_row("AA1", income=income, levy="taxed")]),
        accounts_csv(tmp_path, [account_row("H1", number=account)]),
    ]
    do_import(home, cipher, *files)

    residents = {
        code: (enc and bytes(enc), bidx and bytes(bidx))
        for code, enc, bidx in query(home, "SELECT resident_code, my_number_enc, my_number_bidx FROM residents")
    }
    ((income_enc, fiscal_year),) = query(home, "SELECT income_enc, fiscal_year FROM tax_assessments")
    ((account_enc, account_bidx),) = query(home, "SELECT account_number_enc, account_number_bidx FROM bank_accounts")
    blobs = [*(b for pair in residents.values() for b in pair if b), bytes(income_enc), bytes(account_enc)]
    blobs.append(bytes(account_bidx))
    for secret in (MY_NUMBER, OTHER_MY_NUMBER, income, account):
        assert all(secret.encode() not in blob for blob in blobs)
    if backend == "sqlite":
        home.engine.dispose()
        raw = b"".join(p.read_bytes() for p in home.path.glob("civicseal.db*"))
        assert b"AA1" in raw  # the file does hold the rows
        for secret in (MY_NUMBER, OTHER_MY_NUMBER, income, account):
            assert secret.encode() not in raw

    assert cipher.decrypt(residents["AA1"][0], "residents.my_number", "AA1") == MY_NUMBER
    assert cipher.decrypt(residents["AA2"][0], "residents.my_number", "AA2") == OTHER_MY_NUMBER
    assert cipher.decrypt(bytes(income_enc), "tax_assessments.income", tax_row_key("AA1", fiscal_year)) == income
    assert cipher.decrypt(bytes(account_enc), "bank_accounts.account_number", "H1") == account
    with pytest.raises(StoreError, match="moved from another row"):  # one resident's number copied to another
        cipher.decrypt(residents["AA1"][0], "residents.my_number", "AA2")
    again = cipher.encrypt(MY_NUMBER, "residents.my_number", "AA1")
    assert again != residents["AA1"][0]  # ciphertexts of equal numbers differ ...
    assert residents["AA1"][1] == cipher.blind_index(MY_NUMBER, "residents.my_number")  # ... blind indexes do not
    assert residents["AA2"][1] == cipher.blind_index(OTHER_MY_NUMBER, "residents.my_number")  # however written
    assert residents["AA2"][1] != residents["AA1"][1]
    assert residents["AA3"] == (None, None)  # no My Number: none stored, none indexed
