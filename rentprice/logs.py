"""Logging via loguru: one line per step, with row counts and timings, to stderr and ``logs/``."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

from loguru import logger

from rentprice import stopped_while_starting
from rentprice.errors import RentpriceError

LOG_DIR = Path("logs")
LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[stage]} | {message}"


def setup_logging(stage: str, log_dir: Path = LOG_DIR) -> None:
    """Send log lines tagged with ``stage`` to stderr and to ``log_dir/<stage>.log``."""
    logger.remove()
    logger.configure(extra={"stage": stage})
    logger.add(sys.stderr, format=LOG_FORMAT, level="INFO")
    log_dir.mkdir(parents=True, exist_ok=True)
    logger.add(log_dir / f"{stage}.log", format=LOG_FORMAT, level="DEBUG", encoding="utf-8")


@contextmanager
def step(name: str) -> Iterator[dict[str, Any]]:
    """Time a step and log one line with the facts the body records in the yielded dict."""
    facts: dict[str, Any] = {}
    started = perf_counter()
    yield facts
    details = ", ".join(f"{key}={value}" for key, value in facts.items())
    logger.info("{}{} ({:.2f}s)", name, f": {details}" if details else "", perf_counter() - started)


class Interrupted(BaseException):
    """A signal (SIGTERM) stops the stage: raised in its main thread, so ``finally`` blocks run."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


#: The signals whose Interrupted was raised within ``stopping_on_sigterm``. Python drops an exception
#: a handler raises inside a finalizer or a fork hook (printing "Exception ignored"), so a loop
#: calls ``stop_if_requested`` at safe points to stop all the same.
requested_stops: list[int] = []


#: The outputs this stage has put in place, complete (``record_written``): an interrupt after that
#: must not claim that nothing was written.
written: list[str] = []


def record_written(*paths: object) -> None:
    """Note outputs now complete in their final place, for ``run_stage``'s line on an interrupt."""
    written.extend(str(path) for path in paths)


def stopped_line(stage: str, signum: int) -> str:
    """The one line of a stage a signal stopped: what it leaves (``written``), or that it leaves nothing."""
    name = signal.Signals(signum).name
    if not written:
        return f"{stage} interrupted by {name}: stopped; no partial output left"
    done = ", ".join(written)
    return f"{stage} interrupted by {name}: stopped after writing {done} (complete); nothing partial left"


def stop_if_requested() -> None:
    """Raise Interrupted if a SIGTERM arrived whose Interrupted may have been dropped."""
    if requested_stops:
        raise Interrupted(requested_stops[0])


@contextmanager
def stopping_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises Interrupted, so ``finally`` blocks remove temporary files.

    SIGTERM is also what a DVC stage gets when its `dvc` dies (rentprice/__init__.py). Outside the
    main thread, where signals cannot be handled, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        # once: a second SIGTERM (the process group's, the parent's death) must not break the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        requested_stops.append(signum)
        raise Interrupted(signum)

    requested_stops.clear()
    previous = signal.signal(signal.SIGTERM, terminate)
    if previous is stopped_while_starting:  # the start-up's handler: started by now, so not again
        previous = signal.SIG_DFL
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        requested_stops.clear()


def run_stage(stage: str, body: Callable[[], None]) -> int:
    """Run a stage body with logging; user-fixable errors become one log line and exit code 2.

    Ctrl-C (SIGINT) and SIGTERM stop it with one log line and exit code 128 + the signal (130, 143),
    as a shell reports a command a signal stopped; outputs are written atomically, so none is partial,
    and the line names those already complete (``record_written``), if any.
    """
    setup_logging(stage)
    written.clear()
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGINT) is stopped_while_starting:  # KeyboardInterrupt again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stopping_on_sigterm(), step(f"{stage} finished"):
            body()
    except RentpriceError as error:
        logger.error("{}", error)
        return 2
    except (KeyboardInterrupt, Interrupted) as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        logger.error("{}", stopped_line(stage, signum))
        return 128 + signum
    return 0
