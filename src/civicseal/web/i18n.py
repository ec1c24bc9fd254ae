"""Page texts in Japanese (the default) and English, one table; a missing English text falls back to Japanese."""

from __future__ import annotations

import re
from typing import Final

LANGS: Final = ("ja", "en")

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "app": ("給付金コンタクトセンター", "Benefit contact centre"),
    "switch": ("English", "日本語"),
    "signin": ("サインイン", "Sign in"),
    "signout": ("サインアウト", "Sign out"),
    "username": ("ユーザー名", "User name"),
    "password": ("パスワード", "Password"),
    "totp": ("ワンタイムコード（設定済みの方）", "One-time code (if set up)"),
    "signin_credentials": (
        "サインインできません。ユーザー名・パスワード・ワンタイムコードをご確認ください。",
        "Sign-in failed: check the user name, password and one-time code.",
    ),
    "signin_source": (
        "この端末からの失敗が続いたため、15分間サインインできません。",
        "Too many failed sign-ins from this computer: wait 15 minutes.",
    ),
    "signin_locked": (
        "このアカウントはロックされています。管理者に解除を依頼してください。",
        "This account is locked: ask an admin to unlock it.",
    ),
    "signin_organization": (
        "所属組織はこの業務の承認を受けていません。",
        "Your organization is not approved for this work.",
    ),
    "totp_setup": ("ワンタイムコードの設定", "One-time code set-up"),
    "totp_help": (
        "スマートフォンの認証アプリ（Google Authenticator など）に下の秘密鍵を登録し、アプリに表示された6桁の"
        "コードを入力してください。設定後は、サインインのたびにコードが必要になります。",
        "Add the secret key below to an authenticator app on your phone (Google Authenticator or similar), then"
        " enter the 6-digit code the app shows. From then on, every sign-in needs the code.",
    ),
    "totp_secret": ("秘密鍵（アプリに手入力します）", "Secret key (type it into the app)"),
    "totp_uri": ("設定用URI（otpauth）", "Set-up URI (otpauth)"),
    "totp_code": ("アプリに表示された6桁のコード", "The 6-digit code the app shows"),
    "totp_confirm": ("確認して設定する", "Confirm and turn on"),
    "totp_done": (
        "設定しました。次回のサインインからワンタイムコードが必要です。",
        "Done: from your next sign-in, the one-time code is required.",
    ),
    "totp_already": (
        "このアカウントはワンタイムコードを設定済みです。",
        "One-time codes are already set up for this account.",
    ),
    "lookup": ("世帯の照会", "Look up a household"),
    "lookup_help": (
        "通知書に印字された照会番号と、お電話の方の生年月日で照会します。一度に一世帯だけ表示されます。",
        "Look up by the reference number printed on the letter and the caller's birth date. One household at a time.",
    ),
    "reference": ("照会番号（12桁）", "Reference number (12 digits)"),
    "birth_date": ("お電話の方の生年月日", "Caller's birth date"),
    "birth_date_hint": ("例: 1975-04-01 / 昭和50年4月1日", "e.g. 1975-04-01"),
    "call_reference": ("通話番号", "Call reference"),
    "search": ("照会する", "Look up"),
    "by_name": ("氏名での照会（監督者のみ）", "Look up by name (supervisors only)"),
    "name_kana": ("氏名（カナ）", "Name (kana)"),
    "postcode": ("郵便番号", "Postcode"),
    "not_found": (
        "該当する世帯はありません。番号と生年月日をもう一度ご確認ください。",
        "No household matches. Check the number and the birth date with the caller.",
    ),
    "household": ("照会結果", "Household"),
    "programme": ("給付事業", "Programme"),
    "head": ("世帯主", "Head of household"),
    "status": ("状態", "Status"),
    "status_since": ("状態の日時", "Status since"),
    "created": ("対象決定日", "Entitled on"),
    "amount": ("支給額", "Amount"),
    "next": ("お客様にしていただくこと", "What the caller must do next"),
    "account": ("振込口座", "Bank account"),
    "no_account": ("口座の登録はありません", "No account on record"),
    "actions": ("対応の記録", "Record what happened"),
    "note": ("通話メモ", "Call note"),
    "save_note": ("メモを保存", "Save note"),
    "confirm": ("確認書の受理（口座）", "Confirmation form received (account)"),
    "bank_code": ("金融機関コード", "Bank code"),
    "branch_code": ("支店コード", "Branch code"),
    "account_type": ("預金種目（普通・当座・貯蓄）", "Account type (普通, 当座, 貯蓄)"),
    "account_number": ("口座番号", "Account number"),
    "holder_kana": ("口座名義（カナ）", "Account holder (kana)"),
    "do_confirm": ("確認済みにする", "Mark confirmed"),
    "decline": ("受給辞退", "Declined"),
    "do_decline": ("辞退を記録", "Record declined"),
    "change": ("住所・口座の変更依頼（監督者の承認が必要）", "Address or account change (a supervisor approves)"),
    "address": ("新しい住所", "New address"),
    "request_address": ("住所変更を依頼", "Request address change"),
    "request_account": ("口座変更を依頼", "Request account change"),
    "done": ("記録しました。", "Recorded."),
    "error": ("受け付けられません。", "Not accepted: "),
    "dashboard": ("監督者ダッシュボード", "Supervisor dashboard"),
    "per_hour": ("オペレーター別・時間別の照会件数", "Look-ups per operator per hour"),
    "operator": ("オペレーター", "Operator"),
    "hour": ("時間帯", "Hour"),
    "lookups": ("照会", "Look-ups"),
    "misses": ("不一致", "Misses"),
    "locked": ("ロック中のアカウント", "Locked accounts"),
    "unlock": ("ロック解除", "Unlock"),
    "alerts": ("警報", "Alerts"),
    "kind": ("種類", "Kind"),
    "at": ("日時", "When"),
    "none": ("ありません", "None"),
    "trail": ("世帯の監査記録", "Audit trail of one household"),
    "show": ("表示", "Show"),
    "pending": ("承認待ちの変更依頼", "Changes awaiting approval"),
    "approve": ("承認", "Approve"),
    "reject": ("却下", "Reject"),
    "admin": ("利用者の管理", "Users"),
    "role": ("役割", "Role"),
    "organization": ("所属", "Organization"),
    "sessions": ("サインイン中", "Open sessions"),
    "revoke": ("セッションを無効化", "Revoke sessions"),
    "history": ("状態の履歴", "Status history"),
    "notes": ("通話メモ", "Call notes"),
    "st_eligible": ("対象（通知前）", "eligible (not yet notified)"),
    "st_notified": ("確認書送付済み", "notified (form sent)"),
    "st_confirmed": ("確認済み（振込準備中）", "confirmed (payment being prepared)"),
    "st_paid": ("振込済み", "paid"),
    "st_returned": ("振込不能（口座の確認が必要）", "returned by the bank"),
    "st_declined": ("辞退", "declined"),
    "st_withdrawn": ("対象外となりました", "withdrawn (no longer qualifies)"),
    "nx_eligible": ("確認書が届くまでお待ちください。", "Wait for the confirmation form to arrive."),
    "nx_notified": (
        "確認書に口座を記入し、返信用封筒で返送してください。",
        "Fill in the bank account on the confirmation form and send it back in the return envelope.",
    ),
    "nx_confirmed": ("手続きは不要です。振込をお待ちください。", "Nothing: the payment is being prepared."),
    "nx_paid": ("手続きは不要です。通帳をご確認ください。", "Nothing: check the bank statement."),
    "nx_returned": (
        "口座を確認し、正しい口座をお知らせください（変更依頼）。",
        "Give the correct account (an account change request).",
    ),
    "nx_declined": ("手続きは不要です。", "Nothing."),
    "nx_withdrawn": ("市の担当窓口にお問い合わせください。", "Contact the city's benefit office."),
    "forbidden": ("この操作は許可されていません。", "You are not allowed to do this."),
}


def text(key: str, lang: str) -> str:
    ja, en = TEXTS[key]
    return en if lang == "en" else ja


# A refused form's message, as the services word it (in English: the language of the CLI, the audit log and
# the API) and as a Japanese page shows it. A message is looked up whole, else as "field: rule; advice" with
# each part looked up; one with a part not in these tables is shown as the service worded it.
WHOLE_JA: Final[dict[str, str]] = {
    "call reference: 1-32 letters, digits or '-' (the id your telephone system gives)": (
        "通話番号：英数字と「-」の1〜32文字で入力してください（電話システムが付ける番号です）。"
    ),
    "reference number: 12 digits with a valid check digit; read it again from the letter": (
        "照会番号：12桁の番号として正しくありません。通知書の番号をもう一度お読みください。"
    ),
    "reference number: not 12 digits with a valid check digit; check it on the letter": (
        "照会番号：12桁の番号として正しくありません。通知書の番号をご確認ください。"
    ),
    "reference number: no entitlement has it; check the number on the letter": (
        "照会番号：該当する給付がありません。通知書の番号をご確認ください。"
    ),
    "your account is locked; a supervisor must unlock it": (
        "このアカウントはロックされています。監督者に解除を依頼してください。"
    ),
    "look-up limit for this hour reached: your account is locked; call a supervisor": (
        "1時間あたりの照会件数の上限に達したため、アカウントがロックされました。監督者に連絡してください。"
    ),
    "look-up id: not one of yours; look the household up again": (
        "この照会はあなたのものではありません。世帯をもう一度照会してください。"
    ),
    "look the household up again first (a look-up is good for 30 minutes, for you alone)": (
        "先に世帯をもう一度照会してください（照会結果はご本人に限り30分間有効です）。"
    ),
    "no such pending request; reload the dashboard": (
        "該当する承認待ちの依頼はありません。ダッシュボードを再読み込みしてください。"
    ),
    "someone decided this request already; reload the dashboard": (
        "この依頼は既に判断されています。ダッシュボードを再読み込みしてください。"
    ),
    "one-time code set-up: the form is not one this server gave you; start again": (
        "ワンタイムコードの設定：このフォームは使えません。最初からやり直してください。"
    ),
    "one-time codes are already set up for this account": "このアカウントはワンタイムコードを設定済みです。",
    "one-time code: not the app's current code; check the phone's clock and retry": (
        "ワンタイムコード：アプリの現在のコードと一致しません。スマートフォンの時刻を確認して、もう一度入力してください。"
    ),
}
FIELDS_JA: Final[dict[str, str]] = {
    "birth date": "生年月日",
    "name kana": "氏名（カナ）",
    "postcode": "郵便番号",
    "address": "住所",
    "note": "通話メモ",
    "bank_code": "金融機関コード",
    "branch_code": "支店コード",
    "account_type": "預金種目",
    "account_number": "口座番号",
    "holder_kana": "口座名義（カナ）",
}
RULES_JA: Final[dict[str, str]] = {
    "required": "入力してください",
    "contains a control character": "使えない制御文字が含まれています",
    "not a valid date": "日付として読めません（例: 1975-04-01、昭和50年4月1日）",
    "date before the era began": "元号の始まる前の日付です",
    "date after the era ended": "元号の終わった後の日付です",
    "not katakana": "カタカナで入力してください",
    "not a 7-digit postcode": "7桁の郵便番号ではありません",
    "not a known account type": "預金種目は普通・当座・貯蓄のいずれかです",
    "not characters a Zengin file can carry": (
        "振込に使えない文字が含まれています（カタカナ・英大文字・数字・スペース）"
    ),
    "not a bank in the Zengin data": "この金融機関コードは全銀協のデータにありません",
    "not a branch of this bank in the Zengin data": "この支店コードはこの金融機関の支店にありません",
    "not a code of letters, digits and hyphens": "英数字とハイフンで入力してください",
}
RULE_PATTERNS_JA: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"longer than (\d+) characters"), r"\1文字を超えています"),
    (re.compile(r"1-(\d+) characters"), r"1〜\1文字で入力してください"),
    (re.compile(r"not (\d+) digits"), r"\1桁の数字で入力してください"),
    (re.compile(r"not (\d+) to (\d+) digits"), r"\1〜\2桁の数字で入力してください"),
    (re.compile(r"6 digits, not 7: a spreadsheet drops .*"), "6桁です。先頭の0が抜けていないかご確認ください"),
)
ADVICE_JA: Final[dict[str, str]] = {
    "an account needs all of bank_code, branch_code, account_type, account_number, holder_kana": (
        "口座は金融機関コード・支店コード・預金種目・口座番号・口座名義のすべてが必要です"
    ),
    "check the code on the form": "確認書のコードをご確認ください",
    "format the column as text and export again": "",  # a spreadsheet's mistake: not one a caller makes
}
STATUS_CHANGE = re.compile(r"an entitlement cannot go from (\w+) to (\w+); from \w+ it may go to .*")


def error_text(message: str, lang: str) -> str:
    """A refused form's message in the page's language."""
    if lang == "en":
        return message
    if (whole := WHOLE_JA.get(message)) is not None:
        return whole
    if changed := STATUS_CHANGE.fullmatch(message):
        current, new = (TEXTS.get(f"st_{status}", (status,))[0] for status in changed.groups())
        return f"この世帯は「{current}」のため、「{new}」にはできません。"
    field, _, rest = message.partition(": ")
    rule, _, advice = rest.partition("; ")
    parts = [FIELDS_JA.get(field), _rule_ja(rule), ADVICE_JA.get(advice) if advice else ""]
    if any(part is None for part in parts):
        return message
    name, said, told = parts
    return f"{name}：{said}。" + (f"{told}。" if told else "")


def _rule_ja(rule: str) -> str | None:
    if (said := RULES_JA.get(rule)) is not None:
        return said
    for pattern, replacement in RULE_PATTERNS_JA:
        if pattern.fullmatch(rule):
            return pattern.sub(replacement, rule)
    return None
