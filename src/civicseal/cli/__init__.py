"""The command line: parse arguments, call the library, render the result. Nothing else lives here.

Exit codes: 0 done, 1 refused (bad input, failed check), 2 usage error, 3 findings over a threshold.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from civicseal.cli.app import app
from civicseal.cli.output import err_console
from civicseal.errors import CivicsealError
from civicseal.scratch import sweep
from civicseal.store.home import resolve_home

DEBUG_ENV = "CIVICSEAL_DEBUG"


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; a refusal is one line on stderr, never a traceback.

    Click handles usage errors itself (exit 2); civicseal's refusals and bugs propagate to here. Every
    command starts by removing scratch files that a killed run left in the home (they may hold plaintext),
    and a SIGTERM ends the run through its cleanup, like Ctrl-C.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    sweep(resolve_home(_home_argument(args)))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app(args=args, prog_name="civicseal", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CivicsealError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        # A bug, not a refusal: its message could quote data, so only its type is shown.
        err_console.print(f"internal error ({type(exc).__name__}); set {DEBUG_ENV}=1 to see the traceback")
        return 1
    return 0


def _home_argument(args: list[str]) -> Path | None:
    """``--home DIR`` or ``--home=DIR`` wherever it stands, before Click parses anything."""
    for i, arg in enumerate(args):
        if arg == "--home" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--home="):
            return Path(arg.removeprefix("--home="))
    return None


def _terminate(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> None:
    sys.exit(run())
