"""The contact centre's pages in real headless Chromium against the real server on a loopback port."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp

from civicseal.clock import utcnow
from civicseal.keys.service import BackgroundServer
from civicseal.programme.reference import printed
from civicseal.store.home import Home
from civicseal.web.app import create_app
from tests.contact_world import BIRTH, build, code


def test_sign_in_look_up_confirm_lock_out_in_both_languages(home: Home, tmp_path: Path, browser: Any) -> None:
    world = build(home, tmp_path)
    home.write_config(replace(home.config, issuer_name="尼崎市"))
    del home.config  # read again: the pages show the display name
    with BackgroundServer(create_app(home)) as server:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{server.url}/login")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.locator("header .city").inner_text() == "尼崎市"
        page.get_by_label("ユーザー名").fill("op1")
        page.get_by_label("パスワード").fill(world.operator.password)
        page.get_by_role("button", name="サインイン").click()
        page.wait_for_url("**/lookup")
        page.get_by_label("照会番号（12桁）").fill(printed(world.references[0]))
        page.get_by_label("お電話の方の生年月日").fill("昭和35年13月1日")  # misheard on the phone
        page.get_by_label("通話番号").first.fill("ＣＡＬＬ－１")  # typed with the input method on
        page.get_by_role("button", name="照会する").click()
        refused = page.locator("[role=alert]").inner_text()
        assert refused == "受け付けられません。生年月日：日付として読めません（例: 1975-04-01、昭和50年4月1日）。"
        page.get_by_label("照会番号（12桁）").fill(printed(world.references[0]))
        page.get_by_label("お電話の方の生年月日").fill("昭和35年4月1日")
        page.get_by_role("button", name="照会する").click()
        assert page.locator("#status").inner_text() == "確認書送付済み"
        page.screenshot(path=str(tmp_path / "lookup-ja.png"), full_page=True)
        page.get_by_label("金融機関コード").fill("0001")
        page.get_by_label("支店コード").fill("999")  # not a branch of みずほ
        page.get_by_label("口座番号").fill("1234567")
        page.get_by_label("口座名義（カナ）").fill("アマガサキ タロウ")
        page.get_by_role("button", name="確認済みにする").click()
        assert page.locator("[role=alert]").inner_text() == (
            "受け付けられません。支店コード：この支店コードはこの金融機関の支店にありません。確認書のコードをご確認ください。"
        )
        page.get_by_label("照会番号（12桁）").fill(printed(world.references[0]))
        page.get_by_label("お電話の方の生年月日").fill("昭和35年4月1日")
        page.get_by_role("button", name="照会する").click()
        page.get_by_label("金融機関コード").fill("0001")
        page.get_by_label("支店コード").fill("001")
        page.get_by_label("口座番号").fill("1234567")
        page.get_by_label("口座名義（カナ）").fill("アマガサキ タロウ")
        page.get_by_role("button", name="確認済みにする").click()
        assert "記録しました" in page.locator("[role=status]").inner_text()
        page.goto(f"{server.url}/lookup?lang=en")
        page.get_by_label("Reference number (12 digits)").fill(world.references[0])
        page.get_by_label("Caller's birth date").fill(BIRTH)
        page.get_by_label("Call reference").first.fill("CALL-2")
        page.get_by_role("button", name="Look up").click()
        assert page.locator("#status").inner_text() == "confirmed (payment being prepared)"
        assert "****567" in page.locator("#result").inner_text() and "¥100,000" in page.locator("#result").inner_text()
        page.screenshot(path=str(tmp_path / "lookup-en.png"), full_page=True)
        page.keyboard.press("Tab")  # keyboard reaches the controls, focus visible
        page.close()

        sup = browser.new_page(viewport={"width": 1366, "height": 768})
        sup.goto(f"{server.url}/login?lang=en")
        sup.get_by_label("User name").fill("sup1")
        sup.get_by_label("Password").fill(world.supervisor.password)
        sup.get_by_label("One-time code (if set up)").fill(code(world.supervisor, utcnow()))
        sup.get_by_role("button", name="Sign in").click()
        sup.wait_for_url("**/lookup")
        sup.goto(f"{server.url}/supervisor")
        assert "Look-ups per operator per hour" in sup.content() and "op1" in sup.content()
        sup.screenshot(path=str(tmp_path / "supervisor-en.png"), full_page=True)
        sup.close()

        locked = browser.new_page()
        for _ in range(5):
            locked.goto(f"{server.url}/login")
            locked.get_by_label("ユーザー名").fill("op1")
            locked.get_by_label("パスワード").fill("wrong password")
            locked.get_by_role("button", name="サインイン").click()
        locked.goto(f"{server.url}/login")
        locked.get_by_label("ユーザー名").fill("op1")
        locked.get_by_label("パスワード").fill(world.operator.password)
        locked.get_by_role("button", name="サインイン").click()
        assert "15分間サインインできません" in locked.locator("[role=alert]").inner_text()
        locked.screenshot(path=str(tmp_path / "locked-ja.png"))
        locked.close()


def test_an_operator_turns_on_one_time_codes_with_the_keyboard(home: Home, tmp_path: Path, browser: Any) -> None:
    world = build(home, tmp_path)
    with BackgroundServer(create_app(home)) as server:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{server.url}/login")
        page.get_by_label("ユーザー名").fill("op1")
        page.get_by_label("パスワード").fill(world.operator.password)
        page.get_by_role("button", name="サインイン").click()
        page.wait_for_url("**/lookup")
        page.get_by_role("link", name="ワンタイムコードの設定").click()
        page.wait_for_url("**/account/totp")
        secret = page.locator("#totp-secret").inner_text()
        assert page.locator("#totp-uri").inner_text().startswith("otpauth://totp/")
        code_field = page.get_by_label("アプリに表示された6桁のコード")
        assert code_field.evaluate("e => e === document.activeElement")  # the keyboard starts in the code field
        code_field.fill(pyotp.TOTP(secret).now())
        code_field.press("Enter")
        assert "次回のサインインからワンタイムコードが必要です" in page.locator("[role=status]").inner_text()
        page.screenshot(path=str(tmp_path / "totp-ja.png"), full_page=True)
        page.goto(f"{server.url}/account/totp?lang=en")
        assert "already set up" in page.locator("main").inner_text()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/login")
        page.get_by_label("User name").fill("op1")
        page.get_by_label("Password").fill(world.operator.password)
        page.get_by_role("button", name="Sign in").click()
        assert "Sign-in failed" in page.locator("[role=alert]").inner_text()  # the code is required now
        page.get_by_label("User name").fill("op1")
        page.get_by_label("Password").fill(world.operator.password)
        page.get_by_label("One-time code (if set up)").fill(pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30)))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/lookup")
        page.close()
