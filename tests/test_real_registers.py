"""Registers shaped like a real city's export (issue 8): real 続柄 words, and every broken input refused as
``file:line: column: rule`` with nothing written, never an internal error — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from civicseal.cli import run
from civicseal.register.errors import RegisterError
from civicseal.register.importer import RejectsEncoding
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
