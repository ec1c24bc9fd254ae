"""Property: whatever is done to a valid register — a cell, a row or raw bytes changed — the import either
succeeds or refuses with ``file:line: column: rule`` (or ``file: rule``) lines and writes nothing. Never an
internal error. Bounded: a few dozen examples per store."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicseal.register.columns import Kind, english_header
from civicseal.register.importer import ImportRefused, import_register
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.test_import import counts

NOW = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
ROW_RULE = re.compile(r"[^:/]+:[0-9]+: [^:]+: .+")
FILE_RULE = re.compile(r"[^:/]+: .+")

ADDRESS = "兵庫県尼崎市昭和通2丁目1-1"
TSUKAGUCHI = "兵庫県尼崎市塚口本町1-2-3"
RESIDENTS = [
    ["R1", "H1", "世帯主", "尼崎 太郎", "ｱﾏｶﾞｻｷ ﾀﾛｳ", "男", "S45.3.1", "660-0881", "兵庫県尼崎市昭和通２丁目１−１",
     "", "", "", ""],
    ["R2", "H1", "妻（未届）", "尼崎 花子", "あまがさき はなこ", "2", "1972/4/5", "6600881", ADDRESS,
     "令和元年5月1日", "", "", ""],
    ["R3", "H1", "子の妻", "尼崎 由美", "アマガサキ ユミ", "F", "2000-01-02", "660-0881", ADDRESS, "", "", "", ""],
    ["R4", "H2", "head", "髙橋 一郎", "タカハシ イチロウ", "1", "1950-06-07", "661-0001", TSUKAGUCHI, "", "", "", ""],
    ["R5", "H2", "妻の母", "髙橋 トメ", "タカハシ トメ", "2", "昭和5年1月1日", "661-0001", TSUKAGUCHI,
     "", "", "2023-01-01", ""],
]  # fmt: skip
TAX = [
    ["R1", "令和4年度", "課税", "1,234,567", ""],
    ["R2", "2022", "非課税", "0", "R1"],
    ["R4", "R4", "exempt", "-50,000", ""],
]
ACCOUNTS = [["H1", "1", "1", "普通", "1234", "ｱﾏｶﾞｻｷ ﾀﾛｳ"], ["H2", "0005", "001", "1", "7654321", "タカハシ イチロウ"]]
FILES = {Kind.RESIDENTS: RESIDENTS, Kind.TAX: TAX, Kind.ACCOUNTS: ACCOUNTS}

cells = st.one_of(
    st.sampled_from(
        ["", " ", "　", "\t", "ｶﾞ" * 60, "尼" * 201, "9998", "0", "-1", "令和0年1月1日", "R99.13.40", '"', "a\nb"]
    ),
    st.text(max_size=12),
    st.text(alphabet="0123456789-/.年月日令和平成昭和ｱｲｳｴｵｶﾞあいう ー－", max_size=12),
)


@st.composite
def mutated_register(draw: st.DrawFn) -> dict[str, bytes]:
    """The three files, one of them changed in one of three ways, each written UTF-8 or CP932."""
    tables = {kind: [english_header(kind)] + [list(row) for row in rows] for kind, rows in FILES.items()}
    target = draw(st.sampled_from(list(Kind)))
    table = tables[target]
    how = draw(st.sampled_from(["cell", "row", "bytes"]))
    if how == "cell":
        row = draw(st.integers(0, len(table) - 1))
        column = draw(st.integers(0, len(table[row]) - 1))
        table[row][column] = draw(cells)
    elif how == "row":
        row = draw(st.integers(1, len(table) - 1))
        action = draw(st.sampled_from(["drop", "double", "widen", "narrow", "blank"]))
        if action == "drop":
            del table[row]
        elif action == "double":
            table.insert(row, list(table[row]))
        elif action == "widen":
            table[row].append(draw(cells))
        elif action == "narrow":
            table[row].pop()
        else:
            table[row] = []
    files: dict[str, bytes] = {}
    for kind, rows in tables.items():
        text = "".join(",".join(_quote(c) for c in row) + "\r\n" for row in rows)
        encoding = draw(st.sampled_from(["utf-8", "cp932"]))
        files[f"{kind}.csv"] = text.encode(encoding, errors="replace")
    if how == "bytes":
        name = f"{target}.csv"
        data = bytearray(files[name])
        for _ in range(draw(st.integers(1, 3))):
            position = draw(st.integers(0, len(data)))
            change = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
            if change == "flip" and position < len(data):
                data[position] = draw(st.integers(0, 255))
            elif change == "insert":
                data[position:position] = draw(st.binary(min_size=1, max_size=4))
            elif change == "delete":
                del data[position : position + draw(st.integers(1, 8))]
            else:
                del data[position:]
        files[name] = bytes(data)
    return files


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n') else cell


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=mutated_register())
def test_any_mutation_imports_cleanly_or_is_refused_by_rule(home: Home, cipher: FieldCipher, files: dict) -> None:
    before = counts(home)
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for name, data in files.items():
            path = Path(directory) / name
            path.write_bytes(data)
            paths.append(path)
        try:
            import_register(home.engine, cipher, paths, now=NOW)
        except ImportRefused as refused:
            assert refused.problems
            for problem in refused.problems:
                line = str(problem)
                assert (ROW_RULE if problem.line else FILE_RULE).fullmatch(line), line
            assert counts(home) == before
            return
    assert counts(home)["audit_log"] == before["audit_log"] + 1
