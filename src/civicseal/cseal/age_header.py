"""The age v1 header, parsed and checked by hand before pyrage ever sees a package's payload."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from civicseal.cseal.errors import PackageRefused
from civicseal.cseal.manifest import MAX_AGE_HEADER, MAX_LOG_N, Mode, _show

# --------------------------------------------------------------------------------------------------
# The age header (age v1, https://age-encryption.org/v1), parsed before pyrage ever sees the file
# --------------------------------------------------------------------------------------------------

AGE_VERSION_LINE: Final = b"age-encryption.org/v1\n"
_AGE_ARMOR: Final = b"-----BEGIN AGE ENCRYPTED FILE-----"
_B64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")
_VCHAR_ARG = re.compile(rb"[\x21-\x7e]+")
_LOG_N = re.compile(r"[1-9][0-9]?")


def _b64_raw(text: bytes) -> bytes | None:
    """Decode canonical unpadded base64 (as age writes it), or None."""
    if not _B64_CHARS.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None
    return data if base64.b64encode(data).rstrip(b"=") == text else None


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza of an age header: ``-> TYPE ARGS…`` and its decoded body."""

    type: str
    args: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class AgeHeader:
    """A parsed age v1 header; ``length`` counts its bytes up to and including the MAC line's newline."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    length: int


def parse_age_header(data: bytes, *, more: bool) -> AgeHeader:
    """Parse the age v1 header at the start of ``data`` (at most :data:`MAX_AGE_HEADER` bytes).

    ``more`` says whether the file continues past ``data``: if the header has not ended by then, it is
    longer than the limit (rather than truncated). We parse it ourselves, linearly and bounded, because
    pyrage parses headers in quadratic time and honours whatever scrypt work factor a header names.
    """
    if data.startswith(_AGE_ARMOR):
        raise PackageRefused("payload.age is ASCII-armored; a package carries the binary age format")
    if not data.startswith(AGE_VERSION_LINE):
        raise PackageRefused("payload.age is not an age v1 file")
    pos = len(AGE_VERSION_LINE)

    def line() -> bytes:
        nonlocal pos
        end = data.find(b"\n", pos, MAX_AGE_HEADER)
        if end < 0:
            if more or len(data) >= MAX_AGE_HEADER:
                raise PackageRefused(f"age header is longer than {MAX_AGE_HEADER} bytes")
            raise PackageRefused("age header is truncated")
        text, pos = data[pos:end], end + 1
        return text

    stanzas: list[Stanza] = []
    while True:
        text = line()
        if text.startswith(b"--- "):
            mac = _b64_raw(text[4:])
            if mac is None or len(mac) != 32:
                raise PackageRefused("age header MAC line is malformed")
            if not stanzas:
                raise PackageRefused("age header has no recipient stanza")
            return AgeHeader(tuple(stanzas), mac, pos)
        if not text.startswith(b"-> "):
            raise PackageRefused("age header is malformed")
        args = text[3:].split(b" ")
        if not all(_VCHAR_ARG.fullmatch(a) for a in args):
            raise PackageRefused("age header stanza line is malformed")
        body = b""
        while True:
            chunk = line()
            if len(chunk) > 64 or not _B64_CHARS.fullmatch(chunk):
                raise PackageRefused("age header stanza body is malformed")
            body += chunk
            if len(chunk) < 64:
                break
        decoded = _b64_raw(body)
        if decoded is None:
            raise PackageRefused("age header stanza body is not canonical base64")
        names = tuple(a.decode("ascii") for a in args)
        stanzas.append(Stanza(names[0], names[1:], decoded))


def age_header_problem(header: AgeHeader, mode: Mode, scrypt_log_n: int | None) -> str | None:
    """The first way the header's stanzas disagree with the package's mode, or None.

    Tethered and recipient packages carry exactly one X25519 stanza (plus at most one ``*-grease``
    stanza, which rage adds to every file it writes and every age implementation ignores); a passphrase
    package carries exactly one scrypt stanza and nothing else, as the age spec requires. The scrypt work
    factor must be at most :data:`MAX_LOG_N` and equal to the one the signed manifest declares.
    """
    stanzas = header.stanzas
    if mode == Mode.PASSPHRASE:
        if len(stanzas) != 1 or stanzas[0].type != "scrypt":
            return "age header of a passphrase package must hold exactly one scrypt stanza"
        (stanza,) = stanzas
        if len(stanza.args) != 2 or not _LOG_N.fullmatch(stanza.args[1]):
            return "age header scrypt stanza is malformed"
        salt = _b64_raw(stanza.args[0].encode("ascii"))
        if salt is None or len(salt) != 16 or len(stanza.body) != 32:
            return "age header scrypt stanza is malformed"
        log_n = int(stanza.args[1])
        if log_n > MAX_LOG_N:
            return f"age header declares scrypt work factor {log_n}, above {MAX_LOG_N}"
        if log_n != scrypt_log_n:
            return f"age header declares scrypt work factor {log_n}, the manifest {scrypt_log_n}"
        return None
    x25519 = [s for s in stanzas if s.type == "X25519"]
    grease = [s for s in stanzas if s.type.endswith("-grease")]
    for s in stanzas:
        if s.type != "X25519" and not s.type.endswith("-grease"):
            return f"age header of a {mode} package holds a stanza of type {_show(s.type)}"
    if len(x25519) != 1:
        return f"age header of a {mode} package must hold exactly one X25519 stanza, not {len(x25519)}"
    if len(grease) > 1:
        return "age header holds more than one grease stanza"
    (stanza,) = x25519
    share = _b64_raw(stanza.args[0].encode("ascii")) if len(stanza.args) == 1 else None
    if share is None or len(share) != 32 or len(stanza.body) != 32:
        return "age header X25519 stanza is malformed"
    return None


def read_age_header(path: Path, offset: int, size: int) -> AgeHeader:
    """Read and parse the header of the age file at ``path[offset:offset+size]``, reading ≤ 4 KiB."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(size, MAX_AGE_HEADER))
    return parse_age_header(data, more=size > len(data))
