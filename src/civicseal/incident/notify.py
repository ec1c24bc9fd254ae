"""Letters to the households a lost package exposed, and the mailing list the print room works from.

Written only when the APPI assessment says individuals must be told (or when forced), and then one A4
page per affected household, in Japanese, in PDF files of at most 1,000 letters each, so a city-sized
mailing streams with bounded memory. The output is personal data by nature (names and addresses):
every file is written atomically and readable by its owner only. Canaries are not residents and get
no letter.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, select, text

from civicseal.audit import log as audit
from civicseal.clock import TOKYO, as_utc, utcnow
from civicseal.incident.appi import Assessment, assess_incident
from civicseal.incident.errors import IncidentError
from civicseal.incident.models import Incident
from civicseal.keys.evidence import granted_between, require_intact
from civicseal.ledger.models import Package
from civicseal.programme.reference import printed
from civicseal.register.normalize import ERAS
from civicseal.seal.fields import FIELDS, Category
from civicseal.seal.purposes import purposes
from civicseal.store.engine import transaction
from civicseal.store.files import atomic_writer
from civicseal.store.home import Home

LETTERS_PER_FILE = 1_000
FONT_NAME = "IPAexMincho"
FONT_HINTS = ("IPAexMincho", "IPAex明朝")
CATEGORY_JA = {
    Category.IDENTIFIER: "給付金の参照番号",
    Category.NAME: "世帯主の氏名",
    Category.ADDRESS: "住所・郵便番号",
    Category.BIRTH_DATE: "世帯主の生年月日",
    Category.BENEFIT: "給付金の対象であること（世帯全員が住民税非課税であること）",
    Category.FINANCIAL: "振込先の口座情報",
    Category.TAX: "税に関する情報",
    Category.MY_NUMBER: "個人番号（マイナンバー）",
    Category.SEX: "性別",
}
PROTECTION_JA = {
    "tethered": (
        "このデータは暗号化されており、市の鍵管理サービスの許可なしには開くことができません。"
        "紛失の報告を受けて直ちに開封を停止しました。"
    ),
    "recipient": "このデータは委託先の鍵でのみ開くことができるよう暗号化されています。",
    "passphrase": "このデータはパスフレーズで暗号化されています。",
}
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Addressee:
    household_code: str
    reference_number: str
    name: str
    postcode: str
    address: str


@dataclass
class NotifySummary:
    incident_id: int
    due: bool
    forced: bool
    reasons: tuple[str, ...]
    letters: int = 0
    files: list[str] = field(default_factory=list)
    mailing_list: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "incident_id": self.incident_id,
            "due": self.due,
            "forced": self.forced,
            "reasons": list(self.reasons),
            "letters": self.letters,
            "pages": self.letters,
            "files": self.files,
            "mailing_list": self.mailing_list,
        }


def wareki(day: date) -> str:
    """令和8年11月23日: how a letter from a Japanese city is dated."""
    era = next(e for e in reversed(ERAS) if e.first <= day)
    year = day.year - era.first.year + 1
    return f"{era.name}{'元' if year == 1 else year}年{day.month}月{day.day}日"


@cache
def font_path() -> Path:
    """The Debian IPAex Mincho font (fonts-ipaexfont-mincho), found through fontconfig."""
    for hint in FONT_HINTS:
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", hint], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            break
        if found and ("ipaex" in found.lower() or "japanese-mincho" in found.lower()):
            return Path(found)
    for candidate in (
        Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf"),
        Path("/usr/share/fonts/truetype/fonts-japanese-mincho.ttf"),
    ):
        if candidate.exists():
            return candidate
    raise IncidentError("letters need the IPAex Mincho font: apt-get install fonts-ipaexfont-mincho")


@dataclass(frozen=True)
class LetterContext:
    """What every letter of one incident says."""

    issuer: str
    dated: str
    lost_on: str
    purpose: str
    categories: tuple[str, ...]
    protection: str
    unopened: bool  # the key service has released no key since the loss: the only proof there can be


def letter_context(conn: Connection, home: Home, incident_id: int, now: datetime) -> tuple[LetterContext, str]:
    row = conn.execute(
        select(Incident.lost_at, Package.id, Package.purpose, Package.fields, Package.mode)
        .join(Package, Package.id == Incident.package_id)
        .where(Incident.id == incident_id)
    ).first()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    lost_at, package_id, purpose, fields, mode = row
    categories = tuple(dict.fromkeys(CATEGORY_JA[FIELDS[f].category] for f in fields.split(",") if f != "pseudonym"))
    described = purposes()[purpose].description_ja if purpose in purposes() else purpose
    opened_after_loss = granted_between(conn, package_id, as_utc(lost_at), now)
    context = LetterContext(
        issuer=home.config.issuer,
        dated=wareki(now.astimezone(TOKYO).date()),
        lost_on=wareki(as_utc(lost_at).astimezone(TOKYO).date()),
        purpose=described,
        categories=categories,
        protection=PROTECTION_JA.get(mode, ""),
        unopened=mode == "tethered" and opened_after_loss == 0,
    )
    return context, package_id


def addressees(conn: Connection, package_id: str) -> Iterator[Addressee]:
    """One per affected household: its entitlement's recorded head, at the address the register has now."""
    result = conn.execute(
        text(
            "SELECT e.household_code, e.reference_number, r.name, r.postcode, r.address"
            " FROM (SELECT DISTINCT household_code FROM package_members WHERE package_id = :package) h"
            " JOIN packages p ON p.id = :package"
            " JOIN entitlements e ON e.programme_id = p.programme_id AND e.household_code = h.household_code"
            " JOIN residents r ON r.resident_code = e.head_resident_code"
            " ORDER BY r.postcode, e.household_code"
        ).execution_options(stream_results=True, yield_per=1_000),
        {"package": package_id},
    )
    for row in result:
        yield Addressee(*row)


class _LetterFile:
    """One PDF of up to LETTERS_PER_FILE A4 pages, drawn with reportlab and the embedded IPAex font."""

    def __init__(self, path: Path) -> None:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont
        from reportlab.pdfgen.canvas import Canvas

        if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_path())))
        self.path = path
        self._writer = atomic_writer(path)
        self._file = self._writer.__enter__()
        self.canvas = Canvas(self._file, pagesize=A4, pageCompression=1, invariant=1)
        self.canvas.setTitle("個人情報の漏えいのおそれに関するお詫びとお知らせ")
        self.width, self.height = A4
        self.pages = 0

    def letter(self, to: Addressee, context: LetterContext) -> None:
        c, mm = self.canvas, 72 / 25.4
        left, top = 25 * mm, self.height - 25 * mm
        c.setFont(FONT_NAME, 11)
        c.drawString(left, top, f"〒{to.postcode}")
        c.drawString(left, top - 6 * mm, to.address)
        c.setFont(FONT_NAME, 13)
        c.drawString(left, top - 14 * mm, f"{to.name} 様")
        c.setFont(FONT_NAME, 10.5)
        c.drawRightString(self.width - 25 * mm, top - 26 * mm, context.dated)
        c.drawRightString(self.width - 25 * mm, top - 32 * mm, f"{context.issuer} 個人情報保護担当")
        c.setFont(FONT_NAME, 14)
        c.drawCentredString(self.width / 2, top - 48 * mm, "個人情報の漏えいのおそれに関するお詫びとお知らせ")
        c.setFont(FONT_NAME, 10.5)
        body = [
            f"{context.lost_on}、{context.purpose}のために委託先へ交付した電子データを",
            "記録した媒体を紛失したとの報告を受けました。このデータには、あなたの世帯の次の情報が含まれていました。",
            *(f"　・{category}" for category in context.categories),
            context.protection,
            *(["紛失以降、このデータを開くための鍵は一度も発行されていません。"] if context.unopened else []),
            "皆様に多大なご心配とご迷惑をおかけしますことを、深くお詫び申し上げます。",
            "不審な電話や訪問、郵便物などがありましたら、下記までご連絡ください。",
            f"お問い合わせの際は、参照番号 {printed(to.reference_number)} をお伝えください。",
        ]
        y = top - 62 * mm
        for line in body:
            for chunk in _wrap(line, 44):
                c.drawString(left, y, chunk)
                y -= 6.5 * mm
        c.drawString(left, 30 * mm, f"お問い合わせ先：{context.issuer} 個人情報保護担当")
        c.showPage()
        self.pages += 1

    def close(self) -> None:
        self.canvas.save()
        self._writer.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._writer.__exit__(type(exc), exc, exc.__traceback__)


def _wrap(line: str, width: int) -> list[str]:
    """Japanese text breaks anywhere; 44 full-width characters fill the line at 10.5 pt."""
    return [line[i : i + width] for i in range(0, len(line), width)] or [""]


@dataclass
class Mailing:
    """What one run of letters wrote: PDF file names, letters, and the mailing list's name."""

    files: list[str] = field(default_factory=list)
    letters: int = 0
    mailing_list: str = ""


def write_letters(
    to: Iterable[Addressee],
    context: LetterContext,
    out_dir: Path,
    prefix: str,
    *,
    total: int,
    progress: ProgressFn | None = None,
) -> Mailing:
    """One page per addressee, 1,000 to a PDF, and the mailing list beside them — all of it, or nothing."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mailing = Mailing(mailing_list=f"{prefix}-mailing-list.csv")
    with atomic_writer(out_dir / mailing.mailing_list, text=True) as listing:
        writer = csv.writer(listing, lineterminator="\r\n")
        writer.writerow(["file", "page", "reference_number", "postcode", "address", "name"])
        letters: _LetterFile | None = None
        try:
            for addressee in to:
                if letters is None or letters.pages == LETTERS_PER_FILE:
                    if letters is not None:
                        letters.close()
                        mailing.files.append(letters.path.name)
                    letters = _LetterFile(out_dir / f"{prefix}-letters-{len(mailing.files) + 1:04d}.pdf")
                letters.letter(addressee, context)
                writer.writerow(
                    [letters.path.name, letters.pages, printed(addressee.reference_number),
                     addressee.postcode, addressee.address, addressee.name]
                )  # fmt: skip
                mailing.letters += 1
                if progress is not None and mailing.letters % 100 == 0:
                    progress(mailing.letters, total)
            if letters is not None:
                letters.close()
                mailing.files.append(letters.path.name)
        except BaseException as exc:
            if letters is not None:
                letters.abort(exc)
            for written in mailing.files:  # no partial mailing is left to be sent
                (out_dir / written).unlink(missing_ok=True)
            raise
    if progress is not None:
        progress(mailing.letters, total)
    return mailing


def notify(
    home: Home,
    incident_id: int,
    out_dir: Path,
    *,
    force: bool = False,
    now: datetime | None = None,
    actor: str | None = None,
    progress: ProgressFn | None = None,
) -> NotifySummary:
    """Letters and a mailing list when individuals must be told (or ``force``); otherwise nothing, and why."""
    now = now or utcnow()
    require_intact(home)  # a letter saying "no one opened it" must rest on evidence that was not edited
    assessment: Assessment = assess_incident(home.engine, incident_id, now=now)
    summary = NotifySummary(incident_id, assessment.notify_individuals, force, assessment.reasons)
    if not (assessment.notify_individuals or force):
        return summary
    with home.engine.connect() as conn:
        context, package_id = letter_context(conn, home, incident_id, now)
        total = conn.execute(
            text("SELECT COUNT(DISTINCT household_code) FROM package_members WHERE package_id = :p"), {"p": package_id}
        ).scalar_one()
        mailing = write_letters(
            addressees(conn, package_id), context, out_dir, f"incident-{incident_id}", total=total, progress=progress
        )
    summary.files, summary.letters, summary.mailing_list = mailing.files, mailing.letters, mailing.mailing_list
    with transaction(home.engine) as conn:
        audit.append(
            conn, "incident.notify", "incident", incident_id,
            {"letters": summary.letters, "files": len(summary.files), "forced": force and not summary.due},
            actor=actor, now=now,
        )  # fmt: skip
    return summary
