"""Demo step: the synthetic register, written by a forked process while the demo loads the rest of civicseal.

Loading the modules the story needs (the key service's web framework, Arrow, the store) and creating the home
take about as long as synthesizing the city, and both use one core of two: the `demo` command starts the
synthesis first, from a process that has loaded little, and the story collects it where it imports the
register. The child only writes the three files into the demo's own folder.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import traceback
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from pathlib import Path

from civicseal.errors import CivicsealError
from civicseal.register.errors import RegisterError
from civicseal.register.synth import SynthSummary, synthesize
from civicseal.workers import as_pool_worker


def _synthesize(residents: int, seed: int, out: Path, results: SimpleQueue) -> None:
    as_pool_worker()  # Ctrl-C is the demo's to handle; it ends this child with it
    try:
        results.put(synthesize(residents, seed, out))
    except CivicsealError as exc:  # a refusal (its message names no resident): as the parent would show it
        results.put(exc)
    except Exception as exc:  # the parent reports it; only its type crosses
        traceback.print_exc()
        results.put(RegisterError(f"synthesizing the register failed ({type(exc).__name__})"))


@dataclass(frozen=True)
class Synthesis:
    """A synthesis under way in a forked process, in the demo's folder ``workdir``."""

    residents: int
    seed: int
    workdir: Path
    register_dir: Path
    _worker: BaseProcess
    _results: SimpleQueue

    def finish(self) -> SynthSummary:
        """Wait for the three files; a failure in the child is raised here."""
        result = self._results.get()
        self._worker.join()
        if isinstance(result, Exception):
            raise result
        return result


def start_synthesis(residents: int, seed: int) -> Synthesis:
    """Make the demo's folder and start synthesizing the city into its ``register`` folder."""
    workdir = Path(tempfile.mkdtemp(prefix="civicseal-demo-"))
    register_dir = workdir / "register"
    register_dir.mkdir()
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    worker = context.Process(target=_synthesize, args=(residents, seed, register_dir, results), daemon=True)
    worker.start()
    return Synthesis(residents, seed, workdir, register_dir, worker, results)
