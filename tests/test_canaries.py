"""Canaries no one can single out (DESIGN, "Canaries (revised)"), traced by any field; on SQLite and PostgreSQL.

The adversary holds two or three packages sealed for one recipient, opened as the recipient opens them,
and ranks each row by every single-column and cross-package tell we could think of. For each tell the
canaries' rank percentiles must look like draws from the uniform distribution: a bounded check (mean
and top-decile count against fixed limits) on fixed seeds, so it never flakes. An oracle tell shows the
check has the power to catch a tell that works.
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from civicseal import cseal as fmt
from civicseal.custody.service import Event, record_event
from civicseal.incident.notify import addressees
from civicseal.incident.report import build_report
from civicseal.incident.service import record_lost_event
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.register.synth import residential_towns
from civicseal.seal.canaries import default_addresses
from civicseal.seal.open import open_sealed
from civicseal.seal.service import SealRequest, seal
from civicseal.seal.trace import trace
from civicseal.store.home import Home, default_config
from tests.cities import NOW, PROGRAMME, entitled_city

RECIPIENTS = 8
Row = dict[str, object]


@dataclass
class Holdings:
    """What one recipient holds: mailing packages before and after the letters went out, and a contact package."""

    recipient: str
    first_id: str
    first: list[Row]  # confirmation-mailing, before anyone was notified
    second: list[Row]  # confirmation-mailing, after notification, confirmations and a few declines
    contact: list[Row]  # contact-centre-offline, at the same time as the second


def _open(home: Home, tmp_path: Path, recipient: str, identity: Path, purpose: str, seed: int) -> tuple[str, list[Row]]:
    out = tmp_path / f"{recipient}-{purpose}-{seed}"
    request = SealRequest(PROGRAMME, purpose, recipient, out.with_suffix(".cseal"), mode=fmt.Mode.RECIPIENT)
    summary = seal(home, request, now=NOW, rng=random.Random(seed))
    opened = out.with_suffix(".parquet")
    open_sealed(Path(summary.out), trust_home=home.path, out=opened, identity_file=identity, now=NOW)
    return summary.package_id, pq.read_table(opened).to_pylist()


def _move_on(home: Home, handed_over: str) -> None:
    """The letters go out (every household notified); a third confirm and a few decline, as between mailings."""
    record_event(home.engine, handed_over, Event.HANDED_OVER, holder="print shop", at=NOW, now=NOW)
    with home.engine.begin() as conn:
        ids = sorted(conn.execute(text("SELECT id FROM entitlements WHERE status = 'notified'")).scalars())
        rng = random.Random(3)
        confirmed = rng.sample(ids, len(ids) // 3)
        declined = rng.sample(sorted(set(ids) - set(confirmed)), 12)
        for status, chosen in (("confirmed", confirmed), ("declined", declined)):
            conn.execute(
                text("UPDATE entitlements SET status = :s WHERE id = :i"), [{"s": status, "i": i} for i in chosen]
            )


ADDRESS_SEED = 1


@pytest.fixture
def holdings(home: Home, tmp_path: Path) -> Iterator[tuple[Home, list[Holdings], set[str]]]:
    # the canary addresses `init` drew at random, drawn again from a fixed seed so that every run is the same
    home.write_config(
        default_config(home.config.issuer, canary_addresses=default_addresses(random.Random(ADDRESS_SEED)))
    )
    home = Home(home.path)
    entitled_city(home, tmp_path)
    keys = []
    for n in range(RECIPIENTS):
        name = f"contractor-{n}"
        identity = tmp_path / f"{name}.key"
        add_recipient(home.engine, name, keygen(identity), now=NOW, actor="os:test")
        keys.append((name, identity))
    firsts = [_open(home, tmp_path, name, key, "confirmation-mailing", 100 + n) for n, (name, key) in enumerate(keys)]
    _move_on(home, firsts[0][0])
    held = [
        Holdings(
            name,
            *firsts[n],
            _open(home, tmp_path, name, key, "confirmation-mailing", 200 + n)[1],
            _open(home, tmp_path, name, key, "contact-centre-offline", 300 + n)[1],
        )
        for n, (name, key) in enumerate(keys)
    ]
    with home.engine.connect() as conn:
        canaries = set(conn.execute(text("SELECT reference_number FROM canary_households")).scalars())
    yield home, held, canaries
    home.engine.dispose()


# --- the adversary's tells: a score per row, higher = more suspicious -------------------------------------


def _rarity(key: Callable[[Row], object]) -> Callable[[list[Row], list[Row]], list[float]]:
    """Rare values are suspicious: score = minus how many rows of the package share the row's value."""

    def score(rows: list[Row], other: list[Row]) -> list[float]:
        counts = Counter(key(r) for r in rows)
        return [-counts[key(r)] for r in rows]

    return score


def _absent_from_other(rows: list[Row], other: list[Row]) -> list[float]:
    """Reference numbers in one package and not the other (how fresh per-package canaries were found)."""
    theirs = {r["reference_number"] for r in other}
    return [float(r["reference_number"] not in theirs) for r in rows]


def _person_absent_from_other(rows: list[Row], other: list[Row]) -> list[float]:
    theirs = {(r.get("head_name_kana"), r.get("address")) for r in other}
    return [float((r.get("head_name_kana"), r.get("address")) not in theirs) for r in rows]


def _out_of_order(rows: list[Row], other: list[Row]) -> list[float]:
    """Rows are written in reference-number order: a row out of place was put there."""
    rank = {ref: n for n, ref in enumerate(sorted(str(r["reference_number"]) for r in rows))}
    return [abs(n - rank[str(r["reference_number"])]) for n, r in enumerate(rows)]


def _returns_address(rows: list[Row], other: list[Row]) -> list[float]:
    return [float(bool(re.search("担当|個人情報|市役所|係", str(r["address"])))) for r in rows]


def _age_outlier(rows: list[Row], other: list[Row]) -> list[float]:
    ages = [2022 - int(str(r["head_birth_date"])[:4]) for r in rows]
    mean = sum(ages) / len(ages)
    return [abs(a - mean) for a in ages]


def _edge(rows: list[Row], other: list[Row]) -> list[float]:
    return [-min(n, len(rows) - 1 - n) for n in range(len(rows))]


def _status_changed(rows: list[Row], other: list[Row]) -> list[float]:
    """A status that differs from the one in the other package, or moved backwards."""
    before = {r["reference_number"]: r["status"] for r in other if "status" in r}
    return [float(before.get(r["reference_number"], r["status"]) != r["status"]) for r in rows]


def _town(row: Row) -> str:
    return re.sub(r"[0-9].*$", "", str(row["address"]))


MAILING_TELLS: dict[str, Callable[[list[Row], list[Row]], list[float]]] = {
    "name frequency": _rarity(lambda r: r["head_name"]),
    "kana frequency": _rarity(lambda r: r["head_name_kana"]),
    "surname frequency": _rarity(lambda r: str(r["head_name"]).split(" ")[0]),
    "given name frequency": _rarity(lambda r: str(r["head_name"]).split(" ")[-1]),
    "address uniqueness": _rarity(lambda r: r["address"]),
    "town frequency": _rarity(_town),
    "postcode frequency": _rarity(lambda r: r["postcode"]),
    "postcode and town together": _rarity(lambda r: (r["postcode"], _town(r))),
    "address form": _rarity(lambda r: re.sub(r"[0-9]+", "9", str(r["address"]).removeprefix(_town(r)))),
    "address length": _rarity(lambda r: len(str(r["address"]))),
    "returns address": _returns_address,
    "reference first digits": _rarity(lambda r: str(r["reference_number"])[:2]),
    "reference not in the other package": _absent_from_other,
    "person not in the other package": _person_absent_from_other,
    "position out of order": _out_of_order,
    "position at the edges": _edge,
}
CONTACT_TELLS: dict[str, Callable[[list[Row], list[Row]], list[float]]] = {
    "status frequency": _rarity(lambda r: r["status"]),
    "birth date frequency": _rarity(lambda r: r["head_birth_date"]),
    "birth year frequency": _rarity(lambda r: str(r["head_birth_date"])[:4]),
    "birth month and day": _rarity(lambda r: str(r["head_birth_date"])[5:]),
    "age far from the mean": _age_outlier,
    "kana frequency (contact)": _rarity(lambda r: r["head_name_kana"]),
    "reference not in the mailing package": _absent_from_other,
    "status unlike the mailing era": _status_changed,
}


def _percentiles(scores: list[float], rows: list[Row], canaries: set[str]) -> list[float]:
    """Each canary's rank among the package's rows by score, 0 (least suspicious) to 1; ties share the middle."""
    out = []
    for score, row in zip(scores, rows, strict=True):
        if row["reference_number"] in canaries:
            below = sum(1 for s in scores if s < score)
            tied = sum(1 for s in scores if s == score) - 1
            out.append((below + tied / 2) / (len(scores) - 1))
    return out


def _top_decile_limit(n: int, p: float = 0.1, alpha: float = 1e-3) -> int:
    """The smallest count that n fair draws reach in the top decile with probability below alpha."""
    tail = 1.0
    for k in range(n + 1):
        if tail < alpha:
            return k
        tail -= math.comb(n, k) * p**k * (1 - p) ** (n - k)
    return n + 1


def _judge(percentiles: list[float], distinct: int) -> tuple[float, int, float, int]:
    """(mean percentile, canaries in their package's top decile, mean limit, top-decile limit).

    A canary appears in several packages, so the limits count distinct canaries, not appearances.
    """
    mean = sum(percentiles) / len(percentiles)
    top = sum(1 for p in percentiles if p >= 0.9) * distinct / len(percentiles)
    return mean, round(top), 0.5 + 4 * math.sqrt(1 / 12 / distinct), _top_decile_limit(distinct)


def _scores(held: list[Holdings], canaries: set[str]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for h in held:
        for name, tell in MAILING_TELLS.items():
            for rows, other in ((h.first, h.second), (h.second, h.first)):
                found.setdefault(name, []).extend(_percentiles(tell(rows, other), rows, canaries))
        for name, tell in CONTACT_TELLS.items():
            found.setdefault(name, []).extend(_percentiles(tell(h.contact, h.second), h.contact, canaries))
    return found


def test_no_single_column_or_cross_package_tell_finds_canaries_better_than_chance(holdings) -> None:
    _home, held, canaries = holdings
    assert all(len(h.first) == len(h.second) + 12 for h in held)  # the declined households left, nothing else
    distinct = len(canaries)
    assert distinct == 3 * RECIPIENTS
    for name, percentiles in _scores(held, canaries).items():
        mean, top, mean_limit, top_limit = _judge(percentiles, distinct)
        assert mean < mean_limit and top < top_limit, f"{name}: mean percentile {mean:.2f}, {top} in the top decile"
    # the check has teeth: a tell that does single canaries out fails it
    oracle = [
        p
        for h in held
        for p in _percentiles([float(r["reference_number"] in canaries) for r in h.first], h.first, canaries)
    ]
    mean, top, mean_limit, top_limit = _judge(oracle, distinct)
    assert mean >= mean_limit and top >= top_limit


def test_a_recipient_keeps_its_canaries_and_they_follow_the_real_rows(holdings) -> None:
    home, held, canaries = holdings
    for h in held:
        mine = [
            {r["reference_number"] for r in rows if r["reference_number"] in canaries}
            for rows in (h.first, h.second, h.contact)
        ]
        assert mine[0] == mine[1] == mine[2] and len(mine[0]) == 3  # the same canaries in every package
        first = {r["reference_number"]: r for r in h.first}
        for row in h.second:  # the same name and address in both mailings, as a real household keeps them
            if row["reference_number"] in mine[0]:
                before = first[row["reference_number"]]
                assert (row["head_name"], row["address"]) == (before["head_name"], before["address"])
        # statuses: drawn among the real rows' (notified or confirmed by now), never back to eligible
        statuses = {r["status"] for r in h.contact if r["reference_number"] in canaries}
        assert statuses <= {"notified", "confirmed"}
    others = [{r["reference_number"] for r in h.first} & canaries for h in held]
    assert all(not (a & b) for n, a in enumerate(others) for b in others[n + 1 :])  # each recipient its own
    with home.engine.connect() as conn:
        kinds = set(
            conn.execute(
                text(
                    "SELECT kind FROM reference_numbers"
                    " WHERE number IN (SELECT reference_number FROM canary_households)"
                )
            ).scalars()
        )
        addresses = list(conn.execute(text("SELECT address FROM canary_households")).scalars())
    assert kinds == {"canary"}
    configured = {a.address for a in home.config.canary_addresses}
    assert set(addresses) <= configured


def test_names_and_addresses_alone_trace_the_recipient(holdings, tmp_path: Path) -> None:
    home, held, canaries = holdings
    victim = held[5]
    leak = tmp_path / "names.csv"  # what someone copied: names and addresses, no pseudonym, no reference
    leak.write_text(
        "\n".join(f"{r['head_name']},{r['address']}" for r in victim.second), encoding="cp932", errors="replace"
    )
    found = trace(home.engine, [leak])
    assert found.recipients[0].recipient == victim.recipient
    assert found.recipients[0].verdict == "came from this recipient"
    assert found.recipients[0].canaries == 3 and "address" in found.recipients[0].fields
    assert all(r.canaries == 0 for r in found.recipients[1:])
    # kana beside a birth date in one row, as the contact centre's list has them, written in the era style
    lines = []
    for r in victim.contact:
        born = date.fromisoformat(str(r["head_birth_date"]))
        lines.append(f"{str(r['head_name_kana']).replace(' ', '　')}\t{born.year}年{born.month}月{born.day}日")
    leak.write_text("\n".join(lines), encoding="utf-8")
    found = trace(home.engine, [leak])
    assert [r.recipient for r in found.recipients if r.canaries] == [victim.recipient]
    assert found.recipients[0].fields == ("birth_date", "name_kana")
    # a register of real residents only names no recipient, however many names it shares with canaries
    real = tmp_path / "real.csv"
    real.write_text(
        "\n".join(f"{r['head_name']},{r['postcode']}" for r in victim.second if r["reference_number"] not in canaries),
        encoding="utf-8",
    )
    assert all(r.canaries == 0 for r in trace(home.engine, [real]).recipients)


def test_canaries_are_in_no_count_and_no_letter(holdings) -> None:
    home, held, canaries = holdings
    with home.engine.connect() as conn:
        package_id = held[0].first_id
        records, carried = conn.execute(
            text("SELECT records, canaries FROM packages WHERE id = :p"), {"p": package_id}
        ).one()
        statuses = dict(conn.execute(text("SELECT status, COUNT(*) FROM entitlements GROUP BY status")).all())
        letters = list(addressees(conn, package_id))
        members = conn.execute(
            text("SELECT COUNT(*) FROM package_members WHERE package_id = :p"), {"p": package_id}
        ).scalar_one()
    assert carried == 3 and len(held[0].first) == records + carried
    assert sum(statuses.values()) == records  # handing it over notified its households, and no canary
    assert len(letters) == records and not {a.reference_number for a in letters} & canaries
    loss = record_lost_event(home, package_id, holder="print shop", at=NOW, now=NOW)
    report = build_report(home, loss.incident_id, now=NOW)
    assert report.content.residents_affected == members
    assert report.content.households_affected == records


def test_init_writes_twenty_distinct_city_addresses(home: Home) -> None:
    listed = tomllib.loads(home.config_path.read_text(encoding="utf-8"))["canary_addresses"]
    towns = {t.name: t.postcode for t in residential_towns()}
    assert len({a["address"] for a in listed}) >= 20
    for entry in listed:
        match = re.fullmatch(r"兵庫県尼崎市(\D+?)(?:([1-9])丁目)?([0-9]+)-([0-9]+)", entry["address"])
        assert match is not None and towns[match[1]] == entry["postcode"]


def test_migration_folds_per_package_canaries_into_households(home: Home, tmp_path: Path) -> None:
    """A store from before issue 10 keeps tracing its packages: each old canary becomes its recipient's."""
    from alembic import command

    from civicseal.programme.service import create_programme
    from civicseal.store.migrate import alembic_config

    create_programme(home.engine, PROGRAMME, reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000)
    add_recipient(home.engine, "printshop", keygen(tmp_path / "p.key"), now=NOW, actor="os:test")
    command.downgrade(alembic_config(home.engine), "0006")
    with home.engine.begin() as conn:
        conn.execute(text("INSERT INTO reference_numbers (number, kind) VALUES ('123456789018', 'canary')"))
        conn.execute(
            text(
                "INSERT INTO packages (id, purpose, programme_id, recipient_id, mode, created_at, expires_at, manifest,"
                " payload_sha256, payload_format, fields, records, canaries, pseudonym_key_enc)"
                " VALUES ('pkg_old', 'confirmation-mailing', 1, 1, 'tethered', :now, :now, :b, :h, 'parquet',"
                " 'pseudonym', 1, 1, :b)"
            ),
            {"now": NOW, "b": b"{}", "h": "0" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO canaries (package_id, pseudonym, reference_number, name, name_kana, birth_date)"
                " VALUES ('pkg_old', 'aaaaaaaaaaaaaaaa', '123456789018', '山田 花子', 'ヤマダ ハナコ', '1950-01-02')"
            )
        )
    command.upgrade(alembic_config(home.engine), "head")
    leak = tmp_path / "leak.txt"
    leak.write_text("ヤマダ ハナコ 1950-01-02\n", encoding="utf-8")
    found = trace(home.engine, [leak])
    assert [(r.recipient, r.canaries) for r in found.recipients] == [("printshop", 1)]
    assert found.packages[0].package_id == "pkg_old"
    command.downgrade(alembic_config(home.engine), "0006")  # and back: the old table gets its row again
    with home.engine.connect() as conn:
        assert conn.execute(text("SELECT package_id, reference_number FROM canaries")).all() == [
            ("pkg_old", "123456789018")
        ]


def test_a_file_holding_the_screens_separators_is_still_judged_row_by_row(holdings, tmp_path: Path) -> None:
    """trace screens a chunk of rows at once, joined by control characters; a file that holds them itself
    must find what it finds otherwise."""
    home, held, _ = holdings
    victim = held[5]
    leak = tmp_path / "odd.csv"
    leak.write_text("\n".join(f"{r['head_name']},{r['address']},\x01" for r in victim.second), encoding="utf-8")
    found = trace(home.engine, [leak])
    assert found.recipients[0].recipient == victim.recipient
    assert found.recipients[0].canaries == 3 and "address" in found.recipients[0].fields
    assert all(r.canaries == 0 for r in found.recipients[1:])
