"""Benchmark of issue 5 (incident response): the regulator-ready report for a lost city-sized package.

For the synthetic city (460,517 residents, seed 7, on the embedded SQLite store) it seals the entitled
households for the print shop (confirmation-mailing, recipient mode), hands the package over, opens an
incident and prints:

* seconds to build the report (every figure, from the store) and to render it as Markdown, HTML, PDF
  (WeasyPrint, cold: the first PDF of the process, fonts included) and JSON — budget ≤ 5 s in all;
* for reference, in the same run: the seconds it took to seal that package (the step that produced what
  the report describes) and to count its members with one SQL statement (the floor of any report that
  reads who is affected);
* letters for 10,000 affected households (A4 PDF, 1,000 to a file, the IPAex Mincho font embedded), as
  pages/s, against reportlab writing as many blank A4 pages in the same run.

    python bench/incident.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from civicseal import cseal as fmt
from civicseal.clock import utcnow
from civicseal.custody.service import record_event
from civicseal.incident import render
from civicseal.incident.notify import Mailing, addressees, letter_context, write_letters
from civicseal.incident.report import build_report
from civicseal.incident.service import open_incident
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import Home
from common import PROGRAMME, build_city, city_arguments, timed

BUDGET_S = 5.0
LETTERS = 10_000


def main() -> None:
    args = city_arguments(__doc__.splitlines()[0])
    city = build_city(args.residents, args.seed)
    home, work = city.home, city.work
    add_recipient(home.engine, "printshop", keygen(work / "printshop.key"), now=utcnow(), actor="os:bench")

    request = SealRequest(
        PROGRAMME, "confirmation-mailing", "printshop", work / "mailing.cseal", mode=fmt.Mode.RECIPIENT
    )
    sealed = []
    seal_s = timed(lambda: sealed.append(seal(home, request)))
    package_id = sealed[0].package_id
    now = utcnow()
    record_event(home.engine, package_id, "handed-over", holder="printshop", at=now, now=now)
    incident_id = open_incident(
        home,
        package_id=package_id,
        lost_at=now + timedelta(seconds=1),
        reported_at=now + timedelta(seconds=2),
        reported_by="bench",
        circumstances="Benchmark: the bag holding the USB stick was lost on the way.",
        now=now + timedelta(seconds=3),
    )

    with home.engine.connect() as conn:
        count_s = timed(
            lambda: conn.execute(
                text("SELECT COUNT(*), COUNT(DISTINCT household_code) FROM package_members WHERE package_id = :p"),
                {"p": package_id},
            ).one()
        )
    reports = []
    build_s = timed(lambda: reports.append(build_report(home, incident_id, now=now + timedelta(minutes=1))))
    report = reports[0]
    with tempfile.TemporaryDirectory() as tmp:
        rendered = {
            format_: timed(lambda f=format_: render.write_report(report, f, Path(tmp) / f"report.{f}"))
            for format_ in render.FORMATS
        }
    total = build_s + sum(rendered.values())

    content = report.content
    print(f"residents                          {args.residents:>10,}")
    print(
        f"package                            {content.households_affected:>10,} households,"
        f" {content.residents_affected:,} residents (recipient mode)"
    )
    print(f"build report (all figures)         {build_s:>10.2f} s")
    for format_, seconds in rendered.items():
        print(f"  render {format_:<4}                     {seconds:>10.2f} s")
    verdict = "within" if total <= BUDGET_S else "OVER"
    print(f"report, build + 4 formats          {total:>10.2f} s  (budget ≤ {BUDGET_S:.0f} s: {verdict})")
    print(f"reference: seal the package        {seal_s:>10.2f} s  (the step that produced it)")
    print(f"reference: count its members (SQL) {count_s:>10.3f} s  (one statement)")

    letters_s, mailing = letters_benchmark(home, incident_id, work / "letters", LETTERS)
    blank_s = timed(lambda: blank_pages(work / "blank.pdf", mailing.letters))
    rate = mailing.letters / letters_s
    files = len(mailing.files)
    print(f"letters for {mailing.letters:,} households   {letters_s:>8.2f} s  {rate:>8,.0f} pages/s ({files} PDFs)")
    print(f"reference: as many blank A4 pages   {blank_s:>8.2f} s  ratio {letters_s / blank_s:.1f} ×  (same library)")


def blank_pages(out: Path, count: int) -> None:
    """What reportlab itself costs per A4 page, with no text and no font."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    canvas = Canvas(str(out), pagesize=A4, pageCompression=1)
    for _ in range(count):
        canvas.showPage()
    canvas.save()


def letters_benchmark(home: Home, incident_id: int, out: Path, count: int) -> tuple[float, Mailing]:
    """The first ``count`` households of the package, through the same writer `incident notify` uses."""
    with home.engine.connect() as conn:
        context, package_id = letter_context(conn, home, incident_id, utcnow())
        written: list[Mailing] = []
        seconds = timed(
            lambda: written.append(
                write_letters(itertools.islice(addressees(conn, package_id), count), context, out, "bench", total=count)
            )
        )
    return seconds, written[0]


if __name__ == "__main__":
    main()
