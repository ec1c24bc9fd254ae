"""Demo step: households return their confirmation forms, and a canary's number comes back among them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select

from civicseal.cli.output import console
from civicseal.keys.city import load_city_keys
from civicseal.programme.confirmation import CANARY_KIND, confirm_file
from civicseal.programme.models import ReferenceNumber
from civicseal.programme.reference import printed
from civicseal.seal.sightings import canary_holder
from civicseal.store.home import Home

FORMS = 5  # enough to show the summary; the demo never handles a whole mailing


def returned_forms(city: Home, programme: str, mailing: Path, workdir: Path) -> None:
    """A few households confirm (one with a new account, one declines); one row quotes a canary's number,
    as someone using the print shop's leaked copy would."""
    console.rule("returned forms")
    numbers = pq.read_table(mailing, columns=["reference_number"]).column(0).to_pylist()
    with city.engine.connect() as conn:
        canaries = set(
            conn.execute(select(ReferenceNumber.number).where(ReferenceNumber.kind == CANARY_KIND)).scalars()
        )
    real = [n for n in numbers if n not in canaries][:FORMS]
    canary = next(n for n in numbers if n in canaries)
    lines = ["整理番号,金融機関コード,支店コード,預金種目,口座番号,口座名義カナ,辞退"]
    lines.append(f"{printed(real[0])},1,1,普通,1234567,ｱﾏｶﾞｻｷ ﾀﾛｳ,")
    lines += [f"{printed(n)},,,,,," for n in real[1:-1]]
    lines += [f"{printed(real[-1])},,,,,,1", f"{printed(canary)},,,,,,"]
    forms = workdir / "returned-forms.csv"
    forms.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp932"))
    cipher = load_city_keys(city.keys).field_cipher()
    summary = confirm_file(city.engine, cipher, programme, forms, canary_holder=canary_holder)
    console.print(
        f"  `civicseal programme confirm` on {forms.name} (CP932): {summary.confirmed} confirmed"
        f" ({summary.accounts_given} with a new account), {summary.declined} declined, all or nothing",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"  CANARY ALERT: {summary.canaries} form quoted a canary's reference number — someone used the print"
        " shop's copy; the audit entry names the package and the recipient",
        markup=False,
        soft_wrap=True,
    )
