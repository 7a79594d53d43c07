"""Batch scoring on a second core: ``score`` runs in a forked child while the next chunk is checked.

``rentprice.batch.score_file`` hands each chunk's scorable rows to a ``Scorer`` and checks the next
chunk (reading, validation, drift counts) while the model predicts, then writes. On Linux with more
than one usable CPU (``os.sched_getaffinity``), the predict runs in a child process forked after the
model is loaded, so it shares the loaded model and needs no start-up of its own; otherwise it runs
inline. Either way the rents are ``rentprice.scoring.score`` of the same rows, the one inference
path. One frame is in flight at a time: the parent holds at most two chunks and the child one, so
memory does not grow with the input (it is higher than inline: docs/benchmarks.md).

The child ignores SIGINT and SIGTERM (the parent handles them and ends the child) and gets SIGKILL
when the parent dies (``PR_SET_PDEATHSIG``, Linux only), so it never outlives the run. Measured
speed and memory: docs/benchmarks.md ("Batch scoring on two cores").
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any, Protocol

import pandas as pd

from rentprice import PR_SET_PDEATHSIG
from rentprice.errors import ModelError
from rentprice.scoring import score

#: The signals that stop a run: the parent handles them and ends the child.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class Scorer(Protocol):
    """Scores one frame at a time: ``submit`` it, then take its ``result`` before the next ``submit``."""

    def submit(self, scorable: pd.DataFrame) -> None:
        """Start scoring ``scorable`` (``ValidationResult.scorable``)."""

    def result(self) -> pd.DataFrame:
        """``score(model, scorable)`` of the frame last submitted; raises what ``score`` raised."""


class InlineScorer:
    """``score`` in this process, at ``submit``."""

    def __init__(self, model: Mapping[str, Any]):
        self.model = model
        self._prices = pd.DataFrame()

    def submit(self, scorable: pd.DataFrame) -> None:
        """Score ``scorable`` now."""
        self._prices = score(self.model, scorable)

    def result(self) -> pd.DataFrame:
        """The rents of the frame last submitted."""
        return self._prices


class ProcessScorer:
    """``score`` in a child process forked with the loaded model; frames and results go by pipe."""

    def __init__(self, model: Mapping[str, Any]):
        """Fork the child; ModelError when the system refuses (no memory or processes left)."""
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        # Not a daemon: joblib refuses its workers in a daemon process, with a warning per predict
        # (the random_forest family). The parent ends it in ``close``; PR_SET_PDEATHSIG if the parent dies.
        self._process = context.Process(
            target=serve, args=(model, child_end, self._connection, os.getpid()), name="rentprice-score"
        )
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns on any fork of a process with threads (here jemalloc's and
                # pyarrow's pools). The child touches none of their locks: it unpickles a frame,
                # predicts and answers on the pipe.
                warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
                self._process.start()
        except OSError as error:
            self._connection.close()
            raise ModelError(f"cannot start the scoring process ({error.strerror or error})") from None
        finally:
            child_end.close()

    def submit(self, scorable: pd.DataFrame) -> None:
        """Send ``scorable`` to the child; ModelError when the child is gone."""
        try:  # protocol 5 pickles a chunk's frame in about half the time of the default 4
            self._connection.send_bytes(pickle.dumps(scorable, protocol=5))
        except OSError:  # a broken pipe: the child is gone
            raise self._stopped() from None

    def result(self) -> pd.DataFrame:
        """The child's rents for the frame last sent; what ``score`` raised there; ModelError when it died."""
        try:
            succeeded, value = self._connection.recv()
        except (EOFError, OSError):
            raise self._stopped() from None
        if not succeeded:
            raise value
        return value

    def close(self) -> None:
        """End the child at once (it holds nothing to clean up), reap it and free what it held.

        Within ``stop_signals_held``: freeing the process runs multiprocessing's finalizer, and an
        exception a signal handler raises there would be dropped.
        """
        with stop_signals_held():
            self._process.kill()
            self._process.join()
            self._process.close()
            self._connection.close()

    def _stopped(self) -> ModelError:
        self._process.join(timeout=1)
        code = self._process.exitcode
        if code is not None and code < 0:
            how = f"by {signal.Signals(-code).name}"
        else:
            how = f"with exit code {code}"
        return ModelError(
            f"the scoring process stopped unexpectedly ({how}; out of memory?); nothing was written"
        )


def serve(model: Mapping[str, Any], connection: Connection, parents_end: Connection, parent: int) -> None:
    """The child's loop: ``score`` each frame received and send back (True, prices) or (False, error).

    Ends when the parent closes the pipe or dies (Linux's ``PR_SET_PDEATHSIG``).
    """
    parents_end.close()  # so that the parent's closing it ends the pipe
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the prctl
        return
    while True:
        try:
            scorable = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            reply = (True, score(model, scorable))
        except Exception as error:  # sent back and raised in the parent, as if scored inline
            reply = (False, portable(error))
        connection.send(reply)


def portable(error: Exception) -> Exception:
    """``error`` with the child's traceback as a note, or a RuntimeError holding it.

    The RuntimeError stands in when ``error`` does not survive pickling: one holding a lock, or one
    whose ``__init__`` takes other arguments than it stores.
    """
    trace = "".join(traceback.format_exception(error))
    try:
        error.add_note(f"in the scoring process:\n{trace}")
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"the scoring process failed:\n{trace}")
    return error


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``taskset -c 0`` makes it 1)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def scorer(model: Mapping[str, Any], cpus: int | None = None) -> Iterator[Scorer]:
    """A ``ProcessScorer`` on Linux when ``cpus`` (default ``usable_cpus()``) > 1, else inline.

    The child is ended on leaving the block, whatever ends it (an error, Ctrl-C, SIGTERM).
    """
    cpus = usable_cpus() if cpus is None else cpus
    if cpus < 2 or sys.platform != "linux":  # the child's end with its parent needs PR_SET_PDEATHSIG
        yield InlineScorer(model)
        return
    process = None
    try:
        with stop_signals_held():
            process = ProcessScorer(model)
        yield process
    finally:
        if process is not None:
            process.close()


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back within the block: their handlers run once it is left.

    Python calls its fork hooks (e.g. ``logging``'s lock release) in the parent right after a fork,
    and an exception raised there is printed and dropped: a Ctrl-C or SIGTERM whose handler raised
    in one would be lost and the run would go on. Within the block a handler only notes the signal;
    on leaving, the previous handlers return and the first signal noted goes to its handler, in
    ordinary code. Outside the main thread, where Python runs no signal handler, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: noted.append(signum)) for signum in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in noted[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
