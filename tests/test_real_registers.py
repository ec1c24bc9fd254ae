"""Registers shaped like a real city's export (issue 8): real 続柄 words, and every broken input refused as
``file:line: column: rule`` with nothing written, never an internal error — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from civicseal.cli import run
from civicseal.register.errors import RegisterError
from civicseal.register.importer import UTF8_BOM, RejectsEncoding
from civicseal.register.normalize import relationship_category
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.test_import import (
    RESIDENT_HEADER,
    account_row,
    accounts_csv,
    counts,
    csv_text,
    do_import,
    person,
    problems,
    query,
    refusal,
    residents_csv,
    tax_csv,
    tax_row,
    write,
)

# Words a 住民基本台帳 export writes for members other than the head: more than 25, most of them not in the
# category list, all of which must import and be kept as written.
RELATIONSHIP_WORDS = [
    "妻", "夫", "子", "長男", "長女", "次男", "三男", "子の妻", "子の夫", "孫", "孫の妻", "父", "母", "妻の父",
    "妻の母", "夫の父", "夫の母", "兄", "姉", "弟", "妹", "叔父", "叔母", "甥", "姪", "養子", "養女",
    "妻（未届）", "夫（未届）", "縁故者", "同居人", "祖父", "祖母", "曾孫", "子の子", "兄弟姉妹", "子の妻の父",
]  # fmt: skip


def test_a_register_with_real_relationship_words_imports_and_keeps_each_word(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    rows = [person("H0", "HH", relationship="世帯主")]
    rows += [person(f"M{i}", "HH", relationship=word) for i, word in enumerate(RELATIONSHIP_WORDS)]
    rows += [person("X0", "HX", relationship="Head"), person("X1", "HX", relationship="下宿人")]
    rows += [person("X2", "HX", relationship="続" * 50)]  # the longest word a column must hold
    assert len(set(RELATIONSHIP_WORDS)) >= 25
    summary = do_import(
        home, cipher, write(tmp_path / "residents.csv", csv_text(RESIDENT_HEADER, rows), encoding="cp932")
    )
    assert summary.residents.new == len(rows)
    stored = {
        code: (word, bool(head))
        for code, word, head in query(home, "SELECT resident_code, relationship, is_head FROM residents")
    }
    expected_words = [w.replace("（", "(").replace("）", ")") for w in RELATIONSHIP_WORDS]  # full-width ASCII folds
    assert [stored[f"M{i}"] for i in range(len(RELATIONSHIP_WORDS))] == [(w, False) for w in expected_words]
    assert stored["H0"] == ("世帯主", True)
    assert (stored["X0"], stored["X2"]) == (("Head", True), ("続" * 50, False))
    assert {relationship_category(w) for w in expected_words} >= {"spouse", "child", "parent", "relative", "other"}


def test_each_reported_input_is_a_one_line_rule_with_nothing_written(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    residents = residents_csv(tmp_path, [person("A1", "H1"), person("A2", "H2")])
    before = counts(home)

    empty_levy = tax_csv(tmp_path, [tax_row("A1", levy="")])
    assert problems(refusal(home, cipher, residents, empty_levy)) == [("tax.csv", 2, "per_capita_levy", "required")]
    no_word = residents_csv(tmp_path, [person("A3", "H3"), person("A4", "H3", relationship="　")], name="r.csv")
    assert problems(refusal(home, cipher, no_word)) == [("r.csv", 3, "relationship", "required")]

    empty = write(tmp_path / "empty.csv", "")
    assert problems(refusal(home, cipher, empty)) == [("empty.csv", 0, "", "empty file")]
    # beside another file, the refusal crosses from the parsing worker whole
    assert problems(refusal(home, cipher, residents, empty)) == [("empty.csv", 0, "", "empty file")]

    huge = residents_csv(tmp_path, [person("B1", "H1", address="尼" * 1_000_000)], name="huge.csv")
    assert problems(refusal(home, cipher, huge)) == [("huge.csv", 2, "address", "longer than 200 characters")]

    unknown_bank = accounts_csv(tmp_path, [account_row("H1", bank="9998"), account_row("H2", branch="999")])
    assert problems(refusal(home, cipher, residents, unknown_bank)) == [
        ("accounts.csv", 2, "bank_code", "not a bank in the Zengin data"),
        ("accounts.csv", 3, "branch_code", "not a branch of this bank in the Zengin data"),
    ]
    assert counts(home) == before


def test_lengths_are_counted_after_half_width_kana_are_folded(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    fits = "ｶﾞ" * 100  # 200 characters as written, 100 once ガ is one letter
    over = "ｶﾞ" * 101
    path = residents_csv(tmp_path, [person("K1", "H1", name_kana=fits), person("K2", "H2", name_kana=over)])
    assert problems(refusal(home, cipher, path)) == [("residents.csv", 3, "name_kana", "longer than 100 characters")]
    ok = residents_csv(tmp_path, [person("K1", "H1", name_kana=fits)], name="ok.csv")
    assert do_import(home, cipher, ok).residents.new == 1
    assert query(home, "SELECT name_kana FROM residents") == [("ガ" * 100,)]


def test_rejects_are_written_for_spreadsheets(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = residents_csv(tmp_path, [person("R1", "H1"), person("R2", "H2", sex="不明")])
    rejects = tmp_path / "rejects.csv"
    do_import(home, cipher, path, rejects=rejects, rejects_encoding=RejectsEncoding.CP932)
    with rejects.open(encoding="cp932", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1][:3] == ["residents.csv", "3", "sex: not a known sex code"]
    assert "不明" in rows[1][3]

    again = tmp_path / "again.csv"
    code = run(["register", "import", str(path), "--rejects", str(again), "--home", str(home.path)])
    assert code == 0
    assert again.read_bytes().startswith(b"\xef\xbb\xbf")


def test_rejects_in_cp932_refuse_what_cp932_cannot_carry(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = residents_csv(tmp_path, [person("R1", "H1"), person("R2", "H2", sex="𠮷")])  # 𠮷 is not in CP932
    rejects = tmp_path / "rejects.csv"
    before = counts(home)
    with pytest.raises(RegisterError, match="cannot carry"):
        do_import(home, cipher, path, rejects=rejects, rejects_encoding=RejectsEncoding.CP932)
    assert counts(home) == before
    assert not rejects.exists()


# A municipal system's export, as a city's IT team hands it over: its own header words (宛名番号, 世帯主との続柄,
# half-width ｶﾅ氏名, 〒, マイナンバー…), the building and room in a 方書 column apart from 住所, CP932, CRLF.
SYSTEM_HEADERS = {
    "resident_code": "宛名番号", "household_code": "世帯番号", "relationship": "世帯主との続柄", "name": "氏名（漢字）",
    "name_kana": "ｶﾅ氏名", "sex": "性別", "birth_date": "生年月日", "postcode": "〒", "address": "住所",
    "moved_in": "住民となった日", "moved_out": "転出年月日", "deceased": "死亡年月日", "my_number": "マイナンバー",
}  # fmt: skip
TAX_HEADERS = {"resident_code": "宛名番号", "fiscal_year": "課税年度", "per_capita_levy": "均等割",
               "income": "合計所得金額", "dependent_of": "扶養者宛名番号"}  # fmt: skip
ACCOUNT_HEADERS = {"household_code": "世帯コード", "bank_code": "銀行コード", "branch_code": "店舗コード",
                   "account_type": "預金種別", "account_number": "口座番号", "holder_kana": "口座名義"}  # fmt: skip


def system_export(path: Path, headers: dict[str, str], rows: list[dict[str, str]], extra: str | None = None) -> Path:
    """Rows under a system's headers; ``extra`` is a 方書 column after 住所, from each row's ``方書``."""
    columns = list(headers)
    header = list(headers.values())
    if extra is not None:
        at = columns.index("address") + 1
        columns.insert(at, "方書")
        header.insert(at, extra)
    lines = [header] + [[row.get(column, "") for column in columns] for row in rows]
    return write(path, csv_text(header, lines[1:]), encoding="cp932", crlf=True)


def test_the_empty_columns_a_spreadsheet_writes_after_the_last_header_are_not_columns(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """Excel saves the columns formatted beyond the data as empty cells, in the header and on every row; a value
    there is refused with its row, named by the spreadsheet's column."""
    rows = [person("000101", "H1"), person("000102", "H1", relationship="子")]
    exported = system_export(tmp_path / "住基.csv", SYSTEM_HEADERS, rows)
    lines = exported.read_text(encoding="cp932").splitlines()
    padded = tmp_path / "住基_excel.csv"
    padded.write_text("\r\n".join(line + ",," for line in lines) + "\r\n", encoding="cp932")
    assert do_import(home, cipher, padded).residents.new == 2
    noted = tmp_path / "住基_メモ.csv"
    noted.write_text("\r\n".join([lines[0] + ",,", lines[1] + ",,", lines[2] + ",転居予定,"]), encoding="cp932")
    rule = "a value in a column without a header; give the column its header, or delete it"
    assert problems(refusal(home, cipher, noted)) == [("住基_メモ.csv", 3, "column 14 (N)", rule)]


def test_rows_a_spreadsheet_left_empty_hold_nothing_to_import(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    """Rows whose cells were emptied, or formatted below the data, are saved as lines of commas (or blank
    lines): left out, and the lines after them keep their numbers."""
    rows = [person("000101", "H1"), person("000102", "H1", relationship="子", birth_date="昭和35年13月1日")]
    exported = system_export(tmp_path / "住基.csv", SYSTEM_HEADERS, rows)
    header, first, second = exported.read_text(encoding="cp932").splitlines()
    empty = "," * (len(SYSTEM_HEADERS) - 1)
    saved = tmp_path / "住基_excel.csv"
    saved.write_text("\r\n".join([header, first, empty, "", second, empty, empty]) + "\r\n", encoding="cp932")
    assert problems(refusal(home, cipher, saved)) == [("住基_excel.csv", 5, "birth_date", "not a valid date")]
    fixed = saved.read_text(encoding="cp932").replace("昭和35年13月1日", "昭和35年12月1日")
    saved.write_text(fixed, encoding="cp932")
    summary = do_import(home, cipher, saved)
    assert (summary.residents.new, summary.rows_read, summary.rejected) == (2, 2, 0)


def test_two_exports_joined_into_one_file_are_told_so_at_the_second_header(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """`copy 東地区.csv+西地区.csv 全体.csv` keeps the second file's header (and its BOM): one problem for that
    line, not one for each column its header words break; the lines after it keep their numbers."""
    east = system_export(tmp_path / "east.csv", SYSTEM_HEADERS, [person("000101", "H1")]).read_bytes()
    west = system_export(tmp_path / "west.csv", SYSTEM_HEADERS, [person("000201", "H2")]).read_text(encoding="cp932")
    joined = tmp_path / "全体.csv"
    joined.write_bytes(east.decode("cp932").encode() + UTF8_BOM + west.encode())  # both as UTF-8 exports
    rule = "the header again: two files joined into one? delete this line"
    assert problems(refusal(home, cipher, joined)) == [("全体.csv", 3, "-", rule)]
    summary = do_import(home, cipher, joined, rejects=tmp_path / "rejects.csv")
    assert (summary.residents.new, summary.rejected) == (2, 1)


@pytest.mark.parametrize("header", ["転入日", "転入年月日", "住民となった年月日"])
def test_the_day_a_person_became_a_resident_is_read_under_the_words_a_register_uses(
    home: Home, cipher: FieldCipher, tmp_path: Path, header: str
) -> None:
    """転入日 is the day of a move into the city; empty for one born there, a resident from birth."""
    rows = [person("000101", "H1", moved_in="平成30年4月1日"), person("000102", "H1", relationship="子")]
    residents = system_export(tmp_path / "住基.csv", SYSTEM_HEADERS | {"moved_in": header}, rows)
    assert do_import(home, cipher, residents).residents.new == 2
    moved_in = query(home, "SELECT resident_code, moved_in FROM residents ORDER BY resident_code")
    assert [(code, day and str(day)) for code, day in moved_in] == [("000101", "2018-04-01"), ("000102", None)]


def test_a_municipal_system_export_imports_under_its_own_headers_with_its_katagaki(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    street = "兵庫県尼崎市昭和通2丁目1番1号"
    rows = [
        person("000101", "H1", address=street, 方書="コーポ昭和１０１号"),
        person("000102", "H1", relationship="妻", address=street, 方書="コーポ昭和１０１号"),
        person("000201", "H2", address="兵庫県尼崎市東七松町1丁目2-3"),  # a house: no 方書
    ]
    residents = system_export(tmp_path / "住基.csv", SYSTEM_HEADERS, rows, extra="方書")
    tax = system_export(tmp_path / "税.csv", TAX_HEADERS, [tax_row(code) for code in ("000101", "000102", "000201")])
    accounts = system_export(tmp_path / "口座.csv", ACCOUNT_HEADERS, [account_row("H1")])
    summary = do_import(home, cipher, residents, tax, accounts)
    assert (summary.residents.new, summary.tax.new, summary.accounts.new) == (3, 3, 1)
    assert query(home, "SELECT resident_code, address FROM residents ORDER BY resident_code") == [
        ("000101", f"{street} コーポ昭和101号"),
        ("000102", f"{street} コーポ昭和101号"),
        ("000201", "兵庫県尼崎市東七松町1丁目2-3"),
    ]
    assert do_import(home, cipher, residents, tax, accounts).residents.unchanged == 3  # re-import: a no-op

    long = system_export(
        tmp_path / "長.csv", SYSTEM_HEADERS, [person("9", "H9", address="尼" * 190, 方書="棟" * 10)], "方書き"
    )
    assert problems(refusal(home, cipher, long)) == [
        ("長.csv", 2, "address", "longer than 200 characters with its 方書")
    ]


def test_a_header_civicseal_does_not_read_is_named_by_its_spreadsheet_column(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """Never by its text (a file without a header would show a resident's data there); in column order, with
    the headers a missing column may have."""
    headers = {k: v for k, v in SYSTEM_HEADERS.items() if k != "postcode"}
    header = [*headers.values(), "行政区", *[f"予備{i}" for i in range(16)]]
    path = write(tmp_path / "r.csv", csv_text(header, []), encoding="cp932")
    found = problems(refusal(home, cipher, path))
    assert found[:3] == [
        ("r.csv", 1, "postcode", "required column is missing (headed 郵便番号, 〒 or postcode)"),
        ("r.csv", 1, "column 13 (M)", "unknown column for a residents file"),
        ("r.csv", 1, "column 14 (N)", "unknown column for a residents file"),
    ]
    assert found[-1] == ("r.csv", 1, "column 29 (AC)", "unknown column for a residents file")


def test_a_tab_separated_export_is_told_to_be_saved_as_csv(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    path = write(tmp_path / "住基.txt", "\t".join(SYSTEM_HEADERS.values()) + "\n" + "\t".join(["1"] * 13) + "\n")
    assert problems(refusal(home, cipher, path)) == [
        ("住基.txt", 0, "", "is tab-separated; save it as CSV (comma-separated) in UTF-8 or CP932")
    ]


def test_codes_a_spreadsheet_stripped_of_leading_zeros_are_refused_not_a_second_register(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """Opened in Excel and saved again, 000101 comes back as 101: imported, every resident would be registered
    twice and every household paid twice."""
    rows = [person("000101", "000001"), person("000102", "000001", relationship="妻"), person("A7", "000002")]
    first = residents_csv(tmp_path, rows, name="first.csv")
    do_import(home, cipher, first)
    before = counts(home)
    resaved = residents_csv(
        tmp_path,
        [person("101", "1"), person("102", "1", relationship="妻"), person("A7", "2"), person("2024", "77")],
        name="resaved.csv",
    )
    found = problems(refusal(home, cipher, resaved))
    rule = "a registered code with its leading zeros dropped, as a spreadsheet drops them when it opens a CSV;"
    rule += " format the column as text and export again"
    assert found == [
        ("resaved.csv", 2, "resident_code", rule),
        ("resaved.csv", 3, "resident_code", rule),
        ("resaved.csv", 4, "household_code", rule),  # A7 keeps its code; its household lost the zeros
    ]
    assert counts(home) == before
    assert do_import(home, cipher, first).residents.unchanged == 3  # the export as it was: nothing to say
    newcomer = residents_csv(tmp_path, [person("2024", "77")], name="newcomer.csv")  # short, and no stored match
    assert do_import(home, cipher, newcomer).residents.new == 1
    # the tax or accounts file re-imported alone: told why, not only that the code names nobody
    tax = tax_csv(tmp_path, [tax_row("101"), tax_row("A7")])
    accounts = accounts_csv(tmp_path, [account_row("1"), account_row("000002")])
    assert problems(refusal(home, cipher, tax, accounts)) == [
        ("accounts.csv", 2, "household_code", rule),
        ("tax.csv", 2, "resident_code", rule),
    ]


def test_an_export_with_the_zeros_a_first_import_lost_is_refused_too(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """The mirror case: the first import came through a spreadsheet (101), the next export is as the system
    writes it (000101). Either way round, the register would hold everyone twice."""
    do_import(home, cipher, residents_csv(tmp_path, [person("101", "1"), person("A7", "2")], name="excel.csv"))
    before = counts(home)
    exported = residents_csv(tmp_path, [person("000101", "000001"), person("A7", "2")], name="export.csv")
    rule = "a registered code with leading zeros the register lacks: an earlier import came through a spreadsheet"
    rule += " that dropped them; import this file the same way, or rebuild the store from an export saved as text"
    assert problems(refusal(home, cipher, exported)) == [("export.csv", 2, "resident_code", rule)]
    assert counts(home) == before
    codes_with_zero = residents_csv(tmp_path, [person("0555", "0555")], name="new.csv")  # no stored match
    assert do_import(home, cipher, codes_with_zero).residents.new == 1


def test_a_title_above_the_header_is_named_by_its_lines(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    """A list saved from a spreadsheet keeps its title and date above the header: the import says where the
    header is, not only that line 1 is none (and never what the title says)."""
    text = "令和4年度 住民税非課税世帯一覧\n作成日 2022/6/1\n" + csv_text(RESIDENT_HEADER, [person("T1", "H1")])
    path = write(tmp_path / "一覧.csv", text, encoding="cp932")
    assert problems(refusal(home, cipher, path)) == [
        ("一覧.csv", 0, "", "the header is on line 3: delete the 2 lines above it (a title) and import again")
    ]
    nothing = write(tmp_path / "r.csv", "a,b\n1,2\n")
    assert problems(refusal(home, cipher, nothing)) == [
        ("r.csv", 0, "", "header does not tell a residents, tax or accounts file; check the first line")
    ]
