"""The README's walkthrough, run command by command as written, on a small synthetic city.

A person follows the README in order; so does this test. Every command of the walkthrough's ```sh blocks runs
as a process of its own of the installed `civicseal` (forked from a server that imported it once, see
tests/cli_process.py) in a fresh folder; the README's placeholders (`age1…`, `cst_…`, `pkg_…`…) are
filled from what earlier commands printed or from the store. Between commands the test only does what a
person does off-screen (writes the files the README names, fills in the city's contact block), each marked
`glue` below. It runs on each store: the README's own (SQLite in its home) and PostgreSQL.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text as sql_text

from civicseal.clock import TOKYO
from civicseal.store.engine import DATABASE_URL_ENV, database_url, make_engine
from tests import cli_process

README = Path(__file__).resolve().parent.parent / "README.md"

# The walkthrough: ```sh blocks under headings starting with these, run in README order.
WALKTHROUGH_SECTIONS = (
    "Using it on a real register",
    "Handing data to a contractor",
    "Running and correcting a programme",
    "Contractors and their subcontractors",
    "Paying the households",
    "When something is lost",
    "The contact centre",
    "Checking a drive",
    "Evidence that holds",
)

# Placeholders a person reads, and what the test puts in their place (filled by `Walk.substitute`):
#   /srv/civicseal              the city's home: a folder in the run's temporary directory
#   age1…                       the age recipient line the latest `recipient keygen` printed
#   cst_…                       the token the latest `recipient add` printed
#   ed25519:…                   the key the latest `keys public` printed
#   pkg_…                       the package id the latest `seal` printed
#   https://keys.city.example   the `serve … &` key service: http://127.0.0.1:PORT
#   --port 8470                 a free loopback port
#   "1234 5678 9012", 1234-5678-9012   a reference number in the state the command needs (`pick_reference`)
#   2026-11-20T21:30+09:00…     the incident's times, which must fall after the package was sealed and not in
#                               the future: the README's times in their order, 10 s apart from when the first
#                               is needed (`moment`)
HOME_PLACEHOLDER = "/srv/civicseal"
KEY_SERVICE_PLACEHOLDER = "https://keys.city.example"
MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?[+-]\d\d:\d\d")
REFERENCE = re.compile(r"\b1234(?P<sep>[ -])5678(?P=sep)9012\b")
# The account the README's `entitlement confirm` gives: glue gives it to a second household too, so that
# `payments batch` holds a possible double payment for `payments clear`.
SHARED_ACCOUNT = {"bank_code": "0005", "branch_code": "001", "account_type": "1", "account_number": "1234567"}
SHARED_HOLDER = "ﾀﾅｶ ﾊﾅｺ"
TIMEOUT = 120


@dataclass
class Command:
    line: int  # README line where the command starts
    text: str  # as written, continuations joined, comment dropped
    background: bool = False


def walkthrough_commands(readme: str, sections: tuple[str, ...] = WALKTHROUGH_SECTIONS) -> list[Command]:
    """Every command of the ```sh blocks under the walkthrough's headings, in order."""
    commands: list[Command] = []
    heading, in_block, wanted = "", False, False
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(readme.splitlines(), start=1):
        if not in_block and raw.startswith("#"):
            heading = raw.lstrip("#").strip()
            continue
        if raw.startswith("```"):
            in_block = not in_block
            wanted = in_block and raw.strip() == "```sh" and heading.startswith(sections)
            continue
        if not (in_block and wanted):
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        for text, background in split_line(" ".join(part.strip() for part in pending)):
            commands.append(Command(start, text, background))
        pending = []
    return commands


def split_line(line: str) -> Iterator[tuple[str, bool]]:
    """A shell line without its `# comment`, split at `;` and a trailing `&` (quotes respected)."""
    quote: str | None = None
    current = ""
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            break
        elif char in ";&":
            if current.strip():
                yield current.strip(), char == "&"
            current = ""
            continue
        current += char
    if current.strip():
        yield current.strip(), False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Walk:
    folder: Path
    env: dict[str, str]
    readme: str
    port: int = field(default_factory=free_port)
    printed: dict[str, str] = field(default_factory=dict)
    used_references: set[str] = field(default_factory=set)
    moments: dict[str, datetime] = field(default_factory=dict)
    background: list[cli_process.Running] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return Path(self.env["CIVICSEAL_HOME"])

    def query(self, sql: str) -> list[tuple]:
        """Read the store the README's commands wrote (SQLite in the home, or the PostgreSQL database)."""
        engine = make_engine(self.env.get(DATABASE_URL_ENV) or database_url(self.home))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sql_text(sql))]
        finally:
            engine.dispose()

    def pick_reference(self, argv: list[str]) -> str:
        """A reference number in the state the command needs, never one an earlier command used.

        A held payee is one of the households glue gave the README's account: used, but the one meant.
        """
        if argv[:2] == ["payments", "clear"]:
            sql = (
                "SELECT e.reference_number FROM payment_holds h JOIN entitlements e ON e.id = h.entitlement_id"
                " WHERE h.cleared_at IS NULL ORDER BY h.id"
            )
            return self.query(sql)[0][0]
        # show, decline, withdraw, confirm: a household the letters reached
        notified = "SELECT reference_number FROM entitlements WHERE status = 'notified' ORDER BY id"
        number = next(n for (n,) in self.query(notified) if n not in self.used_references)
        self.used_references.add(number)
        return number

    def moment(self, written: str) -> str:
        """The README's time as a time of this run: same order as the README's, 10 s apart, from now on."""
        if not self.moments:
            ordered = sorted(set(MOMENT.findall(self.readme)), key=datetime.fromisoformat)
            start = datetime.now(UTC).replace(microsecond=0)
            self.moments = {w: start + timedelta(seconds=10 * (i + 1)) for i, w in enumerate(ordered)}
        return self.moments[written].astimezone(TOKYO).isoformat()

    def substitute(self, text: str) -> str:
        text = MOMENT.sub(lambda m: self.moment(m.group(0)), text)
        text = text.replace(HOME_PLACEHOLDER, str(self.folder / "srv-civicseal"))
        text = text.replace(KEY_SERVICE_PLACEHOLDER, f"http://127.0.0.1:{self.port}")
        text = text.replace("--port 8470", f"--port {self.port}")
        for placeholder in ("age1…", "cst_…", "ed25519:…", "pkg_…"):
            if placeholder in text:
                text = text.replace(placeholder, self.printed[placeholder])
        if match := REFERENCE.search(text):
            argv = shlex.split(text)[1:]
            number = self.pick_reference(argv)
            sep = match.group(1)
            text = REFERENCE.sub(sep.join((number[:4], number[4:8], number[8:])), text)
        return text

    def remember(self, argv: list[str], stdout: str) -> None:
        """Keep what a later placeholder needs from what this command printed."""
        patterns = {
            ("recipient", "keygen"): ("age1…", r"age1[0-9a-z]{58}"),
            ("recipient", "add"): ("cst_…", r"cst_\S+"),
            ("keys", "public"): ("ed25519:…", r"ed25519:\S+"),
            ("seal",): ("pkg_…", r"pkg_[0-9A-Za-z_-]+"),
        }
        for prefix, (placeholder, pattern) in patterns.items():
            if tuple(argv[: len(prefix)]) == prefix:
                match = re.search(pattern, stdout)
                assert match, f"`civicseal {' '.join(argv)}` printed no {placeholder}"
                self.printed[placeholder] = match.group(0)

    def run(self, command: Command) -> None:
        text = self.substitute(command.text)
        words = shlex.split(text)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
            return
        env = dict(self.env)
        while "=" in words[0]:  # NAME=value prefixes
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        assert words[0] == "civicseal", f"README.md:{command.line}: not a civicseal command: {command.text}"
        argv = words[1:]
        for prefix, glue in GLUE.items():
            if tuple(argv[: len(prefix)]) == prefix:
                glue(self)
        if command.background:
            self.start_background(command, argv, env)
            return
        done = cli_process.run(argv, self.folder, env, TIMEOUT)
        if done.returncode != 0:
            pytest.fail(
                f"README.md:{command.line}: {command.text}\n(ran: {text})\nexit {done.returncode}\n"
                f"stderr:\n{done.stderr}\nstdout:\n{done.stdout}",
                pytrace=False,
            )
        self.remember(argv, done.stdout)

    def start_background(self, command: Command, argv: list[str], env: dict[str, str]) -> None:
        """glue: a `… &` line is a server; wait until it answers on its port, stop it at the end."""
        process = cli_process.start(argv, self.folder, env)
        self.background.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.returncode is not None:
                pytest.fail(f"README.md:{command.line}: {command.text}\nstderr:\n{process.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"README.md:{command.line}: {command.text}\nno answer on port {self.port} within 30 s")

    def stop(self) -> None:
        for process in self.background:
            process.stop()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def write_returned_forms(walk: Walk) -> None:
    """glue: the returned forms the README's `programme confirm` reads, from households the letters reached.

    The first gives the account the README's `entitlement confirm` gave, as spouses living apart might: the
    possible double payment `payments clear` is about.
    """
    numbers = [n for (n,) in walk.query("SELECT reference_number FROM entitlements WHERE status = 'notified'")]
    fresh = [n for n in numbers if n not in walk.used_references][:10]
    walk.used_references.update(fresh)
    header = ["reference_number", *SHARED_ACCOUNT, "holder_kana"]
    rows = [[fresh[0], *SHARED_ACCOUNT.values(), SHARED_HOLDER]] + [[n, "", "", "", "", ""] for n in fresh[1:]]
    write_csv(walk.folder / "returned.csv", header, rows)


def write_found_online(walk: Walk) -> None:
    """glue: the copy found online is the print shop's opened file, saved as CSV by whoever leaked it."""
    table = pq.read_table(walk.folder / "mailing.parquet")
    rows = [[str(value) for value in row.values()] for row in table.to_pylist()]
    write_csv(walk.folder / "found-online.csv", table.column_names, rows)


def write_returns(walk: Walk) -> None:
    """glue: the bank's return list for batch 1: one transfer it could not make (1: no such account)."""
    (number,) = walk.query(
        "SELECT e.reference_number FROM payment_items i JOIN entitlements e ON e.id = i.entitlement_id"
        " WHERE i.batch_id = 1 ORDER BY i.item_no LIMIT 1"
    )[0]
    write_csv(walk.folder / "henkyaku.csv", ["reference_number", "reason_code"], [[number, "1"]])


def fill_contact(walk: Walk) -> None:
    """glue: the city's officer fills in `[contact]` in config.toml, as the README says, before letters."""
    config = walk.home / "config.toml"
    contact = {
        "department": "尼崎市 個人情報保護担当",
        "address": "〒660-8501 尼崎市東七松町1丁目23番1号",
        "telephone": "06-6375-5050",
        "hours": "平日 9:00〜17:30",
        "web": "https://www.city.amagasaki.hyogo.jp/",
    }
    text = config.read_text(encoding="utf-8")
    for key, value in contact.items():
        text = re.sub(rf'^{key} = ""$', f'{key} = "{value}"', text, flags=re.MULTILINE)
    config.write_text(text, encoding="utf-8")


# glue: run before the README command starting with these words
GLUE: dict[tuple[str, ...], Callable[[Walk], None]] = {
    ("programme", "confirm"): write_returned_forms,
    ("trace", "found-online.csv"): write_found_online,
    ("payments", "reconcile"): write_returns,
    ("incident", "notify"): fill_contact,
}


def test_walkthrough_parser_reads_blocks_comments_continuations_and_backgrounds() -> None:
    readme = (
        "## Using it on a real register\n```sh\n"
        "export CIVICSEAL_HOME=/srv/civicseal   # the home\n"
        'civicseal a --reason "# not a comment; nor a split" \\\n    --b 1 ; civicseal c\n'
        "civicseal serve --port 8470 &   # key service\n```\n"
        "## Elsewhere\n```sh\ncivicseal never\n```\n"
    )
    commands = walkthrough_commands(readme)
    assert [(c.line, c.text, c.background) for c in commands] == [
        (3, "export CIVICSEAL_HOME=/srv/civicseal", False),
        (4, 'civicseal a --reason "# not a comment; nor a split" --b 1', False),
        (4, "civicseal c", False),
        (6, "civicseal serve --port 8470", True),
    ]


def test_a_failing_readme_command_fails_with_its_line_and_stderr(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICSEAL_")}
    walk = Walk(tmp_path, env | {"CIVICSEAL_HOME": str(tmp_path / "home")}, "")
    readme = "## Using it on a real register\n\n```sh\ncivicseal verify lost.cseal   # not there\n```\n"
    (command,) = walkthrough_commands(readme)
    with pytest.raises(
        pytest.fail.Exception, match=r"^README.md:4: civicseal verify lost.cseal\n[\s\S]*stderr:\n.*lost"
    ):
        walk.run(command)


def test_readme_walkthrough_runs_as_written(backend: str, tmp_path: Path) -> None:
    readme = README.read_text(encoding="utf-8")
    commands = walkthrough_commands(readme)
    assert len(commands) > 40, "the walkthrough's blocks were not found"
    # The store is the README's own (SQLite in its home) or, on the PostgreSQL run, the test's database.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICSEAL_") or k == DATABASE_URL_ENV}
    env["TZ"] = "UTC"  # the README speaks Tokyo time itself; the machine's zone must not matter
    # glue: the register files the README imports, for a small synthetic city
    synth = cli_process.run(["synth", "--residents", "3000", "--out", "."], tmp_path, env, TIMEOUT)
    assert synth.returncode == 0, synth.stderr
    walk = Walk(tmp_path, env, readme)
    try:
        for command in commands:
            walk.run(command)
    finally:
        walk.stop()
    assert "CIVICSEAL_HOME" in walk.env, "the README never says which home the commands use"
    for named in ("mailing.parquet", "furikomi.txt", "incident-1.pdf"):  # files the README's commands write
        assert (tmp_path / named).stat().st_size > 0, named
