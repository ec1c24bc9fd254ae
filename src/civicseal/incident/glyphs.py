"""The fonts letters are drawn with, and names and addresses cut into what each of them can draw.

A register holds characters the letter's body font (IPAex Mincho, JIS X 0208 and a little more) lacks:
kanji of names beyond it (𠮷 of 𠮷田), variants written with an ideographic variation selector (辻 followed
by U+E0100), and a city's own 外字 in the private-use area, which the user-defined rows of a CP932 export
decode to. Drawn as they were, each printed as an empty box on the resident's own name. IPAmj Mincho, the
font made for the residents' register (the MJ characters), draws the first kind; reportlab applies no
variation selector, so the base character is drawn; a character neither font has is printed 〓 (geta), the
mark Japanese printing sets for a character it cannot.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Final

from civicseal.incident.errors import IncidentError

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

GETA: Final = "〓"
SELECTORS: Final = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")  # variation selectors: none is applied


@dataclass(frozen=True)
class LetterFont:
    """A font letters draw with: its name in the PDF, how fontconfig knows it, and Debian's package of it."""

    name: str
    hints: tuple[str, ...]  # family names to ask fc-match for
    markers: tuple[str, ...]  # parts of its file's name: fc-match answers with another font when it is missing
    paths: tuple[Path, ...]  # where Debian puts it, when fontconfig cannot be asked
    package: str
    use: str  # what letters need it for, in the error when it is missing


BODY: Final = LetterFont(
    "IPAexMincho",
    ("IPAexMincho", "IPAex明朝"),
    ("ipaex", "japanese-mincho"),
    (
        Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf"),
        Path("/usr/share/fonts/truetype/fonts-japanese-mincho.ttf"),
    ),
    "fonts-ipaexfont-mincho",
    "letters need the IPAex Mincho font",
)
REGISTER: Final = LetterFont(
    "IPAmjMincho",
    ("IPAmjMincho", "IPAmj明朝"),
    ("ipamj",),
    (Path("/usr/share/fonts/truetype/ipamj/ipamjm.ttf"),),
    "fonts-ipamj-mincho",
    "letters print residents' names and addresses in the register's characters with the IPAmj Mincho font",
)
FALLBACK: Final = (BODY, REGISTER)  # a character is drawn in the first of these that has it


@cache
def font_path(font: LetterFont) -> Path:
    """The font's file, found through fontconfig, else where Debian installs it."""
    for hint in font.hints:
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", hint], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            break
        if found and any(marker in found.lower() for marker in font.markers):
            return Path(found)
    for candidate in font.paths:
        if candidate.exists():
            return candidate
    raise IncidentError(f"{font.use}: apt-get install {font.package}")


@cache
def _fonts() -> tuple[tuple[str, frozenset[str]], ...]:
    """The letters' fonts, made known to reportlab once per process, each with the characters it draws."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for font in FALLBACK:
        if font.name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(font.name, str(font_path(font))))
    return tuple((font.name, frozenset(map(chr, pdfmetrics.getFont(font.name).face.charToGlyph))) for font in FALLBACK)


def register_fonts() -> None:
    """Make the letters' fonts known to reportlab: a missing one is refused before anything is written."""
    _fonts()


def runs(text: str) -> list[tuple[str, str]]:
    """``text`` as (font name, text) runs: each character in the first font that has it, else 〓 in the body's.
    Variation selectors are left out: the base character before one is drawn as it is."""
    fonts = _fonts()
    if fonts[0][1].issuperset(text):
        return [(BODY.name, text)]  # the common name and address: all of it in the body's font
    out: list[tuple[str, str]] = []
    for char in SELECTORS.sub("", text):
        name, drawn = next(((name, char) for name, has in fonts if char in has), (BODY.name, GETA))
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + drawn)
        else:
            out.append((name, drawn))
    return out


def width(text: str, size: float) -> float:
    """How wide ``text`` is drawn by :func:`draw` at ``size`` points."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return sum(stringWidth(part, name, size) for name, part in runs(text))


def draw(canvas: Canvas, x: float, y: float, text: str, size: float) -> None:
    """``text`` drawn from (x, y), each run in its font."""
    for name, part in runs(text):
        canvas.setFont(name, size)
        canvas.drawString(x, y, part)
        x += canvas.stringWidth(part, name, size)
