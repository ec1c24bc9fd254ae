"""The contractor's side of a tethered open: ask the key service, then decrypt the payload.

:class:`TetheredIdentity` is a :class:`civicseal.cseal.payload.Identity`: ``open_package`` calls its
``decrypt`` only after every offline check passed, so the key service is contacted only for a package the
reader would otherwise open. The service answers with the package identity age-encrypted to the
contractor's own key; this side decrypts it in memory, never writes it anywhere, and uses it once.

Every failure is a :class:`PackageRefused` with one safe line: the service's own reason
(``package refused: key service says refused: revoked``), ``key service unreachable``, or what was wrong
with the answer. The token is sent only over HTTPS, or plain HTTP to a loopback address.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
from typing import BinaryIO, Final
from urllib.parse import urlsplit

import httpx

from civicseal import __version__
from civicseal.cseal import SealedPackage
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.payload import X25519Identity

UNLOCK_PATH: Final = "/v1/unlock"
MAX_ANSWER: Final = 16 * 1024
ANSWER_TIMEOUT: Final = 45.0  # the service may wait 30 s for a busy SQLite store before it answers


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ::1) — where plain HTTP is fine."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unlock_url(key_service_url: str) -> str:
    """``<key service>/v1/unlock``; refuses a URL that would send the token in clear over a network."""
    parts = urlsplit(key_service_url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return key_service_url.rstrip("/") + UNLOCK_PATH
    raise PackageRefused("the key service URL is neither HTTPS nor on loopback; the token is not sent")


# What a contractor can do about a refusal the service names (the service itself says no more than this).
_NEXT_STEP: dict[str, str] = {
    "unknown package": (
        "; this package is not one the city sealed for your token: check you opened the package sent to you,"
        " with your own token"
    ),
    "token locked": (
        "; too many failed unlocks in an hour locked your token: ask the city to run"
        " `civicseal recipient unlock NAME` (or to issue a new token with `civicseal recipient rotate-token NAME`)"
    ),
    "bad token": "; check CIVICSEAL_TOKEN or --token-file holds the token the city gave you, whole",
    "revoked": "; the city revoked this package: ask it for a new one",
    "expired": "; the package is past its expiry: ask the city for a new one",
}


def _reason(response: httpx.Response) -> str:
    """The service's refusal line, if it is a short printable one; else just the status."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, str) and 0 < len(error) <= 200 and error.isprintable():
        hint = next((h for reason, h in _NEXT_STEP.items() if error.endswith(reason)), "")
        return f"key service says {error}{hint}"
    return f"key service answered HTTP {response.status_code}"


def _identity_age(response: httpx.Response, package_id: str) -> bytes:
    try:
        data = response.json()
        if data.get("package_id") != package_id:
            raise PackageRefused("the key service answered for another package")
        return base64.b64decode(data["identity_age"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise PackageRefused("the key service's answer is not an unlock grant") from None


def fetch_package_identity(
    url: str, package_id: str, token: str, own_identity: X25519Identity, *, timeout: float = ANSWER_TIMEOUT
) -> str:
    """Ask the key service at ``url`` for ``package_id``'s identity; return it (``AGE-SECRET-KEY-1…``).

    The answer is decrypted with the contractor's ``own_identity``: the service never sends the package
    identity in a form the token alone can read.
    """
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(
                unlock_url(url),
                json={"package_id": package_id},
                headers={"Authorization": f"Bearer {token}", "User-Agent": f"civicseal/{__version__}"},
            )
    except (httpx.HTTPError, httpx.InvalidURL):
        raise PackageRefused(
            f"key service unreachable at {url}; check the network, or ask the city whether its key service runs"
        ) from None
    if response.status_code != 200:
        raise PackageRefused(_reason(response))
    if len(response.content) > MAX_ANSWER:
        raise PackageRefused("the key service's answer is not an unlock grant")
    sealed = _identity_age(response, package_id)
    plain = io.BytesIO()
    try:
        own_identity.decrypt(io.BytesIO(sealed), plain)
    except PackageRefused:
        raise PackageRefused("the key service's answer does not decrypt with this identity") from None
    secret = plain.getvalue().decode("ascii", "replace").strip()
    try:
        X25519Identity(secret)
    except SealError:
        raise PackageRefused("the key service's answer is not an age identity") from None
    return secret


class TetheredIdentity:
    """The :class:`~civicseal.cseal.payload.Identity` of a tethered package: fetched when it is needed.

    Construct it inside ``open_package``'s ``identity`` callback (or with :meth:`for_package`), so the
    key service is asked only after the package passed every offline check.
    """

    def __init__(
        self, url: str, package_id: str, token: str, own_identity: X25519Identity, *, timeout: float = ANSWER_TIMEOUT
    ) -> None:
        self._url = url
        self._package_id = package_id
        self._token = token
        self._own = own_identity
        self._timeout = timeout

    @classmethod
    def for_package(
        cls, pkg: SealedPackage, token: str, own_identity: X25519Identity, *, timeout: float = ANSWER_TIMEOUT
    ) -> TetheredIdentity:
        """For a verified tethered package: the key-service URL and package id come from its manifest."""
        url = pkg.manifest.get("key_service")
        if not isinstance(url, str):
            raise PackageRefused("the package names no key service")
        return cls(url, pkg.package_id, token, own_identity, timeout=timeout)

    def decrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        secret = fetch_package_identity(self._url, self._package_id, self._token, self._own, timeout=self._timeout)
        X25519Identity(secret).decrypt(src, dst)

    def __repr__(self) -> str:  # never show the token
        return f"TetheredIdentity({self._url!r}, {self._package_id!r})"
