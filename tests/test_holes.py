"""Smaller holes: the token kept out of the process list, and scratch files of a killed run swept at the next
start of any command while a live run's are left alone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from civicseal import cseal as fmt
from civicseal.cli import run
from civicseal.clock import utcnow
from civicseal.keys.service import BackgroundServer, create_app
from civicseal.scratch import UNCLAIMED_GRACE, claimed
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import Home
from tests.cities import PROGRAMME, contractor, entitled_city


def test_the_token_comes_from_a_file_or_the_environment_and_argv_warns(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entitled_city(home, tmp_path, residents=1000)
    identity, token = contractor(home, tmp_path)
    with BackgroundServer(create_app(home)) as server:
        request = SealRequest(
            programme=PROGRAMME, purpose="confirmation-mailing", recipient="printshop",
            out=tmp_path / "p.cseal", mode=fmt.Mode.TETHERED, key_service_url=server.url,
        )  # fmt: skip
        seal(home, request, now=utcnow(), rng=random.Random(3))
        base = ["open", str(tmp_path / "p.cseal"), "--identity", str(identity), "--home", str(home.path)]
        token_file = tmp_path / "token.txt"
        token_file.write_text(token + "\n")
        monkeypatch.delenv("CIVICSEAL_TOKEN", raising=False)
        assert run([*base, "--out", str(tmp_path / "a.parquet"), "--token-file", str(token_file)]) == 0
        assert "process list" not in capsys.readouterr().err
        monkeypatch.setenv("CIVICSEAL_TOKEN", token)
        assert run([*base, "--out", str(tmp_path / "b.parquet")]) == 0
        assert "process list" not in capsys.readouterr().err
        monkeypatch.delenv("CIVICSEAL_TOKEN")
        assert run([*base, "--out", str(tmp_path / "c.parquet"), "--token", token]) == 0
        assert "visible to every user of this machine in the process list" in capsys.readouterr().err
        assert run([*base, "--out", str(tmp_path / "d.parquet")]) == 1
        assert "CIVICSEAL_TOKEN" in capsys.readouterr().err
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "c.parquet").read_bytes()


def _killed_claim(home: Path, target: Path) -> None:
    """A real process claims ``target`` (as a seal or an open does) and is killed with SIGKILL mid-run."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from civicseal.scratch import claimed
        with claimed(Path({str(home)!r}), Path({str(target)!r})):
            print("claimed", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "claimed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def test_a_killed_runs_plaintext_is_swept_at_the_next_command_and_a_live_runs_is_not(tmp_path: Path) -> None:
    home = tmp_path / "reader-home"
    home.mkdir()
    elsewhere = tmp_path / "desk"
    elsewhere.mkdir()
    dead_part = elsewhere / f".out.csv.{'ab' * 8}.part"
    dead_part.write_text("山田太郎,1234-5678-9012\n")
    dead_seal = home / ".seal-dead_1"
    dead_seal.mkdir()
    (dead_seal / "payload").write_text("plaintext")
    _killed_claim(home, dead_part)
    _killed_claim(home, dead_seal)
    live_part = elsewhere / f".other.csv.{'cd' * 8}.part"
    live_part.write_text("still being written")
    stray_old, stray_new = home / ".seal-stray_old", home / ".seal-stray_new"
    stray_old.mkdir()
    stray_new.mkdir()
    old = time.time() - UNCLAIMED_GRACE - 5
    os.utime(stray_old, (old, old))
    innocent = elsewhere / "out.csv"
    innocent.write_text("the reader's own file")
    with claimed(home, live_part):
        run(["trust", "add", "city", "ed25519:not-a-key", "--home", str(home)])  # any command; it may refuse
        assert live_part.exists() and stray_new.exists() and innocent.exists()
    assert not dead_part.exists() and not dead_seal.exists() and not stray_old.exists()
    assert list((home / ".scratch").iterdir()) == []
