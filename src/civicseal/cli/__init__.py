"""The command line: parse arguments, call the library, render the result. Nothing else lives here.

Exit codes: 0 done, 1 refused (bad input, failed check), 2 usage error, 3 findings over a threshold.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

try:  # recent Typer releases carry their own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer on plain Click
    from click import exceptions as click_errors

import typer

from civicseal.cli.output import err_console, print_json, printed
from civicseal.errors import CivicsealError
from civicseal.scratch import sweep
from civicseal.store.home import resolve_home

DEBUG_ENV = "CIVICSEAL_DEBUG"
HOME_ENV = "CIVICSEAL_HOME"
ACTOR_ENV = "CIVICSEAL_ACTOR"
GLOBAL_OPTIONS = {"--home": HOME_ENV, "--actor": ACTOR_ENV}


def lift_global_options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Take ``--home`` and ``--actor`` from anywhere before ``--``; they are handed on as the environment.

    People write ``civicseal --home DIR audit show`` as often as ``civicseal audit show --home DIR``, and
    some commands (``recipient keygen``) have no home of their own: both must simply work.
    """
    rest: list[str] = []
    lifted: dict[str, str] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            rest.extend(argv[i:])
            break
        name, eq, value = word.partition("=")
        if name in GLOBAL_OPTIONS and (eq or i + 1 < len(argv)):
            if not eq:
                i += 1
                value = argv[i]
            lifted[GLOBAL_OPTIONS[name]] = value
        else:
            rest.append(word)
        i += 1
    return rest, lifted


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for one command only: a caller running several commands in one process sees no leak."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _rule(exc: BaseException) -> str:
    """A stable snake_case name of what failed, for programs reading ``--json`` errors."""
    rule = getattr(exc, "rule", None)
    if isinstance(rule, str) and rule:
        return rule
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _refuse(message: str, rule: str, code: int, as_json: bool) -> int:
    """One line on stderr (plain text, never markup), or one JSON object on stdout under ``--json``."""
    if as_json:
        print_json({"error": message, "rule": rule})
    else:
        err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; a refusal is one line, never a traceback."""
    from civicseal.cli.app import load_commands

    args, lifted = lift_global_options(list(argv) if argv is not None else sys.argv[1:])
    app = load_commands(next((arg for arg in args if not arg.startswith("-")), None))
    as_json = "--json" in (args[: args.index("--")] if "--" in args else args)
    # Every command starts by removing scratch files a killed run left in the home (they may hold
    # plaintext), and a SIGTERM ends the run through its cleanup, like Ctrl-C.
    home = lifted.get(HOME_ENV)
    sweep(resolve_home(Path(home) if home else None))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    printed.json = False
    try:
        with _environment(lifted):
            code = app(args=args, prog_name="civicseal", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return _refuse("aborted", "aborted", 1, as_json)
    except click_errors.ClickException as exc:
        if not as_json:
            exc.show()
            return exc.exit_code
        return _refuse(exc.format_message(), "usage", exc.exit_code, as_json)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CivicsealError as exc:
        # A command that already printed its figures (findings over a threshold, a failed check with its
        # details) keeps that one object on stdout; why it failed goes to stderr.
        return _refuse(str(exc), _rule(exc), exc.exit_code, as_json and not printed.json)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        # A bug, not a refusal: its message could quote data, so only its type is shown.
        message = f"internal error ({type(exc).__name__}); set {DEBUG_ENV}=1 to see the traceback"
        return _refuse(message, "internal_error", 1, as_json)
    return code if isinstance(code, int) else 0


def _terminate(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> None:
    sys.exit(run())
