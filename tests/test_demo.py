"""`civicseal demo`, the main job, told whole on a small city: every scene runs and its figures add up."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests import cli_process


def test_the_demo_tells_the_whole_story_on_a_small_city(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CIVICSEAL_DATABASE_URL"}  # the embedded store, as typed
    env["TMPDIR"] = str(tmp_path)  # the demo's folder (register files, packages, report) goes with the test's
    home = tmp_path / "home"
    done = cli_process.run(["demo", "--home", str(home), "--residents", "3000", "--json"], tmp_path, env, 300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["home"] == str(home)
    assert figures["residents"] == 3000
    assert 0 < figures["entitled"] < 3000
    assert figures["total_amount"] == figures["entitled"] * 100_000
    assert 0 < figures["residents_in_package"] < 3000  # the mailing carried the entitled households' members
    assert isinstance(figures["reportable"], bool)  # the assessment is the incident tests' to check
    assert figures["audit_rows"] > 0
    assert len(list(tmp_path.glob("civicseal-demo-*/register/residents.csv"))) == 1
