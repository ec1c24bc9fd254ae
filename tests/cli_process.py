"""The installed `civicseal` command, each run a process of its own, without Python's start-up every time.

The README walkthrough runs some 75 commands on each store; a fresh interpreter importing civicseal costs
about a second a command, most of that test's time. Here every command is still its own process (its own
environment, working folder, stdout, stderr and exit code, nothing left in memory by an earlier command),
forked from multiprocessing's fork server, which imported the console script's module once. What runs is
the function the installed `civicseal` script names (its entry point), called as the script calls it.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from multiprocessing.process import BaseProcess
from pathlib import Path

SCRIPT = "civicseal"
# What the fork server imports once: this module, the script's module, the command table, and the library the
# commands load where they need it (importing them is most of a command's start-up).
PRELOAD = [
    __name__,
    "civicseal.cli",
    "civicseal.cli.app",
    "civicseal.homes",
    "civicseal.register.importer",
    "civicseal.programme.service",
    "civicseal.seal.service",
    "civicseal.keys.unlock",
    "civicseal.custody.service",
    "civicseal.incident.service",
    "civicseal.payments.service",
]

_context = multiprocessing.get_context("forkserver")


@dataclass
class Running:
    """A started command; its stdout and stderr are files in a folder of its own (never the working folder,
    where `civicseal scan .` would read them)."""

    process: BaseProcess
    outputs: Path

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def stdout(self) -> str:
        return (self.outputs / "stdout").read_text(encoding="utf-8")

    def stderr(self) -> str:
        return (self.outputs / "stderr").read_text(encoding="utf-8")

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, as a service manager sends; SIGKILL if it has not ended within ``grace`` seconds."""
        if self.process.exitcode is None:
            self.process.terminate()
            self.process.join(grace)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        shutil.rmtree(self.outputs, ignore_errors=True)


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


@cache
def installed_script() -> EntryPoint:
    """The console-script entry point of the `civicseal` command pip installed next to this Python."""
    found = entry_points(group="console_scripts", name=SCRIPT)
    assert len(found) == 1, f"{SCRIPT} is not installed as a console script"
    assert shutil.which(SCRIPT, path=str(Path(sys.executable).parent)), f"{SCRIPT} is not installed next to Python"
    return next(iter(found))


def start(argv: list[str], cwd: Path, env: dict[str, str]) -> Running:
    """Start `civicseal ARGV` in ``cwd`` with exactly the environment ``env``."""
    _context.set_forkserver_preload(PRELOAD)
    outputs = Path(tempfile.mkdtemp(prefix="civicseal-command-"))
    process = _context.Process(target=_script_main, args=(installed_script().value, argv, str(cwd), env, str(outputs)))
    process.start()
    return Running(process, outputs)


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Done:
    """Run `civicseal ARGV` to its end, like ``subprocess.run(..., capture_output=True, timeout=...)``."""
    running = start(argv, cwd, env)
    try:
        running.process.join(timeout)
        if running.returncode is None:
            raise TimeoutError(f"`{SCRIPT} {' '.join(argv)}` still running after {timeout} s")
        return Done(running.returncode, running.stdout(), running.stderr())
    finally:
        running.stop()


def _script_main(script: str, argv: list[str], cwd: str, env: dict[str, str], outputs: str) -> None:
    """In the forked child: become a fresh `civicseal` process, then call what the script calls."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(os.path.join(outputs, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()  # a new process reads TZ as it starts
    tempfile.tempdir = None  # and TMPDIR, when it first needs a temporary folder
    sys.argv = [SCRIPT, *argv]
    EntryPoint(name=SCRIPT, value=script, group="console_scripts").load()()
