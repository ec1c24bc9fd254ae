"""What a letter to an affected household says, and how its Japanese text is broken into lines.

The words are composed once per incident from its facts (:func:`compose`) and laid out once
(:func:`wrap`): every letter of the incident shares them, and only the address, the name and the
reference number differ. A resident must learn from it what happened and when, which of their data the
package held, whether it can be read and what that means, what the city has done, what to watch for,
and whom to call — in plain polite Japanese, with every organization and purpose named as people know
it, never by a machine name.

Japanese has no spaces, so a line may break between any two characters — and then breaks inside a word
(「電子デー／タを」). BudouX splits a sentence into phrases (文節); lines break only between phrases,
never inside an era date or a time (``令和8年11月20日 15時10分``), a telephone number or a URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Final

import budoux

from civicseal.clock import TOKYO
from civicseal.ledger.fields import Category
from civicseal.register.normalize import ERAS
from civicseal.store.home import Contact

CATEGORY_JA: Final = {
    Category.IDENTIFIER: "給付金の参照番号",
    Category.NAME: "世帯主の氏名",
    Category.ADDRESS: "住所・郵便番号",
    Category.BIRTH_DATE: "世帯主の生年月日",
    Category.BENEFIT: "給付金の対象であること（世帯全員が住民税非課税であること）",
    Category.FINANCIAL: "振込先の口座情報",
    Category.TAX: "税に関する情報",
    Category.MY_NUMBER: "個人番号（マイナンバー）",
    Category.SEX: "性別",
}
# Spans a line never breaks inside: era dates with an optional time, ASCII runs (telephone numbers,
# URLs, figures), and whole bracketed asides are left to BudouX.
UNBREAKABLE: Final = re.compile(
    r"(?:明治|大正|昭和|平成|令和)(?:元|\d{1,2})年\d{1,2}月\d{1,2}日(?: ?\d{1,2}時\d{1,2}分)?|[!-~]+"
)
NO_LINE_START: Final = frozenset("、。，．）」』】〕・ー々ぁぃぅぇぉっゃゅょァィゥェォッャュョ")


def wareki(day: date) -> str:
    """令和8年11月23日: how a letter from a Japanese city is dated."""
    era = next(e for e in reversed(ERAS) if e.first <= day)
    year = day.year - era.first.year + 1
    return f"{era.name}{'元' if year == 1 else year}年{day.month}月{day.day}日"


def wareki_time(moment: datetime) -> str:
    """令和8年11月20日 15時10分, on the city's clock."""
    local = moment.astimezone(TOKYO)
    return f"{wareki(local.date())} {local.hour}時{local.minute:02d}分"


@dataclass(frozen=True)
class LetterFacts:
    """What the letters of one incident rest on, read from the store once."""

    issuer: str  # the city's display name
    recipient: str  # the contractor's display name
    purpose: str  # the purpose's Japanese description
    lost_at: datetime
    reported_at: datetime
    mode: str  # tethered, recipient or passphrase
    revoked_at: datetime | None
    granted_after_loss: int  # keys the key service released at or after the loss
    categories: tuple[Category, ...]
    reportable: bool  # reported to the Personal Information Protection Commission
    contact: Contact


@dataclass(frozen=True)
class Block:
    """One paragraph of the letter: a heading, running text, or an item of a list."""

    kind: str  # "heading", "text" or "item"
    text: str


def compose(facts: LetterFacts) -> tuple[Block, ...]:
    """The letter's words, in reading order."""
    f = facts
    blocks = [
        Block(
            "text",
            f"{f.purpose}のために{f.recipient}へお渡しした電子データを記録した媒体が紛失し、その中に、"
            "あなたの世帯の情報が含まれていました。皆様に多大なご心配とご迷惑をおかけしますことを、"
            "深くお詫び申し上げます。",
        ),
        Block("heading", "1　何が起きたのか"),
        Block(
            "text",
            f"{wareki(f.lost_at.astimezone(TOKYO).date())}に媒体が紛失し、"
            f"{wareki(f.reported_at.astimezone(TOKYO).date())}に{f.issuer}へ報告がありました。",
        ),
        Block("heading", "2　含まれていたあなたの世帯の情報"),
        *(Block("item", CATEGORY_JA[c]) for c in f.categories),
        Block("heading", "3　あなたの情報が読まれるおそれ"),
        Block("text", _readable(f)),
        Block("heading", f"4　{f.issuer}が行ったこと"),
        *(Block("item", text) for text in _done(f)),
        Block("heading", "5　ご注意いただきたいこと"),
        Block("text", _watch_for(f)),
        Block("heading", "6　お問い合わせ先"),
        Block("text", f.contact.department),
        Block("text", f.contact.address),
        Block("text", f"電話 {f.contact.telephone}（受付時間 {f.contact.hours}）"),
        Block("text", f.contact.web),
        Block("text", "お問い合わせの際は、下の参照番号をお伝えください。"),
    ]
    return tuple(blocks)


def _readable(f: LetterFacts) -> str:
    """Whether the data can be read, per mode and per the key service's log, and what that means."""
    revoked = f"{wareki_time(f.revoked_at)}に" if f.revoked_at is not None else ""
    if f.mode == "tethered" and f.granted_after_loss == 0:
        return (
            f"このデータは暗号化されており、{f.issuer}の鍵管理サービスから鍵を受け取らなければ開くことができません。"
            f"紛失の報告を受けて{revoked}この鍵を止めましたので、今後このデータが開かれることはありません。"
            "鍵管理サービスの記録では、紛失以降、このデータを開く鍵は一度も渡されていません。"
            "このため、あなたの情報が読まれたおそれはないと考えています。"
        )
    if f.mode == "tethered":
        return (
            f"このデータは暗号化されており、{f.issuer}の鍵管理サービスから鍵を受け取らなければ開くことができません。"
            "しかし、鍵管理サービスの記録では、紛失の後にこのデータを開く鍵が渡されていました。"
            "このため、あなたの情報が読まれたおそれがあります。"
            f"{revoked}この鍵を止めましたので、現在はこのデータを開くことはできません。"
        )
    if f.mode == "recipient":
        return (
            f"このデータは、{f.recipient}だけが持つ鍵でしか開けないよう暗号化されています。"
            "この鍵は媒体とは別に保管されており、鍵がなければ、現在の技術で暗号を解くことは事実上できません。"
            "このため、あなたの情報が読まれるおそれは極めて低いと考えています。"
        )
    return (
        "このデータはパスフレーズ（長い合言葉）で暗号化されており、パスフレーズが分からなければ開くことはできません。"
        "ただし、媒体を手にした人が時間をかけてパスフレーズを推測し続けることを、完全に防ぐことはできません。"
        "このため、あなたの情報が読まれるおそれがないとは言い切れません。"
    )


def _done(f: LetterFacts) -> list[str]:
    done = []
    if f.mode == "tethered" and f.revoked_at is not None:
        done.append(f"報告を受けてすぐに、このデータを開く鍵を止めました（{wareki_time(f.revoked_at)}）。")
    if f.reportable:
        done.append("法令に基づき、個人情報保護委員会に報告しました。")
    done.append(f"{f.recipient}に、紛失の経緯の報告と再発防止策を求めました。")
    return done


def _watch_for(f: LetterFacts) -> str:
    text = (
        f"{f.issuer}や{f.recipient}を名乗る不審な電話、訪問、郵便物にご注意ください。"
        f"{f.issuer}が、暗証番号をお尋ねしたり、振込やATMの操作をお願いしたりすることは決してありません。"
    )
    if Category.FINANCIAL in f.categories:
        text += "口座情報が含まれていたため、念のため、通帳や取引明細に身に覚えのない取引がないかご確認ください。"
    return text + "不審に思われたときは、下記までご連絡ください。"


# --------------------------------------------------------------------------------------------------
# Breaking lines between phrases
# --------------------------------------------------------------------------------------------------


@cache
def _parser() -> budoux.Parser:
    return budoux.load_default_japanese_parser()


def phrases(text: str) -> list[str]:
    """``text`` cut where a line may break: between BudouX phrases, never inside an unbreakable span."""
    cuts, at = set(), 0
    for phrase in _parser().parse(text):
        at += len(phrase)
        cuts.add(at)
    for span in UNBREAKABLE.finditer(text):
        cuts -= set(range(span.start() + 1, span.end()))
    cuts = {c for c in cuts if c < len(text) and text[c] not in NO_LINE_START}
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return [p for p in pieces if p]


def wrap(text: str, max_width: float, width_of: Callable[[str], float]) -> list[str]:
    """Lines of at most ``max_width`` as measured by ``width_of``, broken only between :func:`phrases`.

    The lines joined are ``text`` again. A single phrase wider than a line (a long URL) is the only thing
    ever cut inside, by character.
    """
    lines: list[str] = []
    line = ""
    for phrase in phrases(text):
        if width_of(line + phrase) <= max_width:
            line += phrase
            continue
        if line:  # a space between phrases stays at the end of the line, where it is not seen
            stripped = phrase.lstrip()
            lines.append(line + phrase[: len(phrase) - len(stripped)])
            line, phrase = "", stripped
        while width_of(phrase) > max_width:
            n = len(phrase)
            while n > 1 and width_of(phrase[:n]) > max_width:
                n -= 1
            lines.append(phrase[:n])
            phrase = phrase[n:]
        line = phrase
    if line or not lines:
        lines.append(line)
    return lines
