"""What a forked worker process (register import, DLP scan) does first.

A worker inherits its parent's signal handlers. The CLI's SIGTERM handler turns the signal into a clean
exit of the *command*; in a pool worker blocked on the pool's queue that handler never gets to end it, so
``Pool.terminate`` (called when a run is refused or interrupted) waited forever for a worker that would not
die. Workers take the default action instead: SIGTERM ends them at once; Ctrl-C, which the terminal sends
to the whole process group, is the parent's to handle (it terminates the pool).
"""

from __future__ import annotations

import signal


def as_pool_worker() -> None:
    """Call first in a pool worker's initializer."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
