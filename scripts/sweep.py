"""Run a grid of queued DVC experiments, fail loudly if any fails, and rank the others by grouped-CV MAE.

``dvc exp run --run-all`` exits 0 even when a queued experiment fails, and queued runs see only
the committed files; this wrapper refuses a dirty tree, checks every experiment's state in
``dvc.api.exp_show()`` afterwards and prints the log of each failed one (``dvc queue logs``).

Experiments are read with ``dvc.api.exp_show()``, DVC's public Python API (one flat record per
experiment). Queueing, running the queue and reading a run's log stay CLI calls (``dvc exp run
--queue``, ``dvc exp run --run-all``, ``dvc queue logs``): ``dvc.api`` has no public function for
them (only ``exp_save`` and ``exp_show``), and ``dvc.repo`` is DVC's internal API.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dvc.api import exp_show
from dvc.exceptions import DvcException
from loguru import logger

from rentprice.errors import RentpriceError
from rentprice.logs import Interrupted, run_stage, step

METRICS_FILE = "metrics/eval/metrics.json"
METRIC_COLUMNS = (
    "cv_mae",
    "cv_mae_std",
    "baseline_cv_mae",
    "baseline_cv_mae_std",
    "mae",
    "r2",
    "mape",
    "baseline_mae",
)
#: The grouped-CV MAE on the train split: one 20% test split cannot tell apart gains of ~20 €.
RANK_BY = "cv_mae"
DEFAULT_PARAMS_FILE = "params.yaml"
#: `State` of an experiment in exp_show that has not finished.
PENDING = {"queued", "running"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the grid (as for `dvc exp run -S`) and the number of parallel jobs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-S",
        "--set-param",
        dest="grid",
        action="append",
        required=True,
        metavar="[FILE:]KEY=V1,V2",
        help="a grid axis, passed to `dvc exp run --queue -S` (repeat for more axes)",
    )
    parser.add_argument("-j", "--jobs", type=int, default=2, help="experiments run in parallel")
    return parser.parse_args(argv)


def dvc(*args: str) -> subprocess.CompletedProcess:
    """Run a dvc command, capturing its output."""
    return subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)


def checked(result: subprocess.CompletedProcess) -> str:
    """The output of a command that succeeded; otherwise a one-line error with its last message."""
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise RentpriceError(f"`{' '.join(result.args)}` failed: {lines[-1]}")
    return result.stdout


def uncommitted_changes() -> list[str]:
    """`git status --porcelain` lines: files a queued experiment (built from HEAD) would not see."""
    status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False)
    return checked(status).splitlines()


def grid_keys(grid: Iterable[str]) -> list[str]:
    """The param of each grid axis: ``'train.n_estimators=100,300'`` -> ``'train.n_estimators'``."""
    return [axis.split("=", 1)[0].strip() for axis in grid]


def refuse_cv_axes(keys: Iterable[str]) -> None:
    """Refuse a grid axis on the ``cv`` group: the sweep ranks by cv_mae, which another protocol changes.

    Experiments cross-validated on other folds, repeats or shuffles give figures of other
    yardsticks; compare protocols with separate sweeps (or `dvc exp run -S cv.folds=…`).
    """
    for key in keys:
        path, _, name = key.rpartition(":")
        if (not path or path == DEFAULT_PARAMS_FILE) and name.lstrip("+").split(".")[0] == "cv":
            raise RentpriceError(
                f"{name} changes the grouped CV that ranks the sweep by {RANK_BY}: experiments measured "
                "with other folds, repeats or seeds cannot be ranked against each other; set cv in "
                "params.yaml and sweep the model params"
            )


def column(record: dict[str, Any], key: str, default_file: str) -> Any:
    """A ``[file:]name`` value of an exp_show record, whose columns carry the file only where two clash.

    ``dvc.api.exp_show()`` names a column ``name`` (``mae``, ``train.n_estimators``) when one file
    has it, and ``file:name`` when several do.
    """
    path, _, name = key.rpartition(":")
    return record.get(f"{path or default_file}:{name}", record.get(name))


def experiment_records() -> list[dict[str, Any]]:
    """``dvc.api.exp_show()``: one record per experiment of HEAD; a DVC error becomes one line."""
    try:
        return exp_show()
    except DvcException as error:
        raise RentpriceError(f"dvc.api.exp_show(): {error}") from error


def experiments(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each named experiment in ``dvc.api.exp_show()`` records, by name: its state and its record.

    The state is exp_show's ``State`` in lower case (``queued``, ``running``, ``success``,
    ``failed``); ``unknown`` when exp_show gives none, which the sweep counts as a failure.
    A failed experiment's record shows its baseline's metrics, so only successful ones are ranked.
    """
    return {
        record["Experiment"]: {"state": (record.get("State") or "unknown").lower(), "record": record}
        for record in records
        if record.get("Experiment")
    }


def metric(record: dict[str, Any], name: str) -> float | None:
    """A test metric of an exp_show record (None where the experiment has none)."""
    return column(record, name, METRICS_FILE)


def cell(value: Any) -> str:
    """A table cell: exp_show gives every number as a float, so ``10.0`` trees print as ``10``."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ranking(results: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Successful experiments ordered by grouped-CV MAE (best first); ties broken by name."""
    done = [(name, result) for name, result in results.items() if result["state"] == "success"]

    def key(item: tuple[str, dict[str, Any]]) -> tuple[float, str]:
        value = metric(item[1]["record"], RANK_BY)
        return (float("inf") if value is None else value, item[0])

    return sorted(done, key=key)


def ranking_markdown(ranked: list[tuple[str, dict[str, Any]]], keys: Sequence[str]) -> str:
    """A markdown table of the ranked experiments with the swept params and the key test metrics."""
    header = ["rank", "experiment", *keys, *METRIC_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, (name, result) in enumerate(ranked, start=1):
        cells = [
            str(rank),
            name,
            *(cell(column(result["record"], key, DEFAULT_PARAMS_FILE)) for key in keys),
            *(cell(metric(result["record"], name)) for name in METRIC_COLUMNS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def apply_hint(best: str) -> str:
    """How to bring the best experiment into the workspace or onto a branch."""
    return (
        f"Best by {RANK_BY}: {best}. Apply it with `dvc exp apply {best}`, review `git diff` and commit "
        f"params.yaml, dvc.lock and metrics/; or keep it on a branch: `dvc exp branch {best} <branch>`."
    )


def refuse_to_start() -> set[str]:
    """Fail before queueing anything if the run would miss changes or run someone else's queue.

    Returns the names of the experiments that exist already.
    """
    changes = uncommitted_changes()
    if changes:
        listed = "; ".join(line.strip() for line in changes[:10]) + ("; ..." if len(changes) > 10 else "")
        raise RentpriceError(
            f"the working tree has uncommitted or untracked changes that queued experiments would not see "
            f"({listed}): commit them or move them away first"
        )
    existing = experiments(experiment_records())
    pending = [name for name, result in existing.items() if result["state"] in PENDING]
    if pending:
        raise RentpriceError(
            f"experiment(s) already queued or running: {', '.join(sorted(pending))}; run them with "
            "`dvc exp run --run-all` or drop them with `dvc queue remove --queued` first"
        )
    return set(existing)


@contextmanager
def stopping_queue_on_interrupt(names: Sequence[str]) -> Iterator[None]:
    """On Ctrl-C or SIGTERM, stop this sweep's experiments before the sweep stops.

    DVC's queue workers run detached: without this they would run the grid to its end after
    the sweep said it had stopped. Queued ones are removed, running ones killed, workers stopped.
    """
    try:
        yield
    except (KeyboardInterrupt, Interrupted):
        # a second Ctrl-C must not cut the clean-up short
        previous = {
            number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            dvc("queue", "remove", *names)  # the ones not started yet
            dvc("queue", "kill", "--force", *names)  # the ones running (finished ones: nothing to do)
            stopped = dvc("queue", "stop", "--kill")
            if stopped.returncode != 0:
                logger.error(
                    "the queue may still be running: `dvc queue status` shows it, `dvc queue stop --kill`"
                )
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        raise


def sweep(args: argparse.Namespace) -> None:
    """Queue the grid, run it, check every experiment and print the ranking."""
    refuse_cv_axes(grid_keys(args.grid))
    existing = refuse_to_start()
    with step("queue grid") as facts:
        grid_args = [item for axis in args.grid for item in ("-S", axis)]
        checked(dvc("exp", "run", "--queue", *grid_args))
        names = sorted(
            name
            for name, result in experiments(experiment_records()).items()
            if result["state"] == "queued" and name not in existing
        )
        if not names:
            raise RentpriceError("`dvc exp run --queue` queued no experiment")
        facts.update(experiments=len(names), names=",".join(names))
    with step("run queue") as facts, stopping_queue_on_interrupt(names):
        jobs = min(args.jobs, len(names))  # a worker more than experiments would only idle
        run = subprocess.run(["dvc", "exp", "run", "--run-all", "--jobs", str(jobs)], check=False)
        # DVC's workers run detached and should leave once idle; one that missed it (seen under load)
        # would live on with the terminal's output, so the grid done, the workers are told to stop
        dvc("queue", "stop")
        facts.update(jobs=jobs, exit_code=run.returncode)
    with step("collect results") as facts:
        found = experiments(experiment_records())
        results = {name: found.get(name, {"state": "missing", "record": {}}) for name in names}
        failed = [name for name, result in results.items() if result["state"] != "success"]
        facts.update(succeeded=len(names) - len(failed), failed=len(failed))
    for name in failed:
        logger.error("experiment {} {}; its log (dvc queue logs {}):", name, results[name]["state"], name)
        log = dvc("queue", "logs", name)
        print(log.stdout + log.stderr, file=sys.stderr)
    keys = grid_keys(args.grid)
    ranked = ranking(results)
    if ranked:
        print(f"\n## Sweep ranking by {RANK_BY} ({METRICS_FILE})\n")
        print(ranking_markdown(ranked, keys))
        print(f"\n{apply_hint(ranked[0][0])}\n")
    if failed:
        raise RentpriceError(
            f"{len(failed)} of {len(names)} experiment(s) failed: {', '.join(failed)} (logs above; "
            "`dvc queue remove --failed` clears them from the queue)"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python scripts/sweep.py -S key=v1,v2 ...` (`make sweep`)."""
    args = parse_args(argv)
    return run_stage("sweep", lambda: sweep(args))


if __name__ == "__main__":
    sys.exit(main())
