"""Canary households: synthetic households that name the recipient a leaked copy came from.

A canary is only useful if nobody holding packages can tell it from a real household, so every column
is drawn the way real rows are (DESIGN, "Canaries (revised)"):

* each recipient has its own canary households per programme, created at its first package and carried
  in every later one: comparing two packages to one recipient shows the same canaries on both sides, as
  it shows the same real households. (Per programme, because a real household's reference number is
  per entitlement: a canary shared by two programmes would be the one household the two have in common.)
* names and kana as the synthetic city names its residents (weighted surnames, given names that suit the
  age and sex); birth date, sex and amount from a real row of the package, the birth date moved by up to
  half a year;
* status: each canary follows a real household of the package drawn at random (its twin), so its status
  is distributed as the real rows' are and moves only when and as real ones move (a canary redrawn at
  every package would drift ahead, or move back, and stand out). When the twin leaves the selection, a
  new twin is drawn among the rows whose status the canary's can still reach;
* addresses from the home's ``canary_addresses``, places the city controls, written as residents' are;
* reference numbers drawn and reserved like real ones, in reference-number order among the real rows.

Canaries are not entitlements and not package members, so no count, letter or notice ever includes them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, select, update

from civicseal.cseal.errors import SealError
from civicseal.programme.lifecycle import TRANSITIONS, Status
from civicseal.programme.service import issue_references
from civicseal.register.synth import MAX_BANCHI, MAX_GO, given_names, name_pairs, residential_towns, town_address
from civicseal.seal.models import CanaryHousehold, PackageCanary
from civicseal.seal.secrets import pseudonym
from civicseal.store.bulk import read_batches
from civicseal.store.home import CanaryAddress

CARRIED = frozenset(
    {
        "pseudonym",
        "reference_number",
        "head_name",
        "head_name_kana",
        "head_sex",
        "head_birth_date",
        "postcode",
        "address",
        "status",
        "amount",
    }
)
"""The fields a canary can carry; a purpose with canaries may carry no other (a blank column would show them)."""

DEFAULT_ADDRESSES = 24
MIN_ADDRESSES = 20
BIRTH_JITTER_DAYS = 182
CANARY_KIND = "canary"  # their kind in reference_numbers


def canary_count(records: int) -> int:
    """Enough that any sizeable leaked extract holds one, few enough to stay out of the way: 3 + 1 per 20,000."""
    return 3 + records // 20_000


def default_addresses(rng: random.Random, count: int = DEFAULT_ADDRESSES) -> tuple[CanaryAddress, ...]:
    """Distinct addresses in the city's own towns and chome/banchi form, for ``init`` to put in the
    configuration until the city replaces them with addresses it controls."""
    towns = residential_towns()
    chosen: dict[str, CanaryAddress] = {}
    while len(chosen) < count:
        town = rng.choice(towns)
        address = town_address(
            town, rng.randint(1, 2), rng.randint(town.min_banchi, MAX_BANCHI), rng.randint(1, MAX_GO)
        )
        chosen.setdefault(address, CanaryAddress(town.postcode, address))
    return tuple(chosen.values())


def check_fields(purpose: str, fields: tuple[str, ...]) -> None:
    """A purpose with canaries carries only fields a canary has: a column blank on a few rows would single them out."""
    missing = [f for f in fields if f not in CARRIED]
    if missing:
        raise SealError(f"purpose {purpose}: canaries cannot carry the field {missing[0]}; declare it without canaries")


@dataclass(frozen=True)
class Canary:
    id: int
    reference_number: str
    name: str
    name_kana: str
    sex: int
    birth_date: str
    postcode: str
    address: str
    status: str
    amount: int

    def row(self, pseudonym_key: bytes, fields: tuple[str, ...]) -> dict[str, object]:
        """The canary as a row of the package, under the package's pseudonym for it."""
        values: dict[str, object] = {
            "pseudonym": self.pseudonym(pseudonym_key),
            "reference_number": self.reference_number,
            "head_name": self.name,
            "head_name_kana": self.name_kana,
            "head_sex": self.sex,
            "head_birth_date": self.birth_date,
            "postcode": self.postcode,
            "address": self.address,
            "status": self.status,
            "amount": self.amount,
        }
        return {f: values[f] for f in fields}

    def pseudonym(self, pseudonym_key: bytes) -> str:
        return pseudonym(pseudonym_key, f"canary-{self.id}")


@dataclass(frozen=True)
class _RealRow:
    entitlement_id: int
    birth_date: date
    sex: int
    status: str
    amount: int
    postcode: str

    @classmethod
    def of(cls, row: Sequence[Any]) -> _RealRow:
        """A row of ``real_rows_sql`` as read; only the few rows drawn become one (74,661 conversions cost
        a third of a mailing's seal)."""
        i, b, s, st, a, p = row
        return cls(int(i), date.fromisoformat(str(b)[:10]), int(s), str(st), int(a), str(p))


def canaries_for(
    conn: Connection,
    *,
    recipient_id: int,
    programme_id: int,
    real_rows_sql: str,
    params: dict[str, Any],
    addresses: tuple[CanaryAddress, ...],
    rng: random.Random,
    now: datetime,
) -> list[Canary]:
    """The recipient's canaries for the programme, created at its first package, each with its twin's status.

    ``real_rows_sql`` selects ``entitlement_id, birth_date, sex, status, amount, postcode`` of the package's
    real rows. Returned in reference-number order, the order in which the package's rows are written.
    """
    real = [row for batch in read_batches(conn, real_rows_sql, params) for row in batch]
    if not real:
        return []
    t = CanaryHousehold.__table__
    owned = (t.c.recipient_id == recipient_id) & (t.c.programme_id == programme_id)
    rows = conn.execute(select(t).where(owned).order_by(t.c.id)).mappings().all()
    if not rows:
        _create(conn, recipient_id, programme_id, real, addresses, rng, now)
        rows = conn.execute(select(t).where(owned).order_by(t.c.id)).mappings().all()
    by_id = {int(r[0]): r for r in real}
    canaries = []
    for row in rows:
        kept = by_id.get(row["twin_entitlement_id"])
        twin = _RealRow.of(kept) if kept is not None else _new_twin(real, row["status"], rng)
        status = twin.status if twin is not None else row["status"]
        twin_id = twin.entitlement_id if twin is not None else None
        if (status, twin_id) != (row["status"], row["twin_entitlement_id"]):
            conn.execute(update(t).where(t.c.id == row["id"]).values(status=status, twin_entitlement_id=twin_id))
        fields = {k: row[k] for k in Canary.__dataclass_fields__ if k != "status"}
        canaries.append(Canary(status=status, **fields))
    return sorted(canaries, key=lambda c: c.reference_number)


def record_in_package(conn: Connection, package_id: str, canaries: list[Canary], pseudonym_key: bytes) -> None:
    if canaries:
        conn.execute(
            insert(PackageCanary),
            [{"package_id": package_id, "canary_id": c.id, "pseudonym": c.pseudonym(pseudonym_key)} for c in canaries],
        )


def _reachable(status: str) -> set[str]:
    """The status itself and every status the life cycle can lead it to: a canary never moves backwards."""
    seen, todo = {status}, [status]
    while todo:
        for nxt in TRANSITIONS.get(Status(todo.pop()), ()):
            if str(nxt) not in seen:
                seen.add(str(nxt))
                todo.append(str(nxt))
    return seen


def _new_twin(real: list[Sequence[Any]], status: str, rng: random.Random) -> _RealRow | None:
    """A real row to follow from now on, among those whose status the canary's can reach; None if none can."""
    reachable = _reachable(status)
    candidates = [r for r in real if str(r[3]) in reachable]
    return _RealRow.of(rng.choice(candidates)) if candidates else None


def _create(
    conn: Connection,
    recipient_id: int,
    programme_id: int,
    real: list[Sequence[Any]],
    addresses: tuple[CanaryAddress, ...],
    rng: random.Random,
    now: datetime,
) -> None:
    count = canary_count(len(real))
    places = _places(addresses, count, Counter(str(r[5]) for r in real), rng)
    models = [_RealRow.of(real[rng.randrange(len(real))]) for _ in range(count)]
    today = now.date()
    jitter = [timedelta(days=rng.randint(-BIRTH_JITTER_DAYS, BIRTH_JITTER_DAYS)) for _ in models]
    births = [min(today - timedelta(days=1), m.birth_date + j) for m, j in zip(models, jitter, strict=True)]
    names = _names([(today - b).days / 365.2425 for b in births], [m.sex == 2 for m in models], rng)
    references = issue_references(conn, count, CANARY_KIND, rng)
    conn.execute(
        insert(CanaryHousehold),
        [
            {
                "recipient_id": recipient_id,
                "programme_id": programme_id,
                "reference_number": reference,
                "name": name,
                "name_kana": kana,
                "sex": model.sex,
                "birth_date": born.isoformat(),
                "postcode": place.postcode,
                "address": place.address,
                "status": model.status,
                "amount": model.amount,
                "twin_entitlement_id": model.entitlement_id,
                "created_at": now,
            }
            for reference, (name, kana), model, born, place in zip(
                references, names, models, births, places, strict=True
            )
        ],
    )


def _names(ages: list[float], female: list[bool], rng: random.Random) -> list[tuple[str, str]]:
    """(name, kana) as stored after import: surname and given name joined by one ASCII space."""
    names = name_pairs()
    draws = np.random.default_rng(rng.getrandbits(64))
    surnames = draws.choice(len(names.surnames), size=len(ages), p=names.surname_weights)
    given = given_names(names, np.array(ages), np.array(female), draws.random(len(ages)), draws.random(len(ages)))
    out = []
    for s, g, f in zip(surnames.tolist(), given.tolist(), female, strict=True):
        surname, first = names.surnames[s], names.given[int(f)][g]
        out.append((f"{surname[0]} {first[0]}", f"{surname[1]} {first[1]}"))
    return out


def _places(
    addresses: tuple[CanaryAddress, ...], count: int, real: Counter[str], rng: random.Random
) -> list[CanaryAddress]:
    """Distinct addresses, in towns as often as the package's real rows live there (by postcode): a canary
    alone in a town where no real row lives would stand out."""
    left = list({a.address: a for a in addresses}.values())
    if not left:
        raise SealError(
            "the home's config.toml lists no canary_addresses: add addresses the city controls"
            f" (at least {MIN_ADDRESSES}; `civicseal init` writes a list to replace)"
        )
    chosen: list[CanaryAddress] = []
    while len(chosen) < count:
        weights = [real[a.postcode] for a in left]
        pick = rng.choices(left, weights=weights)[0] if any(weights) else rng.choice(left)
        chosen.append(pick)
        left = [a for a in left if a is not pick] or list({a.address: a for a in addresses}.values())
    return chosen
