"""The report as Markdown, HTML, PDF or JSON, all from one outline so the formats never disagree.

:func:`outline` turns a :class:`~civicseal.incident.report.Report` into sections of paragraphs and
tables; Markdown and HTML each walk that outline, and the PDF is the HTML typeset by WeasyPrint with a
Japanese font (IPAexGothic or Noto Sans CJK JP, installed from Debian by ``scripts/test.sh``). Times are
shown on the city's clock (JST); JSON carries RFC 3339 UTC. Files are written atomically.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Final

from civicseal.contractors.service import Link, purpose_label
from civicseal.incident import attack
from civicseal.incident.appi import CATEGORY_JA, EVENT_EN, EVENT_JA, FIELD_JA, MODE_JA, TO_WRITE_JA, when_en
from civicseal.incident.errors import IncidentError
from civicseal.incident.report import PassphraseAttack, Report, UnlockEntry
from civicseal.store.files import atomic_writer

TEMPLATES: Final = Path(__file__).with_name("templates")
FORMATS: Final = ("md", "html", "pdf", "json")
MAX_ATTEMPTS_SHOWN: Final = 100  # per table in md/html/pdf; JSON carries every attempt


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[str | Table, ...]  # a str is one paragraph


def outline(report: Report) -> tuple[Section, ...]:
    """The report's sections, in reading order."""
    return (
        _summary(report),
        _timeline(report),
        _content(report),
        _contract_chain(report),
        _protection(report),
        _counterfactual(report),
        _assessment(report),
        _items(report),
    )


def _named(display_name: str, slug: str) -> str:
    """An organization as people read it, its machine name beside it when the two differ."""
    return display_name if display_name == slug else f"{display_name} ({slug})"


def _yes(value: bool) -> str:
    return "yes / はい" if value else "no / いいえ"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0:
        return f"before the report ({attack.format_duration(-seconds)} earlier)"
    return attack.format_duration(seconds)


def _summary(report: Report) -> Section:
    a, c, i = report.assessment, report.content, report.incident
    verdict = "REPORTABLE to the PPC / 報告対象" if a.reportable else "not reportable / 報告対象外"
    return Section(
        "概要 Summary",
        (
            f"Incident {i.id}: package {report.package_id} ({report.mode} mode, {MODE_JA.get(report.mode, '')}),"
            f" lost at {when_en(i.lost_at)}. {c.residents_affected:,} residents in {c.households_affected:,}"
            f" households affected. Assessment under APPI: {verdict}.",
            Table(
                ("", ""),
                (
                    ("issuer / 機関", report.issuer_name),
                    ("incident / 事案番号", str(i.id)),
                    ("package / パッケージ", report.package_id),
                    ("reported by / 報告者", i.reported_by),
                    ("status / 状況", "open / 対応中" if i.is_open else "closed / 終結"),
                    ("residents affected / 本人の数", f"{c.residents_affected:,}"),
                    ("households affected / 世帯数", f"{c.households_affected:,}"),
                    ("time to report / 報告までの時間", _duration(report.durations.time_to_report)),
                    ("time to revoke / 失効までの時間", _duration(report.durations.time_to_revoke)),
                    ("lost to revoked / 紛失から失効まで", _duration(report.durations.lost_to_revoked)),
                    ("reportable / 報告対象", _yes(a.reportable)),
                    ("notify individuals / 本人通知", _yes(a.notify_individuals)),
                    ("report generated / 作成日時", when_en(report.generated_at)),
                ),
            ),
        ),
    )


def _timeline(report: Report) -> Section:
    events = report.timeline
    rows = tuple((when_en(e.at), EVENT_EN.get(e.event, e.event), EVENT_JA.get(e.event, e.event)) for e in events)
    blocks: list[str | Table] = [Table(("time (JST)", "event", "事象"), rows)]
    if report.incident.found_at is not None or report.incident.outcome:
        blocks.append(f"Outcome / 結果: {report.incident.outcome or ''}")
    return Section("経過 Timeline", tuple(blocks))


def _content(report: Report) -> Section:
    c = report.content
    fields = tuple((f, FIELD_JA.get(f, f)) for f in c.fields)
    tax = {"carried": "carried / 含む", "implied": "implied: every member is tax-exempt / 非課税であることが推知される"}
    return Section(
        "内容 Content",
        (
            f"Purpose / 目的: {c.purpose_description_ja} — {c.purpose_description} ({c.purpose})."
            f" Programme / 事業: {c.programme or '—'} (fiscal year {c.fiscal_year or '—'})."
            f" Recipient / 提供先: {_named(c.recipient_name, c.recipient)}. Payload: {c.payload_format}.",
            Table(("field", "項目"), fields),
            Table(
                ("", ""),
                (
                    ("records (households) / 件数（世帯）", f"{c.records:,}"),
                    ("residents affected / 本人の数", f"{c.residents_affected:,}"),
                    ("households affected / 世帯数", f"{c.households_affected:,}"),
                    ("canaries (not counted) / カナリア（対象外）", f"{c.canaries:,}"),
                    (
                        "data categories / データ区分",
                        ", ".join(f"{x} ({CATEGORY_JA.get(x, x)})" for x in c.categories),
                    ),
                    ("bank accounts / 口座情報", _yes(c.bank_accounts)),
                    ("tax data / 税情報", tax.get(c.tax_data, "none / なし")),
                    ("My Number / 個人番号", _yes(c.my_number)),
                ),
            ),
        ),
    )


CHAIN_HEADERS: Final = ("organization / 事業者", "basis / 根拠", "purposes / 目的", "valid / 期間", "withdrawn / 取消")


def _contract_chain(report: Report) -> Section:
    """Who held the package, and on whose approval: the chain the city lacked in June 2022."""
    cc = report.contract_chain
    if cc is None:
        return Section(
            "委託関係 Contract chain",
            (
                f"Recipient {report.content.recipient} belongs to no registered contractor (the city's own"
                " staff, or a contractor not registered). / 提供先は登録された委託先に属していない。",
            ),
        )
    rows = tuple(
        (
            f"{'　' * depth}{link.display_name} ({link.name})",
            _basis(link),
            "、".join(purpose_label(p) for p in link.purposes) if link.purposes else "—",
            f"{link.valid_from} – {link.valid_until}" if link.valid_from else "—",
            when_en(link.withdrawn_at) if link.withdrawn_at else "—",
        )
        for depth, link in enumerate(cc.links)
    )
    verdict = "yes / はい" if cc.authorized_at_loss else f"NO / いいえ — {cc.refusal_rule}: {cc.refusal}"
    return Section(
        "委託関係 Contract chain",
        (
            f"The package was held by {cc.links[-1].display_name} (recipient {report.content.recipient})."
            " Its chain, from the city's contractor down / 委託の連鎖（市の委託先から順に）:",
            Table(CHAIN_HEADERS, rows),
            f"The chain approved the purpose {purpose_label(report.content.purpose)} on the day of the loss"
            f" / 紛失時に当該目的の承認があったか: {verdict}",
        ),
    )


def _basis(link: Link) -> str:
    if link.parent is None:
        return f"contract 契約 {link.contract_ref or '—'}"
    if link.purposes is None or link.approved_at is None:
        return "never approved by the city / 市の承認なし"
    return f"approved 承認 {link.approved_by or '—'}, {when_en(link.approved_at)}"


def _attempts(title: str, attempts: tuple[UnlockEntry, ...]) -> list[str | Table]:
    shown = attempts[:MAX_ATTEMPTS_SHOWN]
    blocks: list[str | Table] = [f"{title}: {len(attempts):,}"]
    if shown:
        blocks.append(
            Table(("time (JST)", "outcome", "source"), tuple((when_en(a.at), a.outcome, a.source) for a in shown))
        )
    if len(attempts) > len(shown):
        blocks.append(f"… and {len(attempts) - len(shown):,} more (every attempt is in the JSON report).")
    return blocks


def _protection(report: Report) -> Section:
    p = report.protection
    blocks: list[str | Table] = [
        f"Mode / 方式: {p.mode} ({MODE_JA.get(p.mode, '')}). Offline attack possible / オフライン攻撃:"
        f" {_yes(p.offline_attack)}. Revoked / 失効: {when_en(p.revoked_at) if p.revoked_at else 'no / いいえ'}."
        f" Expires / 有効期限: {when_en(p.expires_at)}.",
        f"What an attacker needs: {p.attacker_needs}",
        f"攻撃者に必要なもの：{p.attacker_needs_ja}",
    ]
    if p.security_bits is not None:
        blocks.append(f"X25519: about 2^{p.security_bits} security — infeasible to break / 解読は現実的に不可能.")
    if p.header_stanzas is not None:
        blocks.append(f"Age header of the file examined: stanzas {', '.join(p.header_stanzas)}.")
    blocks += _attempts("Unlock attempts before the loss / 紛失前の開封要求", p.unlocks_before)
    blocks += _attempts("Unlock attempts at or after the loss / 紛失時以降の開封要求", p.unlocks_after)
    blocks.append(f"Granted at or after the loss / 紛失時以降の許可: {p.granted_after:,}")
    blocks.append(_anchor(report.anchor))
    if p.passphrase is not None:
        blocks += _passphrase(p.passphrase)
    return Section("保護 Protection", tuple(blocks))


def _anchor(anchor: dict[str, Any] | None) -> str:
    """The evidence's footing: the latest chain head signed outside the database, which the above agrees with."""
    if anchor is None:
        return "Audit anchor / 監査アンカー: none yet (run `civicseal audit anchor`) / 未作成"
    return (
        f"Unlock evidence read from the verified audit chain / 開封記録は検証済みの監査チェーンから読み取り。"
        f" Latest anchor / 最新アンカー: row {anchor['seq']}, hash {anchor['hash']}, signed {anchor['at']}"
        f" by key {anchor['key_id']}."
    )


def _passphrase(pa: PassphraseAttack) -> list[str | Table]:
    basis = {
        "generated": "the generated passphrase's search space (every guess equally likely)",
        "zxcvbn": "zxcvbn's estimate of the guesses for the passphrase supplied",
        "typed-minimum": "the least civicseal accepts for a typed passphrase (10^16); supply it for an estimate",
    }[pa.basis]
    ref = pa.reference
    header = f"{pa.header_log_n}" if pa.header_log_n is not None else "not examined"
    rows = tuple(
        (
            f"{r.gpus:,}",
            f"{r.guesses_per_second:,.1f}",
            attack.format_duration(r.expected_seconds),
            attack.format_duration(r.exhaust_seconds),
            attack.format_money(r.expected_cost_usd),
        )
        for r in pa.rows
    )
    return [
        f"age scrypt work factor: log N = {pa.scrypt_log_n} (recorded at sealing: {pa.recorded_log_n};"
        f" read from the file's header: {header}).",
        f"Guesses: {attack.format_guesses(pa.guesses)}, from {basis}.",
        Table(("GPUs", "guesses/s", "expected time", "time to exhaust", "expected cost"), rows),
        f"Reference: {ref.source}, {ref.rate_at_reference:,.0f} H/s at log N {ref.reference_log_n}, scaling"
        f" linearly with N; USD {ref.usd_per_gpu_hour:.2f} per GPU-hour ({ref.cost_source}), JPY"
        f" {ref.jpy_per_usd:,.0f} per USD; as of {ref.as_of}.",
    ]


def _counterfactual(report: Report) -> Section:
    cf, c = report.counterfactual, report.content
    rows = (
        ("residents / 住民", f"{cf.residents:,}", f"{c.residents_affected:,}"),
        ("households / 世帯", f"{cf.households:,}", f"{c.households_affected:,}"),
        (f"tax rows (FY {cf.fiscal_year or 'all'}) / 税情報", f"{cf.tax_rows:,}", c.tax_data),
        ("bank accounts / 口座", f"{cf.bank_accounts:,}", "yes" if c.bank_accounts else "0"),
        ("My Numbers / 個人番号", f"{cf.my_numbers:,}", "yes" if c.my_number else "0"),
        ("fields / 項目", f"{len(cf.fields)}: {', '.join(cf.fields)}", f"{len(c.fields)}: {', '.join(c.fields)}"),
        ("categories / 区分", ", ".join(cf.categories), ", ".join(c.categories)),
        ("protection / 保護", f"{cf.protection} / {cf.protection_ja}", report.protection.attacker_needs),
        ("reportable / 報告対象", _yes(cf.reportable), _yes(report.assessment.reportable)),
    )
    return Section(
        "比較 What the old practice would have exposed",
        (
            "The old practice: the whole register, every field, on a password-protected USB stick — next to what"
            " this package exposed for the same purpose.",
            Table(("", "old practice / 従来", "this package / 本件"), rows),
        ),
    )


def _assessment(report: Report) -> Section:
    a = report.assessment
    blocks: list[str | Table] = [
        f"Reportable / 報告対象: {_yes(a.reportable)}. Notify individuals / 本人通知: {_yes(a.notify_individuals)}.",
        Table(("reason", "理由"), tuple(zip(a.reasons, a.reasons_ja, strict=True))),
    ]
    if a.exemption:
        blocks.append(f"Encryption exemption / 高度な暗号化等の措置: {a.exemption}")
    return Section("個人情報保護法上の評価 Assessment under the APPI", tuple(blocks))


def _items(report: Report) -> Section:
    blocks: list[str | Table] = [
        f"The nine items of the report to the Personal Information Protection Commission, pre-filled. {TO_WRITE_JA}"
        " marks what a person still has to write, 【要確認】 an assumption to confirm; ✎ marks an item with either."
    ]
    for n, item in enumerate(report.items, 1):
        mark = " ✎" if item.needs_person else ""
        blocks.append(Table((f"{n}. {item.title_ja}{mark}", item.title_en), ((item.text_ja, item.text_en),)))
    return Section("報告事項 Report to the PPC (9 items)", tuple(blocks))


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _title(report: Report) -> str:
    return f"{report.issuer_name} 個人データ漏えい等事案報告 Incident report {report.incident.id}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _md_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |"]
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return lines


def to_markdown(report: Report) -> str:
    """The report as Markdown (GitHub tables)."""
    lines = [f"# {_title(report)}", ""]
    for section in outline(report):
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += (_md_table(block) if isinstance(block, Table) else [block.replace("\n", "  \n")]) + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# HTML and PDF
# --------------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: Report) -> str:
    """A self-contained HTML page (inline CSS, A4 pages, Japanese fonts) that WeasyPrint typesets as is."""
    parts = []
    for section in outline(report):
        parts.append(f"<section><h2>{_esc(section.title)}</h2>")
        for block in section.blocks:
            parts.append(_html_table(block) if isinstance(block, Table) else f"<p>{_esc(block)}</p>")
        parts.append("</section>")
    page = Template((TEMPLATES / "report.html").read_text(encoding="utf-8"))
    return page.substitute(
        title=_esc(_title(report)),
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        body="\n".join(parts),
    )


def pdf_bytes(report: Report) -> bytes:
    """The HTML typeset to PDF. WeasyPrint is imported here: it needs Pango, which only this step uses."""
    import weasyprint

    return weasyprint.HTML(string=to_html(report)).write_pdf()


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, sort_keys=True, indent=2)


def render(report: Report, format_: str) -> bytes:
    """The report in ``format_`` (md, html, pdf or json) as bytes."""
    if format_ == "md":
        return to_markdown(report).encode("utf-8")
    if format_ == "html":
        return to_html(report).encode("utf-8")
    if format_ == "pdf":
        return pdf_bytes(report)
    if format_ == "json":
        return to_json(report).encode("utf-8")
    raise ValueError(f"format: one of {', '.join(FORMATS)}")


def write_report(report: Report, format_: str, out: Path, *, replace: bool = False) -> int:
    """Render and write atomically (0600: the report names the incident and its circumstances); returns bytes.

    An earlier report is kept unless ``replace``: it may be the version already sent to the regulator.
    """
    if Path(out).exists() and not replace:
        raise IncidentError(f"{out}: exists; choose another file or add --force")
    data = render(report, format_)
    with atomic_writer(Path(out)) as f:
        f.write(data)
    return len(data)


def to_pdf(report: Report, out: Path, *, replace: bool = False) -> int:
    """Typeset the report to ``out`` as PDF, atomically; returns its size in bytes."""
    return write_report(report, "pdf", out, replace=replace)
