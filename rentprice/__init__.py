"""rentprice: domain code shared by the DVC stages that predict Amsterdam apartment rents.

A process that DVC runs as a stage command (DVC sets ``DVC_STAGE``) stops when its `dvc repro` is
killed instead of running on alone and writing its outputs later. As its first act on importing
the package, before the seconds its heavy imports take, it asks Linux for SIGTERM when its parent
dies (``prctl(PR_SET_PDEATHSIG)``), and stops at once if `dvc` died before that. DVC runs the
command through ``$SHELL -c`` (``/bin/sh`` when ``SHELL`` is unset, as in CI): bash and zsh replace
themselves with the command, but dash keeps running as the parent, and a killed `dvc` leaves that
shell alive. So when the parent is a shell, a daemon thread also watches the shell's parent and
sends SIGTERM to this process once it is gone. ``rentprice.logs.run_stage`` turns that SIGTERM into
one log line and exit code 143, and temporary files are removed (docs/storage.md, Interrupted runs).
Ctrl-C or SIGTERM before ``run_stage`` starts (during the imports) ends the stage with one line
too (exit code 130 or 143), also when a stage script runs by hand (``python stages/predict.py …``).
"""

import os
import sys

__version__ = "0.1.0"

#: linux/prctl.h
PR_SET_PDEATHSIG = 1
SIGTERM = 15
#: Command names (``/proc/PID/comm``) of shells that DVC may run a stage command through.
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh"})
WATCH_SECONDS = 0.5


def parent_pid(pid: int) -> int:
    """The parent's pid of process ``pid`` (field 4 of ``/proc/PID/stat``); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def stop_when_orphaned(shell: int, launcher: int) -> None:
    """Send SIGTERM to this process once ``shell`` has lost ``launcher`` (`dvc`) as its parent.

    ``launcher`` 0: `dvc` was gone before the watch began. When the shell itself is gone,
    ``PR_SET_PDEATHSIG`` has signalled this process already.
    """
    import time

    while launcher and (parent := parent_pid(shell)) == launcher:
        time.sleep(WATCH_SECONDS)
    if not launcher or parent != 0:
        os.kill(os.getpid(), SIGTERM)


def launched_by(shell: int) -> int:
    """The pid of the process that started ``shell`` (`dvc`); 0 when it is gone already (``orphaned``)."""
    launcher = parent_pid(shell)
    return 0 if orphaned(launcher) else launcher


def orphaned(parent: int) -> bool:
    """Whether ``parent``, the parent a process has now, means that its `dvc` has died already.

    A process whose parent died is the child of init (pid 1) by now; pid 1 counts as a live `dvc`
    only when it is `dvc` or Python (`dvc` as a container's first process).
    """
    return parent == 1 and not command_name(1).startswith(("dvc", "python"))


def command_name(pid: int) -> str:
    """The command name of process ``pid`` (``/proc/PID/comm``); empty once it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""


def stopped_while_starting(signum: int, frame: object) -> None:
    """A stage's SIGINT and SIGTERM handler until ``rentprice.logs.run_stage`` takes over: one line.

    Ctrl-C during the seconds of a stage's imports would print Python's traceback of whatever was
    being imported, and SIGTERM would end it without a word; nothing has been written yet, so the
    process ends at once, with exit code 128 + the signal (130, 143) as ``run_stage`` does.
    """
    import signal

    name = signal.Signals(signum).name
    os.write(2, f"interrupted by {name} while starting: stopped; nothing written\n".encode())
    os._exit(128 + signum)


def runs_a_stage_script() -> bool:
    """Whether this process's program is one of the project's stage scripts (``stages/<name>.py``)."""
    stages = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "stages")
    return bool(sys.argv and sys.argv[0]) and os.path.dirname(os.path.realpath(sys.argv[0])) == stages


if os.environ.get("DVC_STAGE") or runs_a_stage_script():
    import signal

    signal.signal(signal.SIGINT, stopped_while_starting)
    signal.signal(signal.SIGTERM, stopped_while_starting)

if sys.platform == "linux" and os.environ.get("DVC_STAGE"):
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, SIGTERM)
    if orphaned(os.getppid()):  # `dvc` died before the prctl: no parent death will signal it now
        os.kill(os.getpid(), SIGTERM)
    elif command_name(os.getppid()) in SHELLS:
        import threading

        shell = os.getppid()
        watch = (shell, launched_by(shell))
        threading.Thread(target=stop_when_orphaned, args=watch, name="watch-dvc", daemon=True).start()
