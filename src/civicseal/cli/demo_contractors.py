"""The demo's contractor step: the print shop is registered as the city's contractor, its subcontractor the
city never approved is refused a package, and the city says who can read how many residents' data now.

In Amagasaki the worker who lost the stick belonged to a sub-subcontractor the city learnt of only after the
loss; here the package cannot reach such an organization at all.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from civicseal.cli.output import console, print_done
from civicseal.clock import tokyo_today, utcnow
from civicseal.contractors.errors import AuthorityRefused
from civicseal.contractors.service import add_contractor, assign_recipient, exposure
from civicseal.cseal.payload import generate_identity
from civicseal.keys.recipients import add_recipient
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import Home

ACTOR = "os:demo"
PRINT_SHOP = "amagasaki-print"
COURIER = "night-courier"


def refuse_unapproved_subcontractor(city: Home, workdir: Path, programme: str, key_service: str) -> None:
    """Register the chain, try to seal for the unapproved subcontractor, print the refusal and the exposure."""
    console.rule("contractors: only organizations the city approved may hold data")
    started = time.perf_counter()
    now, today = utcnow(), tokyo_today()
    add_contractor(
        city.engine, PRINT_SHOP, display_name="株式会社尼崎印刷", contract_ref="尼契第2022-041号",
        valid_from=today - timedelta(days=60), valid_until=today + timedelta(days=120),
        purposes="confirmation-mailing", now=now, actor=ACTOR,
    )  # fmt: skip
    assign_recipient(city.engine, "printshop", PRINT_SHOP, now=now, actor=ACTOR)
    add_contractor(city.engine, COURIER, under=PRINT_SHOP, display_name="有限会社夜間配送", now=now, actor=ACTOR)
    add_recipient(
        city.engine, "courier", generate_identity()[1], now=now, actor=ACTOR, contractor=COURIER,
        display_name="有限会社夜間配送 運搬係",
    )  # fmt: skip
    console.print(
        "  株式会社尼崎印刷 holds a contract for the confirmation mailing; it passed the work on to"
        " 有限会社夜間配送, whom the city never approved",
        markup=False,
    )
    request = SealRequest(
        programme, "confirmation-mailing", "courier", workdir / "courier.cseal", key_service_url=key_service
    )
    try:
        seal(city, request, now=now)
        console.print("  the unapproved subcontractor was given a package", style="red")
    except AuthorityRefused as refused:
        console.print(f"  sealing a package for it was refused ({refused.rule}): {refused}", markup=False)
    rows = exposure(city.engine, now=now)
    print_done("who can read what, now", time.perf_counter() - started)
    for row in rows:
        console.print(
            f"  {'  ' * int(row['level'])}{row['display_name']}: can read {row['residents']:,} residents' data now",  # type: ignore[call-overload]
            markup=False,
        )
