"""Benchmark of issue 4: sealing the demo city, the Amagasaki case, encryption against Debian's age, unlocks.

For the synthetic city (460,517 residents, seed 7, on the embedded SQLite store) it prints:

* seconds to seal the entitled households for the print shop (confirmation-mailing, tethered);
* seconds to seal all residents with every field — what the USB stick held — for comparison;
* the encryption step alone (pyrage) against ``/usr/bin/age -r`` encrypting the same plaintext bytes in
  the same run (budget: ratio ≤ 1.5×);
* key-service unlock latency p50/p99 over 200 unlocks on loopback (budget: p50 ≤ 50 ms), from unlock.py,
  with its reference (plain health checks on the same server).

    python bench/seal.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from statistics import median

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import text

import unlock
from civicseal import cseal as fmt
from civicseal.clock import utcnow
from civicseal.cseal.payload import encrypt_to_recipient
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.register.models import tax_row_key
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import Home
from common import PROGRAMME, build_city, city_arguments, timed

AGE = "/usr/bin/age"
WHOLE_REGISTER = (
    "SELECT r.resident_code, r.household_code, r.relationship, r.name, r.name_kana, r.sex, r.birth_date,"
    " r.postcode, r.address, r.moved_in, r.moved_out, r.deceased, r.my_number_enc, t.taxed, t.income_enc,"
    " t.dependent_of, a.bank_code, a.branch_code, a.account_type, a.account_number_enc, a.holder_kana"
    " FROM residents r LEFT JOIN tax_assessments t ON t.resident_code = r.resident_code AND t.fiscal_year = 2022"
    " LEFT JOIN bank_accounts a ON a.household_code = r.household_code AND r.is_head"
)
SECRETS = {  # encrypted column: (its name, the column holding its row key)
    "my_number_enc": ("residents.my_number", "resident_code"),
    "income_enc": ("tax_assessments.income", "tax_row_key"),
    "account_number_enc": ("bank_accounts.account_number", "household_code"),
}


def whole_register_plaintext(home: Home, out: Path) -> int:
    """Every resident with every field, decrypted: the plaintext of the lost stick, as Parquet."""
    cipher = load_city_keys(home.keys).field_cipher()
    writer = None
    rows = 0
    with home.engine.connect() as conn:
        result = conn.execute(text(WHOLE_REGISTER).execution_options(stream_results=True, yield_per=50_000))
        for batch in result.mappings().partitions(50_000):
            records = []
            for row in batch:
                record = {k: (str(v) if v is not None else None) for k, v in row.items() if k not in SECRETS}
                row_keys = dict(row) | {"tax_row_key": tax_row_key(row["resident_code"], 2022)}
                for column, (name, key) in SECRETS.items():
                    record[column.removesuffix("_enc")] = (
                        None if row[column] is None else cipher.decrypt(row[column], name, row_keys[key])
                    )
                records.append(record)
            table = pa.Table.from_pylist(records)
            writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
            writer.write_table(table)
            rows += len(records)
    if writer:
        writer.close()
    return rows


def seal_whole_register(home: Home, plain: Path, out: Path, recipient: str, rows: int) -> None:
    keys = load_city_keys(home.keys)
    payload = out.with_suffix(".age")
    encrypt_to_recipient(plain, payload, recipient)
    now = utcnow().replace(microsecond=0)
    manifest = fmt.build_manifest(
        package_id="pkg_wholeregistercomparison00",
        issuer=home.config.issuer,
        issuer_key_id=keys.signing_key_id,
        purpose="whole-register-comparison",
        recipient="contact-centre",
        recipient_key=recipient,
        mode=fmt.Mode.RECIPIENT,
        key_service_url=None,
        created=now,
        expires=now + timedelta(days=1),
        payload={"format": "parquet", "columns": [], "rows": rows, "scrypt_log_n": None},
    )
    fmt.write_package(out, manifest, keys.signing, payload)


def main() -> None:
    args = city_arguments(__doc__.splitlines()[0])
    city = build_city(args.residents, args.seed)
    home, work = city.home, city.work
    recipient = keygen(work / "printshop.key")
    add_recipient(home.engine, "printshop", recipient, now=utcnow(), actor="os:bench")

    entitled_s = timed(
        lambda: seal(home, SealRequest(PROGRAMME, "confirmation-mailing", "printshop", work / "mailing.cseal"))
    )
    plain = work / "whole-register.parquet"
    whole_rows: list[int] = []
    whole_s = timed(lambda: whole_rows.append(whole_register_plaintext(home, plain)))
    whole_s += timed(lambda: seal_whole_register(home, plain, work / "whole.cseal", recipient, whole_rows[0]))

    # The encryption step on a plaintext big enough to time: the whole register as CSV (what the stick held).
    csv_plain = work / "whole-register.csv"
    pacsv.write_csv(pq.read_table(plain), csv_plain)
    with tempfile.TemporaryDirectory() as tmp:
        ours = median(
            timed(lambda: encrypt_to_recipient(csv_plain, Path(tmp) / "ours.age", recipient)) for _ in range(5)
        )
        age = [AGE, "-r", recipient, "-o", str(Path(tmp) / "age.age"), str(csv_plain)]
        theirs = median(timed(lambda: subprocess.run(age, check=True)) for _ in range(5))
    unlocks = unlock.run(requests=200)

    size_mb = csv_plain.stat().st_size / 1e6
    print(f"residents                          {args.residents:>10,}")
    print(f"seal entitled households           {entitled_s:>10.2f} s  ({city.run.entitled:,} households, tethered)")
    print(f"seal whole register, every field   {whole_s:>10.2f} s  ({whole_rows[0]:,} residents: the Amagasaki case)")
    print(f"encrypt {size_mb:,.0f} MB plaintext, pyrage  {ours:>8.2f} s  (median of 5)")
    print(f"reference: Debian age -r, same bytes {theirs:>6.2f} s  (median of 5, process included)")
    print(f"pyrage / age                       {ours / theirs:>10.2f} ×  (budget ≤ 1.5×)")
    print(
        f"unlock p50 / p99                   {unlocks['unlock_p50_ms']:>7.2f} / {unlocks['unlock_p99_ms']:.2f} ms"
        "  (budget p50 ≤ 50 ms)"
    )
    print(f"reference: GET /v1/health p50      {unlocks['health_p50_ms']:>7.2f} ms  ratio {unlocks['ratio_p50']:.1f} ×")


if __name__ == "__main__":
    main()
