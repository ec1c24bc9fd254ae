"""Japan's APPI, as it applies to a lost package: must the city report to the regulator and notify people?

The rules, each decided once (DESIGN.md, "Data model and flows: rules decided"):

- The city is a public body (行政機関等): a leak is reportable when more than :data:`PUBLIC_BODY_THRESHOLD`
  persons are affected, or when any data risks financial loss (bank accounts), or is sensitive
  (要配慮個人情報), or carries My Number (特定個人情報, where the My Number Act's own rules apply too).
  A business has its own duty above :data:`BUSINESS_THRESHOLD` persons; the report states it for a
  contractor that is one.
- None of that applies when the data was under high-level encryption with a safely held key: for a
  tethered package when no unlock was granted at or after the loss; for a recipient-mode package when the
  recipient's identity was not lost with it (the store cannot know that, so it is stated as an
  assumption for a person to confirm). A passphrase package is never exempt: an offline attack is
  possible however strong the passphrase.
- Individuals are notified exactly when the regulator is.

Persons are the residents the package recorded as carried (``package_members``), canaries never among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, func, select

from civicseal.clock import TOKYO, as_utc, for_people, utcnow
from civicseal.custody.events import JAPANESE
from civicseal.incident.attack import format_duration, format_duration_ja, format_money
from civicseal.incident.errors import IncidentError
from civicseal.incident.models import Incident
from civicseal.keys.evidence import granted_between
from civicseal.ledger.fields import FIELDS, Category
from civicseal.ledger.models import Package, PackageMember

if TYPE_CHECKING:
    from civicseal.incident.report import Content, Durations, Protection, TimelineEntry
    from civicseal.incident.service import IncidentRecord

PUBLIC_BODY_THRESHOLD: Final = 100  # 行政機関等: reportable when MORE than this many persons are affected
BUSINESS_THRESHOLD: Final = 1000  # 個人情報取扱事業者: reportable when more than this many
FINANCIAL_RISK: Final = frozenset({Category.FINANCIAL})  # data whose misuse may cause financial loss
SENSITIVE: Final = frozenset[Category]()  # 要配慮個人情報: no field a package can carry is one today
MY_NUMBER: Final = frozenset({Category.MY_NUMBER})

TO_WRITE_JA: Final = "【要記入】"  # marks what a person still has to write
TO_WRITE_EN: Final = "[TO BE WRITTEN]"
TO_CONFIRM_JA: Final = "【要確認】"  # marks an assumption a person has to confirm
TO_CONFIRM_EN: Final = "[TO BE CONFIRMED]"


@dataclass(frozen=True)
class Assessment:
    """The regulatory answer for one incident, with its reasons in English and Japanese (one sentence each)."""

    reportable: bool
    notify_individuals: bool
    reasons: tuple[str, ...]
    reasons_ja: tuple[str, ...]
    exemption: str | None  # why encryption exempts the incident, if it does


@dataclass(frozen=True)
class Facts:
    """What the assessment is decided on, read from the store in one go."""

    package_id: str
    mode: str
    categories: tuple[Category, ...]
    persons: int
    lost_at: datetime
    granted_after_loss: int


def read_facts(conn: Connection, incident_id: int, *, now: datetime) -> Facts:
    """The incident's package, persons and grants after the loss (up to ``now``), or IncidentError."""
    row = conn.execute(
        select(Incident.package_id, Incident.lost_at, Package.mode, Package.fields)
        .join(Package, Package.id == Incident.package_id)
        .where(Incident.id == incident_id)
    ).first()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    persons = conn.execute(
        select(func.count()).select_from(PackageMember).where(PackageMember.package_id == row.package_id)
    ).scalar_one()
    lost_at = as_utc(row.lost_at)
    granted = granted_between(conn, row.package_id, lost_at, now)
    categories = tuple(dict.fromkeys(FIELDS[f].category for f in row.fields.split(",") if f in FIELDS))
    return Facts(row.package_id, row.mode, categories, int(persons), lost_at, int(granted))


def assess_incident(engine: Engine, incident_id: int, *, now: datetime | None = None) -> Assessment:
    """Decide whether the incident must be reported and people notified, with the reasons why."""
    now = as_utc(now or utcnow())
    with engine.connect() as conn:
        facts = read_facts(conn, incident_id, now=now)
    return assess(facts)


def assess(facts: Facts) -> Assessment:
    """The rules of the module docstring applied to ``facts``; pure, so tests can call it directly."""
    triggers = _triggers(facts)
    exemption = _exemption(facts)
    reasons = [en for en, _ in triggers]
    reasons_ja = [ja for _, ja in triggers]
    if not triggers:
        reasons.append(
            f"No trigger applies: {facts.persons:,} persons (not more than {PUBLIC_BODY_THRESHOLD:,}), no data"
            " risking financial loss, no sensitive data and no My Number."
        )
        reasons_ja.append(
            f"本人の数は{facts.persons:,}人（{PUBLIC_BODY_THRESHOLD:,}人以下）で、財産的被害のおそれのある情報、"
            "要配慮個人情報及び個人番号を含まないため、報告対象の事態に該当しない。"
        )
    elif exemption is not None:
        en, ja = exemption
        reasons.append(f"Not reportable all the same: {en}")
        reasons_ja.append(f"ただし、{ja}")
    else:
        en, ja = _not_exempt(facts)
        reasons.append(en)
        reasons_ja.append(ja)
    reasons.append(
        f"For information: a business (for instance a contractor that is one) must report above"
        f" {BUSINESS_THRESHOLD:,} persons, or on the same other triggers."
    )
    reasons_ja.append(
        f"参考：個人情報取扱事業者（事業者である委託先を含む）は、本人の数が{BUSINESS_THRESHOLD:,}人を超える場合"
        "又は上記と同じその他の事由に該当する場合に報告義務を負う。"
    )
    reportable = bool(triggers) and exemption is None
    return Assessment(
        reportable=reportable,
        notify_individuals=reportable,
        reasons=tuple(reasons),
        reasons_ja=tuple(reasons_ja),
        exemption=exemption[0] if exemption is not None else None,
    )


def _triggers(facts: Facts) -> list[tuple[str, str]]:
    """Each reason the incident would be reportable without encryption, as (English, Japanese)."""
    found: list[tuple[str, str]] = []
    if facts.persons > PUBLIC_BODY_THRESHOLD:
        found.append(
            (
                f"{facts.persons:,} persons are affected, more than the {PUBLIC_BODY_THRESHOLD:,}"
                " above which a public body must report.",
                f"本人の数が{facts.persons:,}人であり、行政機関等の報告基準である{PUBLIC_BODY_THRESHOLD:,}人を超える。",
            )
        )
    categories = set(facts.categories)
    if categories & FINANCIAL_RISK:
        found.append(
            (
                "The package carries bank account data, whose misuse may cause financial loss.",
                "不正に利用されることにより財産的被害が生じるおそれがある個人データ（口座情報）を含む。",
            )
        )
    if categories & SENSITIVE:
        found.append(("The package carries sensitive personal data.", "要配慮個人情報を含む。"))
    if categories & MY_NUMBER:
        found.append(
            (
                "The package carries My Number, so the My Number Act's report rules apply as well.",
                "特定個人情報（個人番号）を含むため、番号法に基づく報告の規定も適用される。",
            )
        )
    return found


def _exemption(facts: Facts) -> tuple[str, str] | None:
    """Why high-level encryption exempts the incident, as (English, Japanese), or None when it does not."""
    if facts.mode == "tethered" and facts.granted_after_loss == 0:
        return (
            "the package is encrypted to a key that never left the city's key service, no unlock was granted"
            " at or after the loss, and the package is revoked, so nobody can open it.",
            "本件パッケージは市の鍵サービスから出ることのない鍵で高度に暗号化されており、"
            "紛失時以降に復号が許可された記録はなく、失効済みのため、何人も復号できない。",
        )
    if facts.mode == "recipient":
        return (
            "the package is encrypted to the recipient's X25519 key (2^128 security), which holds provided that"
            f" the recipient's identity file was not lost with the package {TO_CONFIRM_EN}.",
            "本件パッケージは受領者のX25519鍵（128ビット安全性）で高度に暗号化されており、"
            f"受領者の秘密鍵ファイルが同時に紛失していないことを条件として適用される{TO_CONFIRM_JA}。",
        )
    return None


def _not_exempt(facts: Facts) -> tuple[str, str]:
    """Why the encryption exemption does not hold, as (English, Japanese)."""
    if facts.mode == "tethered":
        return (
            f"The encryption exemption does not hold: the key service granted {facts.granted_after_loss:,}"
            " unlock(s) at or after the loss.",
            f"紛失時以降に鍵サービスが{facts.granted_after_loss:,}件の復号を許可しているため、暗号化による"
            "報告対象外の扱いは適用されない。",
        )
    return (
        "The encryption exemption does not hold: a passphrase-protected package can be attacked offline"
        " without limit, however strong the passphrase.",
        "パスフレーズで保護されたパッケージはオフラインで無制限に攻撃され得るため、暗号化による報告対象外の扱いは"
        "適用されない。",
    )


# --------------------------------------------------------------------------------------------------
# The nine items of the report to the Personal Information Protection Commission (個人情報保護委員会)
# --------------------------------------------------------------------------------------------------

MODE_JA: Final = {
    "tethered": "鍵サービス連動方式（テザード）",
    "recipient": "受領者鍵方式",
    "passphrase": "パスフレーズ方式",
}
EVENT_EN: Final = {
    "created": "created (sealed)",
    "handed-over": "handed over",
    "received": "received",
    "returned": "returned",
    "destroyed": "destroyed",
    "lost": "lost",
    "found": "found",
    "reported": "loss reported to the city",
    "incident-opened": "incident opened",
    "revoked": "revoked",
    "incident-closed": "incident closed",
}
EVENT_JA: Final = {
    **{str(event): word for event, word in JAPANESE.items()},
    "reported": "紛失の報告受付",
    "incident-opened": "事案登録",
    "revoked": "失効",
    "incident-closed": "事案終結",
}
FIELD_JA: Final = {
    "pseudonym": "仮名ID",
    "reference_number": "整理番号",
    "head_name": "世帯主氏名",
    "head_name_kana": "世帯主氏名（カナ）",
    "head_sex": "世帯主の性別",
    "head_birth_date": "世帯主の生年月日",
    "postcode": "郵便番号",
    "address": "住所",
    "status": "給付の状況",
    "amount": "給付額",
    "bank_code": "金融機関コード",
    "branch_code": "支店コード",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "holder_kana": "口座名義（カナ）",
}
CATEGORY_JA: Final = {
    str(Category.IDENTIFIER): "識別子",
    str(Category.NAME): "氏名",
    str(Category.ADDRESS): "住所",
    str(Category.BIRTH_DATE): "生年月日",
    str(Category.BENEFIT): "給付の状況",
    str(Category.FINANCIAL): "口座情報",
    str(Category.TAX): "税情報",
    str(Category.MY_NUMBER): "個人番号",
    str(Category.SEX): "性別",
}
ITEM_TITLES: Final = (
    ("summary", "概要", "Summary"),
    (
        "data_items",
        "漏えい等が発生し又は発生したおそれがある個人データの項目",
        "Items of personal data (possibly) leaked",
    ),
    ("persons", "本人の数", "Number of persons"),
    ("cause", "原因", "Cause"),
    ("secondary_damage", "二次被害又はそのおそれの有無及びその内容", "Secondary damage or its risk, and what it is"),
    ("individuals", "本人への対応の実施状況", "Response to the persons concerned"),
    ("publication", "公表の実施状況", "Public announcement"),
    ("prevention", "再発防止のための措置", "Measures to prevent recurrence"),
    ("other", "その他参考となる事項", "Other relevant matters"),
)


@dataclass(frozen=True)
class ReportItem:
    """One of the nine items of the report to the Personal Information Protection Commission."""

    key: str
    title_ja: str
    title_en: str
    text_ja: str
    text_en: str
    needs_person: bool  # a person still has to write (or confirm) part of it


def when_en(dt: datetime) -> str:
    """A time on the city's clock, as the report prints it."""
    return for_people(dt)


def when_ja(dt: datetime) -> str:
    local = dt.astimezone(TOKYO)
    return f"{local.year}年{local.month}月{local.day}日{local.hour}時{local.minute:02d}分"


def report_items(
    *,
    issuer_name: str,
    incident: IncidentRecord,
    content: Content,
    protection: Protection,
    assessment: Assessment,
    durations: Durations,
    timeline: tuple[TimelineEntry, ...],
    now: datetime,
) -> tuple[ReportItem, ...]:
    """The nine items pre-filled from the record; what a person must still write is marked 【要記入】."""
    texts = {
        "summary": _summary(issuer_name, incident, content, protection),
        "data_items": _data_items(content),
        "persons": _persons(content),
        "cause": _cause(incident),
        "secondary_damage": _secondary_damage(protection),
        "individuals": _individuals(assessment),
        "publication": (f"公表の有無、日時及び方法：{TO_WRITE_JA}", f"Whether, when and how announced: {TO_WRITE_EN}"),
        "prevention": _prevention(protection),
        "other": _other(incident, durations, timeline, now),
    }
    items = []
    for key, title_ja, title_en in ITEM_TITLES:
        ja, en = texts[key]
        needs = TO_WRITE_JA in ja or TO_CONFIRM_JA in ja
        items.append(ReportItem(key, title_ja, title_en, ja, en, needs))
    return tuple(items)


def _summary(issuer_name: str, incident: IncidentRecord, content: Content, protection: Protection) -> tuple[str, str]:
    mode = protection.mode
    ja = (
        f"{when_ja(incident.lost_at)}頃、{issuer_name}が{content.recipient_name}に交付した暗号化パッケージ"
        f"（{incident.package_id}、目的「{content.purpose_description_ja}」、{MODE_JA.get(mode, mode)}）が紛失した。"
        f"{when_ja(incident.reported_at)}に報告を受けた。"
    )
    en = (
        f"At about {when_en(incident.lost_at)} the encrypted package {incident.package_id} (purpose"
        f" {content.purpose}, {mode} mode), handed by {issuer_name} to {content.recipient_name}, was lost;"
        f" the city learnt of it at {when_en(incident.reported_at)}."
    )
    if mode == "tethered" and protection.revoked_at is not None:
        ja += f"{when_ja(protection.revoked_at)}に同パッケージを失効させ、以後の開封を停止した。"
        en += f" The package was revoked at {when_en(protection.revoked_at)}; it can no longer be opened."
    ja += f"対象は{content.households_affected:,}世帯・{content.residents_affected:,}人である。"
    en += f" {content.households_affected:,} households, {content.residents_affected:,} residents are concerned."
    return ja, en


def _data_items(content: Content) -> tuple[str, str]:
    fields_ja = "、".join(FIELD_JA.get(f, f) for f in content.fields)
    categories_ja = "、".join(CATEGORY_JA.get(c, c) for c in content.categories)
    ja = f"{fields_ja}（区分：{categories_ja}）。"
    en = f"{', '.join(content.fields)} (categories: {', '.join(content.categories)})."
    if content.tax_data == "implied":
        ja += "給付対象世帯の一覧であるため、世帯全員が住民税非課税であることが推知される。"
        en += " Being a list of entitled households, it implies that every member is exempt from residence tax."
    ja += "個人番号は含まない。" if not content.my_number else "個人番号を含む。"
    en += " No My Number." if not content.my_number else " It carries My Number."
    return ja, en


def _persons(content: Content) -> tuple[str, str]:
    return (
        f"{content.residents_affected:,}人（{content.households_affected:,}世帯）。追跡用の架空世帯（カナリア）"
        f"{content.canaries:,}件は実在しないため含まない。",
        f"{content.residents_affected:,} residents ({content.households_affected:,} households). The"
        f" {content.canaries:,} canary households (synthetic, for tracing) are not persons and are not counted.",
    )


def _cause(incident: IncidentRecord) -> tuple[str, str]:
    return (
        f"報告された状況：{incident.circumstances}\n発生原因の分析：{TO_WRITE_JA}",
        f"Circumstances as reported: {incident.circumstances}\nAnalysis of the cause: {TO_WRITE_EN}",
    )


def _secondary_damage(protection: Protection) -> tuple[str, str]:
    after = len(protection.unlocks_after)
    if protection.mode == "tethered" and protection.granted_after == 0:
        revoked = (
            (f"{when_ja(protection.revoked_at)}に失効済みで", f" It was revoked at {when_en(protection.revoked_at)}")
            if protection.revoked_at is not None
            else ("", "")
        )
        return (
            f"紛失時以降の鍵サービスへの開封要求は{after:,}件で、許可は0件である。{revoked[0]}以後も開封できない。"
            "オフラインでの解読は不可能であり、二次被害のおそれはないと判断する。",
            f"Since the loss the key service received {after:,} unlock request(s) and granted none.{revoked[1]}"
            " and cannot be opened; no offline attack is possible. No secondary damage is expected.",
        )
    if protection.mode == "tethered":
        first = next(a for a in protection.unlocks_after if a.outcome == "granted")
        return (
            f"紛失時以降に{protection.granted_after:,}件の開封が許可された（初回 {when_ja(first.at)}、接続元 "
            f"{first.source}）。内容が閲覧された可能性がある。調査結果：{TO_WRITE_JA}",
            f"Since the loss the key service granted {protection.granted_after:,} unlock(s) (first at"
            f" {when_en(first.at)} from {first.source}); the content may have been read."
            f" Findings: {TO_WRITE_EN}",
        )
    if protection.mode == "recipient":
        return (
            "委託先の秘密鍵ファイルが同時に紛失していなければ、開封にはX25519（約2^128回の演算）の解読を要し、"
            f"現実的に不可能である{TO_CONFIRM_JA}。二次被害の有無：{TO_WRITE_JA}",
            "Unless the contractor's identity file was lost too, opening it means breaking X25519 (about 2^128"
            f" operations): infeasible {TO_CONFIRM_EN}. Secondary damage: {TO_WRITE_EN}",
        )
    ja, en = "オフラインでの総当たり攻撃が可能である。", "An offline guessing attack is possible."
    if protection.passphrase is not None:
        row = protection.passphrase.rows[-1]
        ja += (
            f"参考値：GPU {row.gpus:,}台で期待時間{format_duration_ja(row.expected_seconds)}、"
            f"費用{format_money(row.expected_cost_usd)}。"
        )
        en += (
            f" For reference: {row.gpus:,} GPUs would expect to need {format_duration(row.expected_seconds)}"
            f" at a cost of {format_money(row.expected_cost_usd)}."
        )
    return ja + f"二次被害の有無：{TO_WRITE_JA}", en + f" Secondary damage: {TO_WRITE_EN}"


def _individuals(assessment: Assessment) -> tuple[str, str]:
    if assessment.notify_individuals:
        return (
            f"報告対象事態に該当するため、本人への通知を要する（法第68条第2項）。通知の実施状況：{TO_WRITE_JA}",
            f"The incident is reportable, so the persons concerned must be notified (APPI Art. 68(2))."
            f" Status of the notification: {TO_WRITE_EN}",
        )
    return (
        f"報告対象事態に該当しないため、法令上の本人通知義務はない。任意の通知その他の対応：{TO_WRITE_JA}",
        f"The incident is not reportable, so the law does not require notifying the persons concerned."
        f" Any voluntary notice or other response: {TO_WRITE_EN}",
    )


def _prevention(protection: Protection) -> tuple[str, str]:
    ja = "個人データは目的に必要な項目に限定し、暗号化・署名・有効期限付きで追跡可能な形でのみ外部に提供している。"
    en = "Personal data leaves the city only minimized to its purpose, encrypted, signed, expiring and traceable."
    if protection.revoked_at is not None:
        ja += (
            f"本パッケージは{when_ja(protection.revoked_at)}に失効させた"
            "（失効は取り消せず、再交付は新たな封緘による）。"
        )
        en += (
            f" This package was revoked at {when_en(protection.revoked_at)} (revocation is final; re-issuing"
            " means sealing a new package)."
        )
    if protection.mode != "tethered":
        ja += "今後は紛失時に失効させられる鍵サービス連動方式（テザード）を用いる。"
        en += " From now on, the tethered mode is used, which can be revoked when a package is lost."
    return ja + f"その他の措置：{TO_WRITE_JA}", en + f" Further measures: {TO_WRITE_EN}"


def _other(
    incident: IncidentRecord, durations: Durations, timeline: tuple[TimelineEntry, ...], now: datetime
) -> tuple[str, str]:
    steps_ja = "、".join(f"{EVENT_JA.get(e.event, e.event)} {when_ja(e.at)}" for e in timeline)
    steps_en = "; ".join(f"{EVENT_EN.get(e.event, e.event)} {when_en(e.at)}" for e in timeline)
    ja = f"パッケージID：{incident.package_id}。経過：{steps_ja}。"
    en = f"Package id: {incident.package_id}. Timeline: {steps_en}."
    ja += f"紛失から報告まで{format_duration_ja(durations.time_to_report)}"
    en += f" From the loss to the report: {format_duration(durations.time_to_report)}"
    if durations.time_to_revoke is not None and durations.time_to_revoke >= 0:
        ja += f"、報告から失効まで{format_duration_ja(durations.time_to_revoke)}"
        en += f"; from the report to the revocation: {format_duration(durations.time_to_revoke)}"
    ja += f"。本報告の数値はcivicsealの記録から{when_ja(now)}に作成した。"
    en += f". The figures were compiled by civicseal from its records at {when_en(now)}."
    return ja, en
