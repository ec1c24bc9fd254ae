"""The incident report: every figure a regulator-ready report needs, read from the store in one pass.

:func:`build_report` returns plain dataclasses; :mod:`civicseal.incident.render` turns them into
Markdown, HTML, PDF or JSON. The report carries counts, categories, times and the city's own record of
the incident — never a resident's name, address or any other personal value. Canaries are synthetic
households: they are never counted (``package_members`` holds real residents only).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, func, select, text
from zxcvbn import zxcvbn

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.clock import as_utc, utcnow
from civicseal.contractors.errors import AuthorityRefused
from civicseal.contractors.service import Link, chain, check_authority, recipient_contractor
from civicseal.custody import service as custody
from civicseal.custody.models import CustodyEvent
from civicseal.incident import appi, attack
from civicseal.incident.appi import ReportItem
from civicseal.incident.errors import IncidentError
from civicseal.incident.service import IncidentRecord, get_incident, verified_file
from civicseal.keys.evidence import GRANTED, chain_unlocks, require_intact
from civicseal.keys.recipients import display_name_of_recipient
from civicseal.ledger.fields import FIELDS, Category
from civicseal.ledger.models import Package, PackageMember, Recipient
from civicseal.ledger.purposes import purposes
from civicseal.programme.models import Programme
from civicseal.seal.secrets import TYPED_MIN_GUESSES
from civicseal.store.engine import transaction
from civicseal.store.home import Home

MAX_PASSPHRASE: Final = 200  # as sealing accepts; zxcvbn is slow on longer input

# What the old practice carried: the whole register, every field (DESIGN: "Why it exists").
REGISTER_FIELDS: Final = (
    "resident code",
    "household code",
    "name",
    "name kana",
    "sex",
    "birth date",
    "postcode",
    "address",
    "date of moving in, out, death",
    "residence tax: taxed or exempt",
    "income",
    "dependant of",
    "My Number",
    "bank account",
)
REGISTER_PROTECTION: Final = (
    "a password set by a person: offline attack unlimited, no revocation, no record of access",
    "人が設定したパスワードのみ：オフラインで無制限に攻撃可能、失効できず、アクセスの記録もない",
)


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of the incident, from custody, the key service or the incident itself."""

    at: datetime
    event: str  # created, handed-over, …, lost, reported, revoked, incident-opened, found, closed


@dataclass(frozen=True)
class UnlockEntry:
    """One attempt to have the key service release the package's key."""

    at: datetime
    outcome: str
    source: str  # the client's address


@dataclass(frozen=True)
class Durations:
    """How fast the city learnt of the loss and stopped the package, in seconds (None: did not happen)."""

    time_to_report: float
    time_to_revoke: float | None  # from the report to the revocation; negative when revoked before it
    lost_to_revoked: float | None  # how long a lost tethered package could have been opened


@dataclass(frozen=True)
class Content:
    """What the package carried: purpose, fields, records and who is affected."""

    purpose: str
    purpose_description: str
    purpose_description_ja: str  # what Japanese text names the purpose by, never its slug
    programme: str | None
    fiscal_year: int | None
    recipient: str
    recipient_name: str  # the recipient's display name, what people read
    fields: tuple[str, ...]
    categories: tuple[str, ...]
    records: int  # households in the payload, canaries excluded
    canaries: int  # synthetic households mixed in, never counted as affected
    residents_affected: int
    households_affected: int
    bank_accounts: bool
    tax_data: str  # "carried", "implied" (being entitled says every member is tax-exempt) or "none"
    my_number: bool
    payload_format: str


@dataclass(frozen=True)
class AttackRow:
    """One attacker: ``gpus`` GPUs of the reference kind against the package's work factor."""

    gpus: int
    guesses_per_second: float
    expected_seconds: float
    exhaust_seconds: float
    expected_cost_usd: float
    exhaust_cost_usd: float


@dataclass(frozen=True)
class PassphraseAttack:
    """The economics of an offline attack on a passphrase package."""

    scrypt_log_n: int  # the work factor the attack faces (the file's header, else the package record)
    recorded_log_n: int | None  # as the city recorded it at sealing
    header_log_n: int | None  # as read from the file's age header, when a file was given
    guesses: float  # the search space (generated), zxcvbn's estimate (supplied) or the typed minimum
    basis: str  # "generated", "zxcvbn" or "typed-minimum"
    passphrase_bits: int | None
    rows: tuple[AttackRow, ...]
    reference: attack.Reference


@dataclass(frozen=True)
class Protection:
    """How the package is protected, and the evidence whether anyone opened it."""

    mode: str
    offline_attack: bool
    revoked_at: datetime | None
    expires_at: datetime
    attacker_needs: str
    attacker_needs_ja: str
    security_bits: int | None  # X25519's, for tethered and recipient packages
    header_stanzas: tuple[str, ...] | None  # stanza types of the file's age header, when a file was given
    unlocks_before: tuple[UnlockEntry, ...]
    unlocks_after: tuple[UnlockEntry, ...]
    granted_after: int
    passphrase: PassphraseAttack | None


@dataclass(frozen=True)
class Counterfactual:
    """What the old practice — the whole register, every field, on a password-protected stick — exposed."""

    residents: int
    households: int
    tax_rows: int
    fiscal_year: int | None
    bank_accounts: int
    my_numbers: int
    fields: tuple[str, ...]
    categories: tuple[str, ...]
    protection: str
    protection_ja: str
    reportable: bool


@dataclass(frozen=True)
class ContractChain:
    """The chain of the organization whose recipient held the package, and whether it covered the loss."""

    links: tuple[Link, ...]  # the city's contractor first, the organization that held the package last
    authorized_at_loss: bool  # every link approved the package's purpose on the day of the loss
    refusal_rule: str | None  # otherwise the rule the chain broke (contractors.service), and the link named
    refusal: str | None


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    issuer_name: str  # the city, as people read it (尼崎市)
    incident: IncidentRecord
    package_id: str
    mode: str
    content: Content
    timeline: tuple[TimelineEntry, ...]
    durations: Durations
    protection: Protection
    counterfactual: Counterfactual
    assessment: appi.Assessment
    items: tuple[ReportItem, ...]
    contract_chain: ContractChain | None  # None: the recipient belongs to no registered contractor
    anchor: dict[str, Any] | None  # the latest signed chain head outside the database, when the report was made

    def as_dict(self) -> dict[str, Any]:
        """Stable snake_case keys; times as RFC 3339 UTC strings."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return fmt.rfc3339(as_utc(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def build_report(
    home: Home,
    incident_id: int,
    *,
    now: datetime | None = None,
    passphrase: str | None = None,
    package_file: Path | None = None,
    actor: str | None = None,
) -> Report:
    """Every figure of the report on incident ``incident_id``, as of ``now``.

    ``passphrase`` (a passphrase package's, if the city has it) gives zxcvbn's guess estimate;
    ``package_file`` (a copy of the lost package) lets the work factor be read from its own header.
    """
    now = as_utc(now or utcnow())
    incident = get_incident(home.engine, incident_id)
    evidence = require_intact(home)  # unlock evidence is read from the chain, so the chain must hold
    header = _file_header(home, incident.package_id, package_file) if package_file is not None else None
    with home.engine.connect() as conn:
        package = _package(conn, incident.package_id)
        content = _content(conn, package)
        facts = appi.read_facts(conn, incident_id, now=now)
        assessment = appi.assess(facts)
        protection = _protection(conn, package, incident, now, header, passphrase)
        counterfactual = _counterfactual(conn, content.fiscal_year)
        events = _custody_events(conn, incident.package_id)
        contract_chain = _contract_chain(conn, package, incident.lost_at)
    timeline = _timeline(incident, events, protection.revoked_at)
    durations = _durations(incident, protection.revoked_at)
    issuer_name = home.config.issuer_display
    items = appi.report_items(
        issuer_name=issuer_name,
        incident=incident,
        content=content,
        protection=protection,
        assessment=assessment,
        durations=durations,
        timeline=timeline,
        now=now,
    )
    with transaction(home.engine) as conn:  # the register's members of the package were read
        audit.append(
            conn, "incident.report", "incident", incident_id,
            {"residents_affected": content.residents_affected, "reportable": assessment.reportable},
            actor=actor, now=now,
        )  # fmt: skip
    return Report(
        generated_at=now,
        issuer_name=issuer_name,
        incident=incident,
        package_id=incident.package_id,
        mode=package.mode,
        content=content,
        timeline=timeline,
        durations=durations,
        protection=protection,
        counterfactual=counterfactual,
        assessment=assessment,
        items=items,
        contract_chain=contract_chain,
        anchor=evidence.latest_anchor.as_dict() if evidence.latest_anchor else None,
    )


def _contract_chain(conn: Connection, package: Any, lost_at: datetime) -> ContractChain | None:
    """The holder's chain, judged by the one authority rule as it stood when the package was lost."""
    organization = recipient_contractor(conn, package.recipient_id)
    if organization is None:
        return None
    try:
        links = check_authority(conn, organization, package.purpose, on=lost_at)
    except AuthorityRefused as refused:
        return ContractChain(chain(conn, organization), False, refused.rule, str(refused))
    return ContractChain(links, True, None, None)


def _package(conn: Connection, package_id: str) -> Any:
    row = conn.execute(
        select(
            Package.__table__,
            Recipient.name.label("recipient"),
            Programme.name.label("programme"),
            Programme.fiscal_year.label("fiscal_year"),
        )
        .join(Recipient, Recipient.id == Package.recipient_id)
        .outerjoin(Programme, Programme.id == Package.programme_id)
        .where(Package.id == package_id)
    ).first()
    if row is None:
        raise IncidentError(f"package {package_id}: no such package in this store")
    return row


def _content(conn: Connection, package: Any) -> Content:
    residents, households = conn.execute(
        select(func.count(), func.count(func.distinct(PackageMember.household_code))).where(
            PackageMember.package_id == package.id
        )
    ).one()
    names = tuple(package.fields.split(","))
    categories = tuple(dict.fromkeys(FIELDS[f].category for f in names if f in FIELDS))
    purpose = purposes().get(package.purpose)
    # A package of entitled households says, by being one, that every member is residence-tax exempt.
    tax = "carried" if Category.TAX in categories else ("implied" if purpose is not None else "none")
    return Content(
        purpose=package.purpose,
        purpose_description=purpose.description if purpose is not None else "",
        purpose_description_ja=purpose.description_ja if purpose is not None else package.purpose,
        programme=package.programme,
        fiscal_year=package.fiscal_year,
        recipient=package.recipient,
        recipient_name=display_name_of_recipient(conn, package.recipient),
        fields=names,
        categories=tuple(str(c) for c in categories),
        records=int(package.records),
        canaries=int(package.canaries),
        residents_affected=int(residents),
        households_affected=int(households),
        bank_accounts=Category.FINANCIAL in categories,
        tax_data=tax,
        my_number=Category.MY_NUMBER in categories,
        payload_format=package.payload_format,
    )


def _file_header(home: Home, package_id: str, path: Path) -> fmt.AgeHeader:
    """The age header of a copy of the incident's package, once its signature proves it is that package."""
    pkg = verified_file(home, path)
    if pkg.package_id != package_id:
        raise IncidentError(f"{path}: holds another package, not {package_id}")
    try:
        return fmt.read_age_header(pkg.path, pkg.payload_offset, pkg.payload_size)
    except fmt.PackageRefused as exc:
        raise IncidentError(f"{path}: {exc}") from None


def _unlocks(conn: Connection, package_id: str, now: datetime) -> list[UnlockEntry]:
    """From the audit chain (verified before the report is built), never from the editable unlock log."""
    return [UnlockEntry(e.at, e.outcome, e.source) for e in chain_unlocks(conn, package_id, until=now)]


def _protection(
    conn: Connection,
    package: Any,
    incident: IncidentRecord,
    now: datetime,
    header: fmt.AgeHeader | None,
    passphrase: str | None,
) -> Protection:
    attempts = _unlocks(conn, package.id, now)
    before = tuple(a for a in attempts if a.at < incident.lost_at)
    after = tuple(a for a in attempts if a.at >= incident.lost_at)
    mode = package.mode
    attack_figures = _passphrase_attack(package, header, passphrase) if mode == fmt.Mode.PASSPHRASE else None
    needs = _ATTACKER_NEEDS[mode]
    return Protection(
        mode=mode,
        offline_attack=mode == fmt.Mode.PASSPHRASE,
        revoked_at=as_utc(package.revoked_at) if package.revoked_at is not None else None,
        expires_at=as_utc(package.expires_at),
        attacker_needs=needs[0],
        attacker_needs_ja=needs[1],
        security_bits=None if mode == fmt.Mode.PASSPHRASE else attack.X25519_SECURITY_BITS,
        header_stanzas=_stanza_types(header) if header is not None else None,
        unlocks_before=before,
        unlocks_after=after,
        granted_after=sum(1 for a in after if a.outcome == GRANTED),
        passphrase=attack_figures,
    )


_ATTACKER_NEEDS: Final = {
    "tethered": (
        "No offline attack is possible: the package's key never left the city's key service. Opening it needs"
        " the contractor's token and identity file and the key service's consent, which it refuses once the"
        " package is revoked, expired or out of custody; every attempt is logged.",
        "オフライン攻撃は不可能（パッケージの鍵は市の鍵サービスの外に出ない）。開封には委託先のトークンと秘密鍵"
        "ファイルに加え鍵サービスの許可が必要で、失効・期限切れ・管理外の状態では拒否され、全ての試行が記録される。",
    ),
    "recipient": (
        "The contractor's identity file (its age X25519 secret key). Without it, breaking X25519 takes about"
        " 2^128 operations: infeasible. The package cannot be revoked; it opens offline with that key.",
        "委託先の秘密鍵ファイル（age X25519秘密鍵）。これがなければX25519の解読に約2^128回の演算を要し、"
        "現実的に不可能。失効はできず、その鍵があればオフラインで開封できる。",
    ),
    "passphrase": (
        "Only the passphrase: an attacker with the file can try passphrases offline, without limit and"
        " unseen; each guess costs one age scrypt derivation at the package's work factor.",
        "パスフレーズのみ。ファイルを入手した者はオフラインで無制限かつ気付かれずに総当たりでき、"
        "1回の試行ごとに本パッケージの作業係数によるscrypt計算を要する。",
    ),
}


def _passphrase_attack(package: Any, header: fmt.AgeHeader | None, passphrase: str | None) -> PassphraseAttack:
    header_log_n = _header_log_n(header) if header is not None else None
    log_n = header_log_n or package.scrypt_log_n
    if log_n is None:
        raise IncidentError(f"package {package.id}: no scrypt work factor recorded; give the package file")
    if passphrase is not None:
        if len(passphrase) > MAX_PASSPHRASE:
            raise IncidentError(f"passphrase longer than {MAX_PASSPHRASE} characters")
        guesses, basis = float(zxcvbn(passphrase)["guesses"]), "zxcvbn"
    elif package.passphrase_bits is not None:
        guesses, basis = float(2 ** int(package.passphrase_bits)), "generated"
    else:
        guesses, basis = float(TYPED_MIN_GUESSES), "typed-minimum"
    rows = tuple(_attack_row(guesses, log_n, gpus) for gpus in attack.ATTACK_GPUS)
    return PassphraseAttack(
        scrypt_log_n=log_n,
        recorded_log_n=package.scrypt_log_n,
        header_log_n=header_log_n,
        guesses=guesses,
        basis=basis,
        passphrase_bits=package.passphrase_bits,
        rows=rows,
        reference=attack.REFERENCE,
    )


def _stanza_types(header: fmt.AgeHeader) -> tuple[str, ...]:
    """The header's stanza types; a grease stanza's random name is shown as "grease" (it means nothing)."""
    return tuple("grease" if s.type.endswith("-grease") else s.type for s in header.stanzas)


def _header_log_n(header: fmt.AgeHeader) -> int:
    scrypt = [s for s in header.stanzas if s.type == "scrypt"]
    if len(scrypt) != 1 or len(scrypt[0].args) != 2 or not scrypt[0].args[1].isdigit():
        raise IncidentError("the package file's age header holds no single well-formed scrypt stanza")
    return int(scrypt[0].args[1])


def _attack_row(guesses: float, log_n: int, gpus: int) -> AttackRow:
    expected = attack.expected_seconds(guesses, log_n, gpus)
    exhaust = attack.exhaust_seconds(guesses, log_n, gpus)
    return AttackRow(
        gpus=gpus,
        guesses_per_second=attack.guesses_per_second(log_n, gpus),
        expected_seconds=expected,
        exhaust_seconds=exhaust,
        expected_cost_usd=attack.attack_cost(expected, gpus),
        exhaust_cost_usd=attack.attack_cost(exhaust, gpus),
    )


def _counterfactual(conn: Connection, fiscal_year: int | None) -> Counterfactual:
    """The whole register as it stands, counted in SQL: what one password-protected stick would carry."""
    residents, households, my_numbers = conn.execute(
        text("SELECT COUNT(*), COUNT(DISTINCT household_code), COUNT(my_number_enc) FROM residents")
    ).one()
    if fiscal_year is None:
        tax_rows = conn.execute(text("SELECT COUNT(*) FROM tax_assessments")).scalar_one()
    else:
        tax_rows = conn.execute(
            text("SELECT COUNT(*) FROM tax_assessments WHERE fiscal_year = :y"), {"y": fiscal_year}
        ).scalar_one()
    accounts = conn.execute(text("SELECT COUNT(*) FROM bank_accounts")).scalar_one()
    categories = [Category.IDENTIFIER, Category.NAME, Category.ADDRESS, Category.BIRTH_DATE, Category.SEX]
    categories += [Category.TAX] if tax_rows else []
    categories += [Category.MY_NUMBER] if my_numbers else []
    categories += [Category.FINANCIAL] if accounts else []
    shown = [f for f in REGISTER_FIELDS if (f != "My Number" or my_numbers) and (f != "bank account" or accounts)]
    facts = appi.Facts("", "passphrase", tuple(categories), int(residents), utcnow(), 0)
    return Counterfactual(
        residents=int(residents),
        households=int(households),
        tax_rows=int(tax_rows),
        fiscal_year=fiscal_year,
        bank_accounts=int(accounts),
        my_numbers=int(my_numbers),
        fields=tuple(shown),
        categories=tuple(str(c) for c in categories),
        protection=REGISTER_PROTECTION[0],
        protection_ja=REGISTER_PROTECTION[1],
        reportable=appi.assess(facts).reportable,
    )


def _custody_events(conn: Connection, package_id: str) -> list[tuple[datetime, str]]:
    rows = conn.execute(
        select(CustodyEvent.at, CustodyEvent.event)
        .where(CustodyEvent.package_id == package_id)
        .order_by(CustodyEvent.at, CustodyEvent.id)
    )
    return [(as_utc(at), str(custody.parse_event(event))) for at, event in rows]


def _timeline(
    incident: IncidentRecord, events: list[tuple[datetime, str]], revoked_at: datetime | None
) -> tuple[TimelineEntry, ...]:
    """Custody events, the report of the loss, the revocation and the incident's opening and closing, by time."""
    entries = [TimelineEntry(at, event) for at, event in events]
    entries.append(TimelineEntry(incident.reported_at, "reported"))
    entries.append(TimelineEntry(incident.opened_at, "incident-opened"))
    if revoked_at is not None:
        entries.append(TimelineEntry(revoked_at, "revoked"))
    if incident.closed_at is not None:
        entries.append(TimelineEntry(incident.closed_at, "incident-closed"))
    order = {name: n for n, name in enumerate(("reported", "incident-opened", "revoked"))}
    return tuple(sorted(entries, key=lambda e: (e.at, order.get(e.event, -1))))


def _durations(incident: IncidentRecord, revoked_at: datetime | None) -> Durations:
    return Durations(
        time_to_report=(incident.reported_at - incident.lost_at).total_seconds(),
        time_to_revoke=(revoked_at - incident.reported_at).total_seconds() if revoked_at is not None else None,
        lost_to_revoked=(revoked_at - incident.lost_at).total_seconds() if revoked_at is not None else None,
    )
