"""Letters to the households a lost package exposed, and the mailing list the print room works from.

Written only when the APPI assessment says individuals must be told (or when forced), and then one A4
page per affected household, in Japanese, in PDF files of at most 1,000 letters each, so a city-sized
mailing streams with bounded memory. The output is personal data by nature (names and addresses):
every file is written atomically and readable by its owner only. Canaries are not residents and get
no letter.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, select, text

from civicseal.audit import log as audit
from civicseal.clock import TOKYO, as_utc, utcnow
from civicseal.incident import glyphs
from civicseal.incident.appi import Assessment, assess, assess_incident, read_facts
from civicseal.incident.errors import IncidentError
from civicseal.incident.letter import Block, LetterFacts, compose, wareki, wrap
from civicseal.incident.models import Incident
from civicseal.keys.evidence import require_intact
from civicseal.keys.recipients import display_name_of_recipient
from civicseal.ledger.fields import FIELDS, Category
from civicseal.ledger.models import Package, Recipient
from civicseal.ledger.purposes import purposes
from civicseal.programme.reference import printed
from civicseal.register.normalize import split_katagaki
from civicseal.store.engine import transaction
from civicseal.store.files import atomic_writer
from civicseal.store.home import Home

LETTERS_PER_FILE = 1_000
FONT_NAME = glyphs.BODY.name
MM: Final = 72 / 25.4
MARGIN: Final = 22 * MM
BODY_SIZE: Final = 10.0
BODY_LEADING: Final = 5.2 * MM
HEADING_SIZE: Final = 11.0
ADDRESS_SIZE: Final = 11.0
ADDRESS_WIDTH: Final = 95 * MM  # what the window of a 長形3号 envelope shows
TITLE: Final = "個人情報の漏えいのおそれに関するお詫びとお知らせ"
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


@dataclass(frozen=True)
class Line:
    """One line of the letter's shared body, placed on the page."""

    text: str
    x: float
    y: float
    size: float
    block: int  # which paragraph of :func:`~civicseal.incident.letter.compose` it belongs to


@dataclass(frozen=True)
class LetterContext:
    """What every letter of one incident says, laid out once: only the addressee and reference differ."""

    issuer: str
    department: str
    dated: str
    body: tuple[Line, ...]
    reference_y: float  # where each letter's own reference number goes, below the body


def check_contact(home: Home) -> None:
    """Refuse, naming every empty key of the city's contact block: a letter must say whom to call."""
    if empty := home.config.contact.empty_keys():
        raise IncidentError(
            f"{home.config_path}: [contact] {', '.join(empty)} empty; fill them in (every letter tells the"
            " resident whom to call) and run again"
        )


def letter_context(conn: Connection, home: Home, incident_id: int, now: datetime) -> tuple[LetterContext, str]:
    """The letter of incident ``incident_id`` composed and laid out, and the package it is about."""
    row = conn.execute(
        select(
            Incident.reported_at, Package.purpose, Package.fields, Package.revoked_at, Recipient.name.label("recipient")
        )
        .join(Package, Package.id == Incident.package_id)
        .join(Recipient, Recipient.id == Package.recipient_id)
        .where(Incident.id == incident_id)
    ).first()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    facts = read_facts(conn, incident_id, now=now)
    config = home.config
    categories = [FIELDS[f].category for f in row.fields.split(",") if f != "pseudonym"]
    purpose = purposes().get(row.purpose)
    if purpose is not None:  # a list of entitled households says, by being one, that all are tax-exempt
        categories.append(Category.BENEFIT)
    letter = LetterFacts(
        issuer=config.issuer_display,
        recipient=display_name_of_recipient(conn, row.recipient),
        purpose=purpose.description_ja if purpose is not None else row.purpose,
        lost_at=facts.lost_at,
        reported_at=as_utc(row.reported_at),
        mode=facts.mode,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at is not None else None,
        granted_after_loss=facts.granted_after_loss,
        categories=tuple(dict.fromkeys(categories)),
        reportable=assess(facts).reportable,
        contact=config.contact,
    )
    body, reference_y = _layout(compose(letter))
    context = LetterContext(
        issuer=letter.issuer,
        department=config.contact.department,
        dated=wareki(now.astimezone(TOKYO).date()),
        body=body,
        reference_y=reference_y,
    )
    return context, facts.package_id


def _layout(blocks: tuple[Block, ...]) -> tuple[tuple[Line, ...], float]:
    """Place the blocks below the title, or refuse when they do not fit one A4 page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase.pdfmetrics import stringWidth

    glyphs.register_fonts()
    width, height = A4
    right = width - MARGIN
    lines: list[Line] = []
    y = height - MARGIN - 66 * MM
    for number, block in enumerate(blocks):
        size = HEADING_SIZE if block.kind == "heading" else BODY_SIZE
        if block.kind == "heading":
            y -= 2.4 * MM
        x = MARGIN if block.kind == "heading" else MARGIN + 4 * MM
        text = f"・{block.text}" if block.kind == "item" else block.text
        indent = stringWidth("・", FONT_NAME, size) if block.kind == "item" else 0
        wrapped = wrap(text, right - x - indent, lambda t, s=size: stringWidth(t, FONT_NAME, s))
        for n, chunk in enumerate(wrapped):
            lines.append(Line(chunk, x + (indent if n else 0), y, size, number))
            y -= BODY_LEADING if block.kind != "heading" else BODY_LEADING + 0.6 * MM
    reference_y = y - 2 * MM
    if reference_y < 18 * MM:
        raise IncidentError("the letter does not fit on one A4 page: shorten the [contact] entries in config.toml")
    return tuple(lines), reference_y


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


def _address_lines(address: str) -> list[str]:
    """The address as the envelope's window shows it: 住所 on a line and its 方書 (building and room) on the
    next, as Japanese mail is addressed; a line too long for the window is broken between phrases."""

    def width_of(text: str) -> float:
        return glyphs.width(text, ADDRESS_SIZE)

    parts = split_katagaki(address) or (address,)
    return [
        line
        for part in parts
        for line in ([part] if width_of(part) <= ADDRESS_WIDTH else wrap(part, ADDRESS_WIDTH, width_of))
    ]


class _LetterFile:
    """One PDF of up to LETTERS_PER_FILE A4 pages, drawn with reportlab and the embedded IPAex font.

    The body every letter shares is drawn once per file as a form XObject that each page places: a
    page costs its address, name and reference number only.
    """

    def __init__(self, path: Path) -> None:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfgen.canvas import Canvas

        glyphs.register_fonts()
        self.path = path
        self._writer = atomic_writer(path)
        self._file = self._writer.__enter__()
        self.canvas = Canvas(self._file, pagesize=A4, pageCompression=1, invariant=1)
        self.canvas.setTitle(TITLE)
        self.width, self.height = A4
        self.pages = 0
        self._form: LetterContext | None = None

    def _body_form(self, context: LetterContext) -> None:
        c = self.canvas
        c.beginForm("body")
        c.setFont(FONT_NAME, 10.5)
        top = self.height - MARGIN
        c.drawRightString(self.width - MARGIN, top - 32 * MM, context.dated)
        c.drawRightString(self.width - MARGIN, top - 38 * MM, context.issuer)
        c.drawRightString(self.width - MARGIN, top - 44 * MM, context.department)
        c.setFont(FONT_NAME, 14)
        c.drawCentredString(self.width / 2, top - 55 * MM, TITLE)
        for line in context.body:
            c.setFont(FONT_NAME, line.size)
            c.drawString(line.x, line.y, line.text)
        c.endForm()
        self._form = context

    def letter(self, to: Addressee, context: LetterContext) -> None:
        if self._form is not context:
            self._body_form(context)
        c = self.canvas
        left, top = MARGIN, self.height - MARGIN
        glyphs.draw(c, left, top, f"〒{to.postcode}", ADDRESS_SIZE)
        y = top - 6 * MM
        for line in _address_lines(to.address):
            glyphs.draw(c, left, y, line, ADDRESS_SIZE)
            y -= 5 * MM
        glyphs.draw(c, left, y - 3 * MM, f"{to.name} 様", 13)
        c.doForm("body")
        c.setFont(FONT_NAME, 12)
        c.drawString(left + 4 * MM, context.reference_y, f"参照番号　{printed(to.reference_number)}")
        c.showPage()
        self.pages += 1

    def close(self) -> None:
        self.canvas.save()
        self._writer.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._writer.__exit__(type(exc), exc, exc.__traceback__)


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
    """One page per addressee, 1,000 to a PDF, and the mailing list beside them — all of it, or nothing.

    An earlier mailing of the same incident in ``out_dir`` is never replaced: it may already be at the printer.
    """
    earlier = sorted(out_dir.glob(f"{prefix}-*")) if out_dir.is_dir() else []
    if earlier:
        raise IncidentError(f"{out_dir}: holds an earlier mailing ({earlier[0].name}, …); choose another --out folder")
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
    check_contact(home)
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
