"""The command line: parse arguments, call the library, render the result. Nothing else lives here.

Exit codes: 0 done, 1 refused (bad input, failed check), 2 usage error, 3 findings over a threshold.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from civicseal.cli.app import app
from civicseal.cli.output import err_console
from civicseal.errors import CivicsealError

DEBUG_ENV = "CIVICSEAL_DEBUG"


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; a refusal is one line on stderr, never a traceback.

    Click handles usage errors itself (exit 2); civicseal's refusals and bugs propagate to here.
    """
    try:
        app(args=list(argv) if argv is not None else None, prog_name="civicseal", standalone_mode=True)
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


def main() -> None:
    sys.exit(run())
