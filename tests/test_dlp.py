"""The DLP scanner: the index holds no plaintext; every format and encoding is read; spellings the import
accepts still match; namesakes do not; protected files are not findings; the CLI gates on --fail-at."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import struct
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicseal.cli import run
from civicseal.dlp.errors import DlpError
from civicseal.dlp.index import FingerprintIndex, build_index, export_index, index_path, load_home_index
from civicseal.dlp.normalize import canonical
from civicseal.dlp.scan import XLSB_UNREAD, Matcher, scan
from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.trust import add_trusted, format_public_key
from civicseal.register.columns import Kind
from civicseal.register.importer import import_register
from civicseal.register.normalize import my_number_check_digit
from civicseal.store.home import Home
from tests.registers import resident, tax, write_csv

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")


def my_number(first11: str) -> str:
    return first11 + str(my_number_check_digit(first11))


MN1 = my_number("12345678901")
# Five residents: one moved out, one deceased (the index holds everyone); 佐藤 さくら has hiragana in her name.
PEOPLE = [
    resident("R1", "H1", name="山田 太郎", name_kana="ヤマダ タロウ", birth_date="1958-03-02",
             address="兵庫県尼崎市東七松町1丁目2-3", my_number=MN1),
    resident("R2", "H1", relationship="妻", name="山田 花子", name_kana="ヤマダ ハナコ", birth_date="1961-11-20",
             address="兵庫県尼崎市東七松町1丁目2-3"),
    resident("R3", "H2", name="佐藤 さくら", name_kana="サトウ サクラ", birth_date="1990-07-07",
             address="兵庫県尼崎市昭和通2丁目1-1", moved_out="2021-01-01"),
    resident("R4", "H3", name="鈴木 一郎", name_kana="スズキ イチロウ", birth_date="1940-01-15",
             address="兵庫県尼崎市南塚口町3丁目4-5", deceased="2020-05-05"),
    resident("R5", "H4", name="田中 ヨシ子", name_kana="タナカ ヨシコ", birth_date="1975-09-30",
             address="兵庫県尼崎市武庫之荘1丁目10-8 コーポ武庫101"),
]  # fmt: skip
ACCOUNT = {"household_code": "H1", "bank_code": "0001", "branch_code": "001", "account_type": "1",
           "account_number": "1234567", "holder_kana": "ヤマダ タロウ"}  # fmt: skip


def _register(home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "register"
    folder.mkdir()
    files = [
        write_csv(folder / "residents.csv", Kind.RESIDENTS, PEOPLE),
        write_csv(folder / "tax.csv", Kind.TAX, [tax(p["resident_code"]) for p in PEOPLE]),
        write_csv(folder / "accounts.csv", Kind.ACCOUNTS, [ACCOUNT]),
    ]
    import_register(home.engine, load_city_keys(home.keys).field_cipher(), files, now=NOW)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FingerprintIndex]:
    """One index for the format tests, which read files and never the store (built on SQLite)."""
    import os

    from civicseal.store.engine import DATABASE_URL_ENV

    saved = os.environ.pop(DATABASE_URL_ENV, None)
    tmp = tmp_path_factory.mktemp("dlp")
    home = init_home(tmp / "home")
    _register(home, tmp)
    build_index(home, now=NOW)
    yield load_home_index(home)
    home.engine.dispose()
    if saved is not None:
        os.environ[DATABASE_URL_ENV] = saved


def rows_of(*columns: str) -> list[list[str]]:
    return [[p[c] for c in columns] for p in PEOPLE]


def write_table(path: Path, rows: list[list[str]], *, encoding: str = "utf-8", delimiter: str = ",") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["氏名", "生年月日", "住所"])
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------ the index


def test_index_covers_everyone_and_holds_no_plaintext(home: Home, tmp_path: Path) -> None:
    _register(home, tmp_path)
    summary = build_index(home, now=NOW)
    assert summary.residents == 5
    assert summary.elements["bank_account"] == 1 and summary.elements["my_number"] == 1
    data = index_path(home).read_bytes()
    secrets = [p[f] for p in PEOPLE for f in ("name", "name_kana", "birth_date", "address")] + [MN1, "1234567"]
    for value in secrets:
        for spelling in {value, value.replace(" ", "")}:
            assert spelling.encode() not in data
    # Moved out (R3) and deceased (R4) residents are found like the others.
    found = scan(
        [write_table(tmp_path / "old.csv", rows_of("name", "birth_date", "address")[2:4])], load_home_index(home)
    )
    assert found.residents_matched == 2


def test_an_index_under_another_key_is_refused(home: Home, tmp_path: Path) -> None:
    _register(home, tmp_path)
    build_index(home, now=NOW)
    other = init_home(tmp_path / "other")
    (other.path / "dlp").mkdir()
    index_path(other).write_bytes(index_path(home).read_bytes())
    with pytest.raises(DlpError, match="another key"):
        load_home_index(other)
    other.engine.dispose()


# ------------------------------------------------------------------------------------ spellings


def test_canonical_spellings_are_the_imports() -> None:
    same = [
        ["山田 太郎", "山田　太郎", "山田太郎", " 山田  太郎 "],
        ["ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ", "やまだ たろう", "ヤマダ\nタロウ"],
        ["1958-03-02", "1958/3/2", "1958年3月2日", "昭和33年3月2日", "S33.3.2", "s33/3/2", "１９５８－０３－０２"],
        ["兵庫県尼崎市東七松町1丁目2-3", "兵庫県尼崎市東七松町１丁目２－３", "兵庫県尼崎市東七松町1丁目2ー3"],
        [MN1, f"{MN1[:4]}-{MN1[4:8]}-{MN1[8:]}", f"{MN1[:4]} {MN1[4:8]} {MN1[8:]}"],
    ]
    for spellings in same:
        assert len(set(canonical(spellings))) == 1, spellings


def test_full_width_half_width_and_era_spellings_are_found(index: FingerprintIndex, tmp_path: Path) -> None:
    rows = [
        ["ﾔﾏﾀﾞ ﾀﾛｳ", "昭和33年3月2日", "兵庫県尼崎市東七松町１丁目２－３"],
        ["山田花子", "S36.11.20", "兵庫県尼崎市東七松町1丁目2ー3"],
        ["さとう さくら", "平成2年7月7日", "兵庫県尼崎市昭和通２丁目１－１"],
    ]
    report = scan([write_table(tmp_path / "spellings.csv", rows)], index)
    assert report.residents_matched == 3
    assert report.files[0].elements == {"name": 3, "birth_date": 3, "address": 3, "my_number": 0, "bank_account": 0}


def test_a_household_row_finds_both_members(index: FingerprintIndex, tmp_path: Path) -> None:
    """A household list: head, spouse and the address they share, in one row; both are found."""
    r1, r2 = PEOPLE[0], PEOPLE[1]
    path = tmp_path / "households.csv"
    path.write_text(f"世帯主,配偶者,住所\n{r1['name']},{r2['name']},{r1['address']}\n", encoding="utf-8")
    f = scan([path], index).files[0]
    assert f.residents_matched == 2
    assert f.elements == {"name": 2, "birth_date": 0, "address": 1, "my_number": 0, "bank_account": 0}


def test_other_people_with_the_same_names_match_no_resident(index: FingerprintIndex, tmp_path: Path) -> None:
    rows = [[p["name"], "1999-12-31", "大阪府大阪市北区梅田1丁目1-1"] for p in PEOPLE]
    report = scan([write_table(tmp_path / "namesakes.csv", rows)], index)
    assert report.residents_matched == 0
    assert report.files[0].uncorroborated["name"] == 5
    assert report.summary().startswith("no file under")


# ------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932", "utf-16"])
def test_csv_in_every_encoding(index: FingerprintIndex, tmp_path: Path, encoding: str) -> None:
    path = write_table(tmp_path / "export.csv", rows_of("name", "birth_date", "address"), encoding=encoding)
    report = scan([path], index)
    f = report.files[0]
    assert (f.format, report.residents_matched) == ("csv", 5)
    assert f.encoding is not None and f.encoding.replace("_", "-").startswith(encoding[:5])
    assert {"line": 2, "column": 1, "element": "name"} in f.positions


def test_tsv_and_a_ragged_row(index: FingerprintIndex, tmp_path: Path) -> None:
    path = write_table(tmp_path / "export.tsv", rows_of("name_kana", "address", "birth_date"), delimiter="\t")
    with path.open("a", encoding="utf-8") as f:
        f.write("鈴木 一郎\t1940-01-15\n")  # one field short: read as text
    report = scan([path], index)
    assert report.residents_matched == 5
    assert {"line": 7, "column": 1, "element": "name"} in report.files[0].positions


def test_text_with_a_value_split_across_a_line_break(index: FingerprintIndex, tmp_path: Path) -> None:
    text = (
        "お問い合わせ記録\n"
        "氏名：ﾔﾏﾀﾞ ﾀﾛｳ 様\n"
        "住所：兵庫県尼崎市東七松町\n"
        "１丁目２－３\n"
        "\n" + "別件のメモ。" * 40 + "\n"
        "佐藤 さくら\n"  # alone, far from anything of hers
    )
    path = tmp_path / "memo.txt"
    path.write_text(text, encoding="cp932")
    report = scan([path], index)
    f = report.files[0]
    assert report.residents_matched == 1
    assert f.elements["name"] == 1 and f.elements["address"] == 1
    assert f.uncorroborated["name"] == 1
    assert {"line": 2, "column": 4, "element": "name"} in f.positions


def test_json_and_jsonl(index: FingerprintIndex, tmp_path: Path) -> None:
    records = [{"name": p["name"], "profile": {"born": p["birth_date"]}, "birth": p["birth_date"]} for p in PEOPLE]
    (tmp_path / "a.json").write_text(json.dumps({"records": records}, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(
        "\n".join(json.dumps({"kana": p["name_kana"], "address": p["address"]}, ensure_ascii=False) for p in PEOPLE),
        encoding="utf-16",
    )
    report = scan([tmp_path / "a.json", tmp_path / "b.jsonl"], index)
    assert [f.residents_matched for f in report.files] == [5, 5]
    assert {"path": "$.records[0].name", "element": "name"} in report.files[0].positions


def test_xlsx_and_parquet(index: FingerprintIndex, tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "名簿"
    sheet.append(["氏名", "住所", "口座"])
    for p in PEOPLE:
        sheet.append([p["name"], p["address"]])
    book.save(tmp_path / "list.xlsx")
    table = pa.table({"kana": [p["name_kana"] for p in PEOPLE], "born": [p["birth_date"] for p in PEOPLE]})
    pq.write_table(table, tmp_path / "list.parquet")
    report = scan([tmp_path / "list.xlsx", tmp_path / "list.parquet"], index)
    xlsx, parquet = report.files
    assert (xlsx.format, xlsx.residents_matched, parquet.format, parquet.residents_matched) == ("xlsx", 5, "parquet", 5)
    assert {"cell": "名簿!A2", "element": "name"} in xlsx.positions
    assert {"row": 1, "column": "kana", "element": "name"} in parquet.positions


def test_xls_workbook(index: FingerprintIndex, tmp_path: Path) -> None:
    """Excel 97–2003 (.xls), as many city offices still save: dates as date cells, My Number as a number."""
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("名簿")
    dated = xlwt.easyxf(num_format_str="ggge年m月d日")
    for column, title in enumerate(["氏名", "生年月日", "個人番号"]):
        sheet.write(0, column, title)
    for row, p in enumerate(PEOPLE, 1):
        sheet.write(row, 0, p["name"])
        sheet.write(row, 1, datetime.fromisoformat(p["birth_date"]), dated)
        if p["my_number"]:
            sheet.write(row, 2, int(p["my_number"]))
    book.save(str(tmp_path / "list.xls"))
    f = scan([tmp_path / "list.xls"], index).files[0]
    assert (f.format, f.residents_matched, f.elements["my_number"]) == ("xls", 5, 1)
    assert {"cell": "名簿!A2", "element": "name"} in f.positions


def rename_stream(data: bytes, old: str, new: str) -> bytes:
    """The OLE2 file with one directory entry renamed (a name of 64 bytes of UTF-16, then its length)."""
    at = data.index(old.encode("utf-16-le") + b"\0\0")
    name = new.encode("utf-16-le") + b"\0\0"
    return data[:at] + name.ljust(64, b"\0") + len(name).to_bytes(2, "little") + data[at + 66 :]


def mark_encrypted(path: Path) -> None:
    """The workbook's first WRITEACCESS record turned into FILEPASS, as Excel writes for a password."""
    import olefile

    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        stream = bytearray(ole.openstream("Workbook").read())
        at = 0
        while int.from_bytes(stream[at : at + 2], "little") != 0x005C:
            at += 4 + int.from_bytes(stream[at + 2 : at + 4], "little")
        stream[at : at + 2] = (0x002F).to_bytes(2, "little")
        ole.write_stream("Workbook", bytes(stream))


def test_office_files_with_a_password_are_protected_and_old_word_is_named(
    index: FingerprintIndex, tmp_path: Path
) -> None:
    """The Amagasaki stick's file was "encrypted and password-protected": such a file is listed as
    protected, never read as clean text; a file the scanner cannot read is named, not passed over."""
    import xlwt
    from msoffcrypto.format.ooxml import OOXMLFile
    from openpyxl import Workbook
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    book = Workbook()
    for p in PEOPLE:
        book.active.append([p["name"], p["address"]])
    plain = io.BytesIO()
    book.save(plain)
    with (tmp_path / "list.xlsx").open("wb") as out:
        OOXMLFile(io.BytesIO(plain.getvalue())).encrypt("Amagasaki2022", out)
    old = xlwt.Workbook(encoding="utf-8")
    old.add_sheet("名簿").write(0, 0, PEOPLE[0]["name"])
    old.save(str(tmp_path / "old.xls"))
    mark_encrypted(tmp_path / "old.xls")
    (tmp_path / "minutes.doc").write_bytes(word_document(["山田 太郎\r"], flags=0x0300))
    pdfmetrics.registerFont(TTFont("IPAexGothic", str(FONT)))
    container = (tmp_path / "list.xlsx").read_bytes()
    (tmp_path / "slides.ppt").write_bytes(slides([], encrypted=True))
    (tmp_path / "Thumbs.db").write_bytes(rename_stream(container, "EncryptedPackage", "Catalog"))
    (tmp_path / "案内文.jtd").write_bytes(rename_stream(container, "EncryptedPackage", "DocumentText"))
    for name, user in (("locked.pdf", "secret"), ("no-print.pdf", "")):
        pdf = canvas.Canvas(str(tmp_path / name), encrypt=StandardEncryption(user, ownerPassword="owner"))
        pdf.setFont("IPAexGothic", 11)
        pdf.drawString(72, 720, "鈴木 一郎 様 昭和15年1月15日生")
        pdf.showPage()
        pdf.save()
    report = scan([tmp_path], index)
    found = {Path(f.path).name: (f.format, f.protected or f.skipped, f.residents_matched) for f in report.files}
    assert found == {
        "list.xlsx": ("office", "Office password (only as strong as the password chosen)", 0),
        "old.xls": ("office", "Excel 97–2003 password (weak: RC4, broken without the password)", 0),
        "minutes.doc": ("office", "Word 97–2003 password (weak: RC4 or XOR, broken without the password)", 0),
        "slides.ppt": ("office", "PowerPoint 97–2003 password (weak: RC4, broken without the password)", 0),
        "Thumbs.db": ("ole2", "Windows thumbnail cache (Thumbs.db): small copies of pictures, not read", 0),
        "案内文.jtd": ("ole2", "一太郎 document (.jtd), not read: save it as .docx or .odt and scan it again", 0),
        "locked.pdf": ("pdf", "PDF password (only as strong as the password chosen)", 0),
        "no-print.pdf": ("pdf", None, 1),  # an owner password alone (no printing, say) hides nothing
    }
    counts = report.as_dict()
    assert (counts["files_protected"], counts["files_skipped"]) == (5, 2)
    # the sentence an officer reads before a copy leaves does not hide what the scan could not vouch for
    assert report.summary().endswith(
        "holds data of 1 resident in plaintext;"
        " not vouched for: 2 files not read, 5 files behind a password (see the list)"
    )


def test_pdf_text(index: FingerprintIndex, tmp_path: Path) -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("IPAexGothic", str(FONT)))
    pdf = canvas.Canvas(str(tmp_path / "letter.pdf"))
    pdf.setFont("IPAexGothic", 11)
    for i, line in enumerate(["給付金のお知らせ", "鈴木 一郎 様", "生年月日 昭和15年1月15日"]):
        pdf.drawString(72, 760 - 20 * i, line)
    pdf.showPage()
    pdf.save()
    report = scan([tmp_path / "letter.pdf"], index)
    f = report.files[0]
    assert (f.format, report.residents_matched) == ("pdf", 1)
    assert f.patterns["era_date"] == 1
    assert f.positions[0]["page"] == 1


def docx(paragraphs: list[str]) -> bytes:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", f'<w:document xmlns:w="{w}"><w:body>{body}</w:body></w:document>')
    return buffer.getvalue()


def test_docx_and_archives_inside_archives(index: FingerprintIndex, tmp_path: Path) -> None:
    (tmp_path / "minutes.docx").write_bytes(docx(["議事録", "田中 ヨシ子 氏（昭和50年9月30日生）より申出"]))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("deep/list.csv", "\n".join(f"{p['name']},{p['my_number'] or p['birth_date']}" for p in PEOPLE))
    with zipfile.ZipFile(tmp_path / "backup.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archived.docx", docx(["山田 花子", "1961年11月20日"]))
        z.writestr("old/inner.zip", inner.getvalue())
    report = scan([tmp_path / "minutes.docx", tmp_path / "backup.zip"], index)
    by_path = {Path(f.path).name if "!" not in f.path else f.path.split("!", 1)[1]: f for f in report.files}
    assert by_path["minutes.docx"].residents_matched == 1
    assert by_path["minutes.docx"].positions[0]["paragraph"] == 2
    assert by_path["archived.docx"].residents_matched == 1
    assert by_path["old/inner.zip!deep/list.csv"].residents_matched == 5
    assert report.residents_matched == 5


def zip_named_as_windows_does(names: dict[str, bytes], data: bytes) -> bytes:
    """A ZIP whose members' names are the given bytes with no UTF-8 flag: Explorer on a Japanese Windows
    writes CP932 so; Python's zipfile cannot write such a name, so each is put in place of a placeholder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for placeholder in names:
            z.writestr(placeholder, data)
    raw = buffer.getvalue()
    for placeholder, name in names.items():
        assert len(name) == len(placeholder)
        raw = raw.replace(placeholder.encode(), name)
    return raw


def test_an_archive_from_a_japanese_windows_names_its_files_as_they_were_named(
    index: FingerprintIndex, tmp_path: Path
) -> None:
    listed = "\n".join(f"{p['name']},{p['birth_date']},{p['address']}" for p in PEOPLE).encode()
    names = {
        "x" * 19: "給付金/住民一覧.csv".encode("cp932"),  # Explorer: CP932, no flag
        "y" * 23: "給付金/対象者.csv".encode(),  # Info-ZIP on Linux: UTF-8, no flag
        "z" * 8: "caf\xe9.csv".encode("cp437"),  # a Western tool: CP437, kept as read
    }
    (tmp_path / "stick.zip").write_bytes(zip_named_as_windows_does(names, listed))
    report = scan([tmp_path / "stick.zip"], index)
    paths = sorted(f.path.split("!", 1)[1] for f in report.files)
    assert paths == ["café.csv", "給付金/住民一覧.csv", "給付金/対象者.csv"]
    assert all(f.residents_matched == 5 for f in report.files)


def zip_crypto(name: str, data: bytes) -> bytes:
    """A ZIP whose one member carries the ZipCrypto flag, as a password-protected ZIP (PPAP) does."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.index(signature) + flags_at
        raw[at] |= 1
    return bytes(raw)


def test_an_email_is_read_with_its_attachments(index: FingerprintIndex, tmp_path: Path) -> None:
    """A list mailed to the call centre: the body in ISO-2022-JP, a CP932 CSV attached (base64, unreadable as
    text), a password-protected ZIP beside it, and a forwarded message with a DOCX inside."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "給付金 対象者一覧の送付"
    message["From"], message["To"] = "kyufu@city.example.jp", "center@vendor.example.jp"
    message.set_content(
        "対象者一覧を送付します。\n鈴木 一郎 様（昭和15年1月15日生）の件もお願いします。\n", charset="iso-2022-jp"
    )
    listed = "\r\n".join(f"{p['name']},{p['birth_date']},{p['address']}" for p in PEOPLE)
    message.add_attachment(listed.encode("cp932"), maintype="text", subtype="csv", filename="対象者一覧.csv")
    message.add_attachment(zip_crypto("一覧.csv", b"x"), maintype="application", subtype="zip", filename="一覧.zip")
    forwarded = EmailMessage()
    forwarded["Subject"] = "Fwd: 議事録"
    forwarded.set_content("転送します。")
    minutes = docx(["議事録", "田中 ヨシ子 氏（昭和50年9月30日生）より申出"])
    forwarded.add_attachment(minutes, maintype="application", subtype="octet-stream", filename="議事録.docx")
    message.add_attachment(forwarded)
    (tmp_path / "送付.eml").write_bytes(bytes(message))
    report = scan([tmp_path / "送付.eml"], index)
    found = {f.path.split("!", 1)[1]: (f.format, f.residents_matched, f.protected) for f in report.files}
    assert found == {
        "(本文).txt": ("text", 1, None),
        "対象者一覧.csv": ("csv", 5, None),
        "一覧.zip!一覧.csv": ("zip", 0, "ZIP-encrypted (weak: ZipCrypto or a guessable password)"),
        "attachment-3.eml!(本文).txt": ("text", 0, None),
        "attachment-3.eml!議事録.docx": ("docx", 1, None),
    }
    assert report.residents_matched == 5


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\0\0"


def outlook_message(body: dict[str, bytes], attachments: list[dict[str, bytes]]) -> dict[str, bytes]:
    """The streams of an Outlook .msg: its properties, its body's, each attachment's storage."""
    streams = {"__properties_version1.0": b"\0" * 32, "__substg1.0_0037001F": utf16("給付金 対象者一覧の送付")}
    streams |= body
    for number, attachment in enumerate(attachments):
        streams |= {f"__attach_version1.0_#{number:08X}/{name}": data for name, data in attachment.items()}
    return streams


def attached_message(streams: dict[str, bytes]) -> dict[str, bytes]:
    return {f"__substg1.0_3701000D/{name}": data for name, data in streams.items()}


def test_an_outlook_message_is_read_with_its_attachments(index: FingerprintIndex, tmp_path: Path) -> None:
    """The e-mail of the test above as Outlook saves it (.msg): a UTF-16 body, a CP932 CSV attached, a
    password-protected ZIP beside it, a forwarded message with a DOCX inside, and a workbook pasted in as an
    object, which is named as not read."""
    from tests.compound import compound_file

    listed = "\r\n".join(f"{p['name']},{p['birth_date']},{p['address']}" for p in PEOPLE)
    body = "対象者一覧を送付します。\r\n鈴木 一郎 様（昭和15年1月15日生）の件もお願いします。\r\n"
    minutes = docx(["議事録", "田中 ヨシ子 氏（昭和50年9月30日生）より申出"])
    forwarded = outlook_message(
        {"__substg1.0_1000001F": utf16("転送します。")},
        [{"__substg1.0_3707001F": utf16("議事録.docx"), "__substg1.0_37010102": minutes}],
    )
    streams = outlook_message(
        {"__substg1.0_1000001F": utf16(body)},
        [
            {"__substg1.0_3707001F": utf16("対象者一覧.csv"), "__substg1.0_37010102": listed.encode("cp932")},
            {"__substg1.0_3707001F": utf16("一覧.zip"), "__substg1.0_37010102": zip_crypto("一覧.csv", b"x")},
            {"__substg1.0_3707001F": utf16("Fwd: 議事録"), **attached_message(forwarded)},
            {"__substg1.0_3707001F": utf16("Book1"), "__substg1.0_3701000D/CONTENTS": b"\0" * 16},
        ],
    )
    (tmp_path / "送付.msg").write_bytes(compound_file(streams))
    report = scan([tmp_path / "送付.msg"], index)
    found = {f.path.split("!", 1)[1]: (f.format, f.residents_matched, f.protected or f.skipped) for f in report.files}
    assert found == {
        "(本文).txt": ("text", 1, None),
        "対象者一覧.csv": ("csv", 5, None),
        "一覧.zip!一覧.csv": ("zip", 0, "ZIP-encrypted (weak: ZipCrypto or a guessable password)"),
        "Fwd: 議事録.msg!(本文).txt": ("text", 0, None),
        "Fwd: 議事録.msg!議事録.docx": ("docx", 1, None),
        "Book1": ("ole2", 0, "object embedded in an Outlook message (OLE), not read"),
    }
    assert report.residents_matched == 5


def test_an_outlook_message_body_in_cp932_or_html_is_read(index: FingerprintIndex, tmp_path: Path) -> None:
    """Outlook keeps an 8-bit body in the message's code page (CP932 in Japan), an HTML mail's body as HTML,
    and a rich-text mail's body only as (compressed) RTF."""
    from tests.compound import compound_file

    line = "山田 太郎 様（昭和33年3月2日生）兵庫県尼崎市東七松町1丁目2-3"
    html_body = f"<html><body><p>{line.replace(' ', '&nbsp;')}</p></body></html>".encode("cp932")
    bodies = {
        "cp932.msg": {"__substg1.0_1000001E": line.encode("cp932") + b"\0"},
        "html.msg": {"__substg1.0_10130102": html_body},
        "rtf.msg": {"__substg1.0_10090102": uncompressed_rtf(cp932_rtf(line))},
    }
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(compound_file(outlook_message(body, [])))
    report = scan([tmp_path], index)
    found = {f.path.rsplit("/", 1)[1]: (f.residents_matched, f.skipped) for f in report.files}
    assert found == {
        "cp932.msg!(本文).txt": (1, None),
        "html.msg!(本文).txt": (1, None),
        "rtf.msg!(本文).rtf": (1, None),
    }


def cp932_rtf(text: str) -> bytes:
    """RTF as a Japanese word processor writes it: every character beyond ASCII as its CP932 bytes in hex."""
    escaped = "".join(c if c.isascii() else "".join(f"\\'{b:02x}" for b in c.encode("cp932")) for c in text)
    font = "\\'82\\'6c\\'82\\'72 \\'96\\'be\\'92\\'a9"  # ＭＳ 明朝, as Word names it in CP932
    head = f"{{\\rtf1\\ansi\\ansicpg932\\deff0{{\\fonttbl{{\\f0\\fnil\\fcharset128 {font};}}}}"
    return f"{head}{{\\*\\generator Riched20 10.0.19041}}\\pard\\f0 {escaped}\\par\r\n}}".encode("ascii")


def uncompressed_rtf(data: bytes) -> bytes:
    """PidTagRtfCompressed in its uncompressed form (MS-OXRTFCP: "MELA"), as some writers store it."""
    return struct.pack("<II4sI", len(data) + 12, len(data), b"MELA", 0) + data


def test_rtf_is_read_whatever_its_name(index: FingerprintIndex, tmp_path: Path) -> None:
    """Read as plain text, RTF written in Japan holds no Japanese: its kanji are escaped (\\'8e\\'52, or
    \\u23665 as LibreOffice writes them), and the file would pass as clean. Word saves RTF under .doc too."""
    line = "鈴木 一郎 様（昭和15年1月15日生）兵庫県尼崎市南塚口町3丁目4-5"
    (tmp_path / "申出.doc").write_bytes(cp932_rtf(line))
    saved = Path(__file__).parent / "data" / "minutes-libreoffice.rtf"  # the minutes of the .doc test, as RTF
    report = scan([tmp_path / "申出.doc", saved], index)
    assert [(f.format, f.residents_matched) for f in report.files] == [("rtf", 1), ("rtf", 3)]
    assert "\\'" in cp932_rtf(line).decode() and "\\u" in saved.read_text(encoding="ascii")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"{",
                b"}",
                b"\\",
                b"\\'8e",
                b"\\'5",
                b"\\u-3912",
                b"\\uc3",
                b"\\*",
                b"\\par ",
                b"\\fonttbl",
                b"x",
                b"\x82",
                b"\r\n",
                b"\\u55357\\u56832",
            ]
        ),
        max_size=30,
    )
)
def test_rtf_of_any_shape_gives_text_or_nothing(parts: list[bytes]) -> None:
    """Broken or hostile RTF (unbalanced groups, half escapes, lone surrogates) gives text, never an error."""
    from civicseal.dlp.rtf import rtf_text

    assert isinstance(rtf_text(b"{\\rtf1 " + b"".join(parts)), str)


def test_compressed_rtf_as_its_specification_gives_it() -> None:
    """The example of MS-OXRTFCP 4.1.1, literals and references to the primed dictionary."""
    from civicseal.dlp.rtf import decompress_rtf

    compressed = bytes.fromhex(
        "2d0000002b0000004c5a4675f1c5c7a703000a007263706731323542320af32068656c090020627705b06c647d0a800fa0"
    )
    assert decompress_rtf(compressed) == b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"


def test_an_outlook_message_saved_in_the_older_ansi_format_is_read(index: FingerprintIndex, tmp_path: Path) -> None:
    """Outlook 97–2002's format keeps every text 8-bit in the message's code page: a Japanese Outlook's body
    and attachment names in CP932."""
    from tests.compound import compound_file

    listed = "\r\n".join(f"{p['name']},{p['birth_date']},{p['address']}" for p in PEOPLE[:2])
    attachment = {"__substg1.0_3707001E": "対象者一覧.csv".encode("cp932") + b"\0"}
    attachment["__substg1.0_37010102"] = listed.encode("cp932")
    body = {"__substg1.0_1000001E": "一覧を送付します。".encode("cp932") + b"\0"}
    (tmp_path / "ansi.msg").write_bytes(compound_file(outlook_message(body, [attachment])))
    report = scan([tmp_path / "ansi.msg"], index)
    found = {f.path.split("!", 1)[1]: (f.format, f.residents_matched) for f in report.files}
    assert found == {"(本文).txt": ("text", 0), "対象者一覧.csv": ("csv", 2)}


def word_document(pieces: list[str | bytes], *, version: int = 0x00C1, flags: int = 0x0200) -> bytes:
    """A Word 97–2003 .doc: its text in pieces (a str stored as UTF-16LE, bytes as Word's 8-bit text), found
    through the piece table in the 1Table stream."""
    from tests.compound import compound_file

    fib = bytearray(32 + 2 + 28 + 2 + 22 * 4 + 2 + 93 * 8)
    struct.pack_into("<HHH", fib, 0, 0xA5EC, version, 0)
    struct.pack_into("<H", fib, 0x0A, flags)
    struct.pack_into("<H", fib, 32, 14)
    struct.pack_into("<H", fib, 32 + 2 + 28, 22)
    struct.pack_into("<H", fib, 32 + 2 + 28 + 2 + 22 * 4, 93)
    document, cps, descriptors = bytearray(fib), [0], []
    for piece in pieces:
        if isinstance(piece, str):
            descriptors.append(len(document))
            document += piece.encode("utf-16-le")
            cps.append(cps[-1] + len(piece))
        else:
            descriptors.append(len(document) * 2 | 0x40000000)
            document += piece
            cps.append(cps[-1] + len(piece))
    plc = struct.pack(f"<{len(cps)}I", *cps) + b"".join(struct.pack("<HIH", 0, fc, 0) for fc in descriptors)
    clx = b"\x01" + struct.pack("<h", 2) + b"\0\0" + b"\x02" + struct.pack("<I", len(plc)) + plc
    table = b"\0" * 8 + clx
    struct.pack_into("<II", document, 32 + 2 + 28 + 2 + 22 * 4 + 2 + 33 * 8, 8, len(clx))
    return compound_file({"WordDocument": bytes(document), "1Table": table})


def test_a_word_97_document_is_read(index: FingerprintIndex, tmp_path: Path) -> None:
    """A .doc of minutes with a table of residents (cells ending in Word's cell marks) and a hyperlink field:
    read from its piece table, an 8-bit piece and UTF-16 ones; a password-protected one is protected, and one
    of Word 95 is named as not read."""
    rows = "".join(f"{p['name']}\x07{p['birth_date']}\x07{p['address']}\x07\x07" for p in PEOPLE[:3])
    link = '\x13 HYPERLINK "https://city.example.jp/" \x14市のページ\x15'
    (tmp_path / "議事録.doc").write_bytes(word_document(["議事録\r", b"Agenda\r", rows, link + "\r"]))
    (tmp_path / "locked.doc").write_bytes(word_document(["山田 太郎\r"], flags=0x0300))
    (tmp_path / "old.doc").write_bytes(word_document(["山田 太郎\r"], version=0x0065))
    report = scan([tmp_path], index)
    found = {f.path.rsplit("/", 1)[1]: (f.format, f.residents_matched, f.protected or f.skipped) for f in report.files}
    assert found == {
        "locked.doc": ("office", 0, "Word 97–2003 password (weak: RC4 or XOR, broken without the password)"),
        "old.doc": ("doc", 0, "Word 6/95 document, not read: save it as .docx and scan it again"),
        "議事録.doc": ("doc", 3, None),
    }
    minutes = next(f for f in report.files if f.path.endswith("議事録.doc")).as_dict()
    assert minutes["elements"]["birth_date"] == 3  # a row's cells on one line: a birth date beside its name
    assert sorted({p["line"] for p in minutes["positions"]}) == [3, 4, 5]  # a line for each row


def test_a_word_97_document_saved_by_libreoffice_is_read(index: FingerprintIndex) -> None:
    """A .doc as a real writer saves it (LibreOffice 7.4, "MS Word 97", from minutes with a table of residents,
    one cell left empty): the fixture checks the reader against more than the tests' own writer."""
    report = scan([Path(__file__).parent / "data" / "minutes-libreoffice.doc"], index)
    assert [(f.format, f.residents_matched, f.skipped) for f in report.files] == [("doc", 3, None)]
    # a paragraph (line 2), the table's rows (lines 3 to 5): its rows end where their properties say, so the
    # row with an empty cell stays one line
    assert sorted({p["line"] for p in report.files[0].as_dict()["positions"]}) == [2, 4, 5]


def slides(blocks: list[str | bytes], *, encrypted: bool = False) -> bytes:
    """A PowerPoint 97–2003 file whose slide list holds ``blocks`` (a str as UTF-16 text, bytes as 8-bit text)."""
    from tests.compound import compound_file

    def record(kind: int, body: bytes, version: int = 0) -> bytes:
        return struct.pack("<HHI", version, kind, len(body)) + body

    atoms = b"".join(
        record(0x0F9F, b"\0" * 4) + (record(0x0FA0, b.encode("utf-16-le")) if isinstance(b, str) else record(0x0FA8, b))
        for b in blocks
    )
    document = record(0x03E8, record(0x03E9, b"\0" * 40) + record(0x0FF0, atoms, 0xF), 0xF)
    streams = {"PowerPoint Document": document, "Current User": b"\0" * 20}
    return compound_file(streams | ({"EncryptedSummary": b"\0" * 64} if encrypted else {}))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11775), st.integers(0, 255)), min_size=1, max_size=8))
def test_a_damaged_word_document_reads_or_is_named_damaged(changes: list[tuple[int, int]]) -> None:
    """A .doc with bytes changed anywhere (the FIB, the piece table, the paragraphs' pages): its text, or one of
    the errors the scanner reports as a damaged file, never another."""
    import olefile

    from civicseal.dlp.ole2 import NotRead, word_text
    from tests.compound import compound_file

    with olefile.OleFileIO(str(Path(__file__).parent / "data" / "minutes-libreoffice.doc")) as ole:
        streams = {"/".join(entry): ole.openstream(entry).read() for entry in ole.listdir()}
    document = bytearray(streams["WordDocument"])
    for at, value in changes:
        document[at % len(document)] = value
    with (
        olefile.OleFileIO(compound_file(streams | {"WordDocument": bytes(document)})) as ole,
        contextlib.suppress(ValueError, IndexError, struct.error, NotRead),
    ):
        assert isinstance(word_text(ole), str | None)


def test_a_powerpoint_97_file_is_read(index: FingerprintIndex, tmp_path: Path) -> None:
    """Slides of a briefing with a table of residents, each cell a text block of its own."""
    cells = [v for p in PEOPLE[3:] for v in (p["name"], p["birth_date"], p["address"])]
    (tmp_path / "説明資料.ppt").write_bytes(slides(["給付金のご案内\r対象者一覧", b"Agenda\x0bList", *cells]))
    report = scan([tmp_path], index)
    assert [(f.format, f.residents_matched, f.skipped) for f in report.files] == [("ppt", 2, None)]


def test_a_powerpoint_97_file_saved_by_libreoffice_is_read(index: FingerprintIndex) -> None:
    """Slides LibreOffice 7.4 saved as "MS PowerPoint 97" (its streams as written, but for the summary's 440 KB
    thumbnail): a resident in a text box, two in a table, found among the master slides' placeholder text."""
    report = scan([Path(__file__).parent / "data" / "brief-libreoffice.ppt"], index)
    assert [(f.format, f.residents_matched, f.skipped) for f in report.files] == [("ppt", 3, None)]


def test_opendocument_files_are_read_as_documents_not_archives(index: FingerprintIndex, tmp_path: Path) -> None:
    """LibreOffice's files (the minutes of the .doc test, and a list of three residents in Calc): one finding
    each, a table row on a line, not their XML parts one by one; a password-protected one is protected."""
    data = Path(__file__).parent / "data"
    manifest = '<manifest:manifest><manifest:file-entry manifest:full-path="content.xml"><manifest:encryption-data/>'
    with zipfile.ZipFile(tmp_path / "locked.odt", "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", bytes(range(256)))
        z.writestr("META-INF/manifest.xml", manifest + "</manifest:file-entry></manifest:manifest>")
    report = scan([data / "minutes-libreoffice.odt", data / "list-libreoffice.ods", tmp_path / "locked.odt"], index)
    found = {Path(f.path).name: (f.format, f.residents_matched, f.protected) for f in report.files}
    assert found == {
        "minutes-libreoffice.odt": ("odt", 3, None),
        "list-libreoffice.ods": ("ods", 3, None),
        "locked.odt": ("office", 0, "OpenDocument password (only as strong as the password chosen)"),
    }
    listed = next(f for f in report.files if f.path.endswith(".ods")).as_dict()
    assert sorted({p["line"] for p in listed["positions"]}) == [2, 3, 4]  # a line for each row


def test_an_excel_binary_workbook_is_named_as_one_file_not_read(index: FingerprintIndex, tmp_path: Path) -> None:
    """Excel offers its binary workbook for large sheets (a whole register's list): the scanner does not read
    BIFF12, so it names the workbook, with what to do, rather than listing its parts as unknown binaries; never
    clean."""
    name = PEOPLE[0]["name"]
    strings = (
        b"\x13" + bytes([5 + 2 * len(name)]) + b"\x00" + len(name).to_bytes(4, "little") + name.encode("utf-16-le")
    )
    with zipfile.ZipFile(tmp_path / "住民一覧.xlsb", "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.bin", b"\x83\x01\x00\x84\x01\x00")
        book.writestr("xl/sharedStrings.bin", strings)
    report = scan([tmp_path], index)
    assert [(Path(f.path).name, f.format, f.skipped) for f in report.files] == [("住民一覧.xlsb", "xlsb", XLSB_UNREAD)]
    assert report.summary().endswith("not vouched for: 1 file not read (see the list)")


def test_sealed_and_age_files_are_protected_not_findings(index: FingerprintIndex, tmp_path: Path) -> None:
    plaintext = "\n".join(",".join(r) for r in rows_of("name", "birth_date", "address")).encode()
    recipient = pyrage.x25519.Identity.generate().to_public()
    (tmp_path / "register.age").write_bytes(pyrage.encrypt(plaintext, [recipient]))
    with zipfile.ZipFile(tmp_path / "mailing.cseal", "w") as z:
        z.writestr("manifest.json", "{}")
        z.writestr("manifest.sig", b"\0" * 64)
        z.writestr("payload.age", pyrage.encrypt(plaintext, [recipient]))
    report = scan([tmp_path], index)
    assert {f.path.rsplit("/", 1)[1]: f.protected for f in report.files} == {
        "mailing.cseal": "sealed package",
        "register.age": "age-encrypted",
    }
    assert report.residents_matched == 0 and report.as_dict()["files_protected"] == 2


def test_patterns_in_text(index: FingerprintIndex, tmp_path: Path) -> None:
    other = my_number("98765432109")
    wrong = other[:11] + str((int(other[11]) + 1) % 10)
    (tmp_path / "notes.txt").write_text(
        f"番号 {other[:4]}-{other[4:8]}-{other[8:]} / 誤記 {wrong}\n"
        "電話 06-6489-1234、携帯 09012345678\n"
        "〒660-0881 令和4年6月1日 受付\n",
        encoding="utf-8",
    )
    patterns = scan([tmp_path / "notes.txt"], index).files[0].patterns
    assert patterns == {"my_number": 1, "phone": 2, "postcode": 1, "era_date": 1}


def test_an_address_split_from_its_katagaki_still_matches(index: FingerprintIndex, tmp_path: Path) -> None:
    """A mailing list keeps 住所 and 方書 (building and room) in two columns, or a letter on two lines: 田中 ヨシ子's
    address is registered whole, and her name with the street alone corroborates."""
    path = tmp_path / "宛名.csv"
    path.write_text("氏名,住所,方書\n田中 ヨシ子,兵庫県尼崎市武庫之荘1丁目10-8,コーポ武庫101\n", encoding="cp932")
    f = scan([path], index).files[0]
    assert (f.residents_matched, f.elements["address"], f.uncorroborated["name"]) == (1, 1, 0)

    letter = tmp_path / "letter.txt"
    letter.write_text("〒661-0035\n兵庫県尼崎市武庫之荘1丁目10-8\nコーポ武庫101\n田中 ヨシ子 様\n", encoding="utf-8")
    f = scan([letter], index).files[0]
    # the street and the whole address start at one place: one address found there, corroborated by the name
    assert (f.residents_matched, f.elements["address"], sum(f.uncorroborated.values())) == (1, 1, 0)


def test_dates_as_spreadsheets_and_forms_write_them_still_match(index: FingerprintIndex, tmp_path: Path) -> None:
    """A date cell exported with its midnight, a dotted date and an abbreviated era are birth dates too."""
    path = tmp_path / "list.csv"
    path.write_text(
        "氏名,生年月日\n山田 太郎,1958/3/2 0:00\n山田 花子,1961.11.20\n鈴木 一郎,昭15.1.15\n", encoding="cp932"
    )
    f = scan([path], index).files[0]
    assert (f.residents_matched, f.elements["birth_date"]) == (3, 3)


def test_a_street_without_a_building_after_it_is_no_element(index: FingerprintIndex, tmp_path: Path) -> None:
    """Only a building and room after a house number make a street of their own: 兵庫県 alone never does."""
    from civicseal.dlp.index import streets

    addresses = ["兵庫県尼崎市武庫之荘1丁目10-8 コーポ武庫101", "兵庫県 尼崎市 昭和通2丁目1番1号 ハイツ 3号室",
                 "兵庫県尼崎市東七松町1丁目2-3", "尼崎市昭和通二丁目 ハイツ", "尼崎市昭和通2丁目 1-1"]  # fmt: skip
    assert streets(addresses) == ([0, 1], ["兵庫県尼崎市武庫之荘1丁目10-8", "兵庫県 尼崎市 昭和通2丁目1番1号"])
    path = tmp_path / "list.csv"
    path.write_text("氏名,住所\n田中 ヨシ子,兵庫県\n", encoding="utf-8")
    assert scan([path], index).files[0].residents_matched == 0


def test_a_bank_account_row_corroborates_its_holder(index: FingerprintIndex, tmp_path: Path) -> None:
    path = tmp_path / "transfers.csv"
    path.write_text("銀行,支店,種別,口座番号,名義\n1,1,1,1234567,ﾔﾏﾀﾞ ﾀﾛｳ\n", encoding="cp932")
    f = scan([path], index).files[0]
    assert f.residents_matched == 1 and f.elements["bank_account"] == 1


def test_a_small_memory_gives_the_same_answer(index: FingerprintIndex, tmp_path: Path) -> None:
    path = write_table(tmp_path / "big.csv", rows_of("name", "birth_date", "address") * 50)
    assert scan([path], index, memo_limit=3).as_dict() == scan([path], index).as_dict()


def test_twelve_digits_are_remembered_by_their_integer_as_by_their_text(index: FingerprintIndex) -> None:
    """My Numbers of the register among numbers that share their low bits (which must not crowd one slot of
    the memory), looked up twice so the second answer comes from memory; a tiny memory is emptied meanwhile."""
    values = [p["my_number"] for p in PEOPLE if p["my_number"]] + [f"{n << 20:012d}" for n in range(1, 400)]
    for limit in (3, 10_000):
        matcher = Matcher(index, limit)
        by_text = matcher.strings(values)
        assert (by_text[: len(values) - 399] >= 0).all() and (by_text[len(values) - 399 :] == -1).all()
        for _ in range(2):
            assert (matcher.digits(pa.array(values)) == by_text).all()


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
def test_a_large_file_scanned_in_pieces_gives_the_same_answer(
    index: FingerprintIndex, tmp_path: Path, encoding: str
) -> None:
    """Pieces of a few hundred bytes: cuts fall beside quoted values that span lines, ragged rows (a piece
    may start with one) and blank lines."""
    rows = rows_of("name", "birth_date", "address") * 6
    for i in range(0, len(rows), 4):
        head, tail = rows[i][2][:8], rows[i][2][8:]
        rows[i] = [*rows[i][:2], f"{head}\n{tail}"]  # an address wrapped onto the next line, in quotes
    for i in range(3, len(rows), 5):
        rows[i] = rows[i][:1]  # a name alone, two fields short: read as text
    path = write_table(tmp_path / "big.csv", rows, encoding=encoding)
    with path.open("a", encoding=encoding) as f:
        f.write("\n")
        f.writelines(f"{p['name']},{p['birth_date']},{p['address']}\n" for p in PEOPLE)
    whole = scan([path], index).as_dict()
    assert whole["residents_matched"] == 5 and whole["files"][0]["format"] == "csv"
    assert whole["files"][0]["uncorroborated"]["name"] > 0  # the ragged rows were read
    assert scan([path], index, piece_bytes=300).as_dict() == whole


# ------------------------------------------------------------------------------------ export and CLI


def test_cli_scan_json_and_fail_at(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _register(home, tmp_path)
    assert run(["dlp", "index", "--home", str(home.path), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["residents"] == 5 and built["export"] is None
    drive = tmp_path / "usb"
    drive.mkdir()
    write_table(drive / "copy.csv", rows_of("name", "birth_date", "address"), encoding="cp932")
    code = run(["scan", str(drive), "--home", str(home.path), "--json", "--fail-at", "5"])
    out = capsys.readouterr().out
    assert code == 3
    result = json.loads(out)
    assert result["residents_matched"] == 5 and result["files_with_residents"] == 1
    assert "山田" not in out and "1958" not in out  # counts and positions, never values
    assert run(["scan", str(drive), "--home", str(home.path), "--fail-at", "6"]) == 0
    assert "1 file under" in capsys.readouterr().out


def test_cli_scan_lists_files_whole_on_a_narrow_terminal_and_tabulates_them_on_a_wide_one(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's path is what the officer must find on the drive. At 80 columns a table cut every column to a
    few letters (`off…` for office): each file is listed, its path whole, then what it holds. From 120 columns
    the files are a table, the path folding onto more lines of its column, never cut short."""
    from civicseal.cli.output import console

    _register(home, tmp_path)
    assert run(["dlp", "index", "--home", str(home.path), "--json"]) == 0
    capsys.readouterr()
    folder = tmp_path / "usb" / "福祉課" / "臨時特別給付金" / "コールセンター送付用"
    folder.mkdir(parents=True)
    listed = rows_of("name", "birth_date", "address")
    path = write_table(folder / "住民税非課税世帯一覧_令和4年6月分_最終版.csv", listed, encoding="cp932")
    (folder / "旧一覧.doc").write_bytes(word_document(["山田 太郎\r"], flags=0x0300))
    scan_it = ["scan", str(tmp_path / "usb"), "--home", str(home.path)]

    assert run(scan_it) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80
    assert str(path) in "".join(lines)  # folded at the edge, never cut
    assert any(line.startswith("  csv (cp932) · residents 5 · elements (corroborated) name 5,") for line in lines)
    assert any(line.startswith("  office · Word 97–2003 password (weak: RC4 or XOR,") for line in lines)

    monkeypatch.setattr(console, "width", 160)
    assert run(scan_it) == 0
    out = capsys.readouterr().out
    cells = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 2]
    assert str(path) in "".join(cells)  # the path's pieces, line after line of its column
    assert "│ csv (cp932) │" in out


def test_exported_index_opens_at_a_scanning_station(home: Home, tmp_path: Path) -> None:
    _register(home, tmp_path)
    build_index(home, now=NOW)
    station = tmp_path / "station"
    station.mkdir()
    identity = station / "station.key"
    add_recipient(home.engine, "station", keygen(identity), now=NOW, actor="os:test")
    add_trusted(station, home.config.issuer, format_public_key(load_city_keys(home.keys).signing.public_key()))
    sealed = tmp_path / "index.cseal"
    exported = export_index(home, sealed, "station")
    assert exported.residents == 5
    with pytest.raises(DlpError, match="exists"):
        export_index(home, sealed, "station")
    drive = tmp_path / "usb"
    drive.mkdir()
    write_table(drive / "copy.csv", rows_of("name_kana", "birth_date", "address"))
    code = run(["scan", str(drive), "--index", str(sealed), "--identity", str(identity), "--home", str(station)])
    assert code == 0
    from civicseal.dlp.index import open_exported_index

    opened = open_exported_index(sealed, trust_home=station, identity_file=identity)
    assert scan([drive], opened).residents_matched == 5
    # The station's own scan of the package reports it as protected, not as a finding.
    assert scan([sealed], opened).files[0].protected == "sealed package"
