"""The contractor's side: open a package with nothing but an identity, a token and trust.toml."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from civicseal import cseal as fmt
from civicseal.clock import utcnow
from civicseal.cseal.errors import PackageRefused
from civicseal.cseal.payload import Identity, PassphraseIdentity
from civicseal.keys.recipients import load_identity
from civicseal.keys.trust import load_trusted
from civicseal.scratch import claimed


def open_sealed(
    path: Path,
    *,
    trust_home: Path,
    out: Path,
    force: bool = False,
    identity_file: Path | None = None,
    token: str | None = None,
    passphrase: str | None = None,
    now: datetime | None = None,
) -> fmt.SealedPackage:
    """Every offline check first; only then (tethered) the key service; plaintext only through a rename."""
    trusted = load_trusted(trust_home)
    own = load_identity(identity_file) if identity_file is not None else None

    def identity(pkg: fmt.SealedPackage) -> Identity:
        if pkg.mode is fmt.Mode.PASSPHRASE:
            if passphrase is None:
                raise PackageRefused("a passphrase is needed (--passphrase-file, or type it at the prompt)")
            return PassphraseIdentity(passphrase)
        if own is None:
            raise PackageRefused("an identity is needed (--identity contractor.key)")
        if pkg.mode is fmt.Mode.RECIPIENT:
            return own
        if not token:
            raise PackageRefused("a recipient token is needed (--token or CIVICSEAL_TOKEN)")
        from civicseal.keys.client import TetheredIdentity

        return TetheredIdentity(pkg.manifest["key_service"], pkg.package_id, token, own)

    return fmt.open_package(
        path,
        trusted=trusted,
        now=now or utcnow(),
        out=out,
        force=force,
        identity=identity,
        recipient_key=own.recipient if own is not None else None,
        claim=lambda tmp: claimed(trust_home, tmp),
    )
