"""Write the reviewed sample letters in docs/letters/: one per way a lost package can stand.

For a small synthetic city (1,500 residents, seed 7) whose home names the city 尼崎市 and fills in its
contact block, it seals the print shop's mailing package in each mode, loses it, and writes the letters
of each incident; the first page of each becomes ``letter-<case>.png`` (pdftoppm, 60 dpi) and its text
``letter-<case>.md``. The cases: tethered (revoked, no key released since the loss), opened (tethered,
but a key was released after the loss), recipient, passphrase.

    .venv/bin/python scripts/letter_samples.py [--out docs/letters]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import subprocess
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from civicseal import cseal as fmt
from civicseal.custody.service import Event, record_event
from civicseal.homes import init_home
from civicseal.incident.notify import LetterContext, letter_context, notify
from civicseal.incident.service import open_incident
from civicseal.keys.city import load_city_keys, load_unlock_key
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.unlock import unlock
from civicseal.programme.service import create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import EXAMPLE_CONTACT, Home

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
CASES = {"tethered": "tethered", "opened": "tethered", "recipient": "recipient", "passphrase": "passphrase"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/letters"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = init_home(work / "home", issuer="amagasaki", issuer_name="尼崎市", actor="samples")
        home.write_config(dataclasses.replace(home.config, contact=EXAMPLE_CONTACT))
        home = Home(home.path)
        register = synthesize(1500, 7, work / "register")
        cipher = load_city_keys(home.keys).field_cipher()
        files = [register.residents_path, register.tax_path, register.accounts_path]
        import_register(home.engine, cipher, files, now=NOW)
        create_programme(home.engine, "benefit", reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000)
        run_programme(home.engine, "benefit", rng=random.Random(7), now=NOW)
        token = add_recipient(
            home.engine, "printshop", keygen(work / "printshop.key"), now=NOW, actor="samples",
            display_name="株式会社尼崎印刷",
        )  # fmt: skip
        for case, mode in CASES.items():
            request = SealRequest(
                "benefit", "confirmation-mailing", "printshop", work / f"{case}.cseal", mode=fmt.Mode(mode)
            )
            package_id = seal(home, request, now=NOW, rng=random.Random(3)).package_id
            record_event(home.engine, package_id, Event.HANDED_OVER, holder="printshop", at=NOW, now=NOW)
            lost = NOW + timedelta(hours=8)
            if case == "opened":
                at = lost + timedelta(minutes=40)
                key = load_unlock_key(home.keys)
                unlock(home.engine, key, package_id=package_id, token=token, source="198.51.100.7", now=at)
            incident = open_incident(
                home, package_id=package_id, lost_at=lost, reported_at=lost + timedelta(hours=14),
                reported_by="printshop", circumstances="bag lost", now=lost + timedelta(hours=14, minutes=20),
            )  # fmt: skip
            dated = NOW + timedelta(days=1)
            letters = notify(home, incident, work / case, force=True, now=dated)
            stem = out / f"letter-{case}"
            pdf = work / case / letters.files[0]
            subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", pdf, stem], check=True)
            with home.engine.connect() as conn:
                context, _ = letter_context(conn, home, incident, dated)
            stem.with_suffix(".md").write_text(_markdown(case, context), encoding="utf-8")
            print(f"{stem}.png, {stem}.md")


def _markdown(case: str, context: LetterContext) -> str:
    """The letter's shared text as printed, line for line; the addressee block is a placeholder."""
    lines = [
        f"<!-- sample letter ({case}); written by scripts/letter_samples.py, do not edit -->",
        "",
        "〒郵便番号　住所  ",
        "氏名 様",
        "",
        f"{context.dated}　{context.issuer}　{context.department}",
        "",
        "## 個人情報の漏えいのおそれに関するお詫びとお知らせ",
        "",
    ]
    block = None
    for line in context.body:
        if (
            block is not None
            and line.block != block
            and not (line.text.startswith("・") and lines[-1].startswith("・"))
        ):
            lines.append("")
        lines.append(f"{line.text}  ")
        block = line.block
    return "\n".join([*lines, "", "参照番号　0000 0000 0000", ""])


if __name__ == "__main__":
    main()
