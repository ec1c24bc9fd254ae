"""The sealed package format (`.cseal`) alone: manifest, ZIP framing, age header pre-check, verify, open.

A package is a ZIP archive holding exactly three stored entries, in this order:

* ``manifest.json`` — RFC 8785 canonical JSON describing the package (see :func:`build_manifest`);
* ``manifest.sig`` — the raw 64-byte Ed25519 signature of the issuer over the exact manifest bytes;
* ``payload.age`` — an age v1 file whose plaintext is the minimized table.

The ZIP is written and read by hand rather than with :mod:`zipfile` because ZIP is permissive in ways an
attacker can use (prepended data, duplicate names, local headers that disagree with the central
directory, data descriptors, compression bombs). Here the framing is a pure function of the three
entries: every ZIP field other than names, sizes, CRCs and offsets has exactly one allowed value, so a
reader can refuse anything else byte by byte. ZIP64 is not used: a package (framing included) must be
smaller than 4 GiB, and :func:`write_package` refuses a larger payload.

This package is the bottom layer of sealing: pure functions over files and keys, importing no store and
no domain package (the import-linter contract in pyproject.toml holds it to that). It knows nothing
about databases, programmes or the key service. A tethered package is opened
by passing :func:`open_package` an ``identity`` callback that talks to the key service; the callback runs
only after every offline check has passed, so no network contact happens for a package we would refuse.
"""

from civicseal.cseal.age_header import AgeHeader, Stanza, age_header_problem, parse_age_header, read_age_header
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.framing import SealedPackage, read_package, write_package
from civicseal.cseal.manifest import (
    CLOCK_SKEW,
    ENTRIES,
    FORMAT_VERSION,
    MAX_AGE_HEADER,
    MAX_LOG_N,
    MAX_MANIFEST,
    PAYLOAD_FORMATS,
    Mode,
    build_manifest,
    canonical_manifest,
    key_id,
    manifest_problem,
    parse_rfc3339,
    rfc3339,
)
from civicseal.cseal.opening import PayloadRegion, open_package
from civicseal.cseal.verify import (
    check_canonical,
    check_format_version,
    check_manifest_fields,
    check_not_expired,
    check_not_future,
    check_payload_hash,
    check_recipient,
    check_signature,
    precheck_age_header,
    verify,
)

__all__ = [
    "CLOCK_SKEW",
    "ENTRIES",
    "FORMAT_VERSION",
    "MAX_AGE_HEADER",
    "MAX_LOG_N",
    "MAX_MANIFEST",
    "PAYLOAD_FORMATS",
    "AgeHeader",
    "Mode",
    "PackageRefused",
    "PayloadRegion",
    "SealError",
    "SealedPackage",
    "Stanza",
    "age_header_problem",
    "build_manifest",
    "canonical_manifest",
    "check_canonical",
    "check_format_version",
    "check_manifest_fields",
    "check_not_expired",
    "check_not_future",
    "check_payload_hash",
    "check_recipient",
    "check_signature",
    "key_id",
    "manifest_problem",
    "open_package",
    "parse_age_header",
    "parse_rfc3339",
    "precheck_age_header",
    "read_age_header",
    "read_package",
    "rfc3339",
    "verify",
    "write_package",
]
