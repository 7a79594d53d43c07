"""Batch scoring on a second core (rentprice/scoring_process.py): the same rents, in order, and no child
process that outlives its run or hides an error."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from rentprice import batch as batch_module
from rentprice import scoring_process
from rentprice.batch import pipelined, score_file
from rentprice.errors import ModelError
from rentprice.logs import Interrupted, stopping_on_sigterm
from rentprice.model import load_model
from rentprice.scoring import score, validate_listings
from rentprice.scoring_process import InlineScorer, ProcessScorer, scorer, stop_signals_held
from tests.code.scoring_fixtures import save_tiny_model
from tests.support import REPO_ROOT, listings


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model.joblib")


@pytest.fixture(scope="module")
def model(model_file) -> dict:
    return load_model(model_file)


def scorable(model: dict, rows: int = 5, first_area: float = 40.0) -> pd.DataFrame:
    frame = listings(*({"area": first_area + 3 * i} for i in range(rows)))
    return validate_listings(frame, model).scorable


def checked_chunk(model, table, first_row) -> batch_module.CheckedChunk:
    """A stand-in for check_chunk: only the scorable rows matter to the pipeline."""
    return batch_module.CheckedChunk(
        len(table), validate_listings(table, model, first_row).scorable, None, None, {}
    )


class Recording:
    """A scorer that records what the pipeline asks of it, scoring inline."""

    def __init__(self, model, events):
        self.inline, self.events = InlineScorer(model), events

    def submit(self, frame):
        self.events.append(("submit", int(frame.index[0])))
        self.inline.submit(frame)

    def result(self):
        self.events.append(("result", None))
        return self.inline.result()


def test_pipelined_checks_the_next_chunk_before_it_waits_for_the_rents_of_this_one(model):
    events = []
    tables = [listings(*({"area": 40.0 + i + 10 * chunk} for i in range(3))) for chunk in range(3)]

    def check(table, first_row):
        events.append(("check", first_row))
        return batch_module.CheckedChunk(
            len(table), validate_listings(table, model, first_row).scorable, None, None, {}
        )

    chunks = list(pipelined(iter(tables), check, Recording(model, events)))
    assert events == [
        ("check", 0), ("submit", 0),
        ("check", 3), ("result", None), ("submit", 3),
        ("check", 6), ("result", None), ("submit", 6),
        ("result", None),
    ]  # fmt: skip
    assert [list(checked.scorable.index) for checked, _ in chunks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    for checked, prices in chunks:  # each chunk with its own rents
        pd.testing.assert_frame_equal(prices, score(model, checked.scorable))


def test_the_child_process_gives_the_rents_of_score_in_order(model):
    frames = [scorable(model, first_area=40.0 + 20 * k) for k in range(3)]
    with scorer(model, cpus=2) as scoring:
        assert isinstance(scoring, ProcessScorer)
        for frame in frames:
            scoring.submit(frame)
            pd.testing.assert_frame_equal(scoring.result(), score(model, frame))


def test_one_cpu_scores_inline(model):
    with scorer(model, cpus=1) as scoring:
        assert isinstance(scoring, InlineScorer)


class Failing:
    def predict(self, frame):
        raise ModelError("the model cannot score this")


def test_an_error_in_the_child_is_raised_in_the_parent_and_the_child_goes_on(model):
    with scorer({**model, "pipeline": Failing()}, cpus=2) as scoring:
        for _ in range(2):
            scoring.submit(scorable(model))
            with pytest.raises(ModelError, match="the model cannot score this"):
                scoring.result()


def test_a_killed_child_is_one_clear_error_and_no_hang(model):
    with scorer(model, cpus=2) as scoring:
        os.kill(scoring._process.pid, signal.SIGKILL)
        with pytest.raises(ModelError, match=r"scoring process stopped unexpectedly \(by SIGKILL"):
            scoring.submit(scorable(model))
            scoring.result()


def test_the_child_ignores_ctrl_c_and_ends_with_the_block(model):
    with scorer(model, cpus=2) as scoring:
        child = scoring._process.pid
        os.kill(child, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        frame = scorable(model)
        scoring.submit(frame)
        pd.testing.assert_frame_equal(scoring.result(), score(model, frame))
    assert not Path(f"/proc/{child}").exists()


class HoldingALockError(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


class Raising:
    def __init__(self, error):
        self.error = error

    def predict(self, frame):
        raise self.error()


def raised(error: Exception) -> Exception:
    """``error`` as raised and caught (with its traceback)."""
    try:
        raise error
    except Exception as caught:
        return caught


def test_an_error_that_cannot_be_pickled_becomes_a_runtime_error_with_its_traceback():
    # (an exception whose __init__ takes other arguments than it stores cannot be unpickled either,
    # unless tblib's pickling is installed, as importing distributed does: then it crosses whole)
    error = HoldingALockError()
    portable = scoring_process.portable(raised(error))
    assert type(portable) is RuntimeError
    assert str(portable).startswith("the scoring process failed:\nTraceback")
    assert type(error).__name__ in str(portable)


def test_an_error_that_can_be_pickled_keeps_its_type_and_message_and_gains_its_traceback():
    portable = scoring_process.portable(raised(ModelError("the model cannot score this")))
    assert type(portable) is ModelError and str(portable) == "the model cannot score this"
    assert portable.__notes__[0].startswith("in the scoring process:\nTraceback")


def test_an_error_with_a_lock_raised_in_the_child_arrives_as_its_traceback(model):
    with scorer({**model, "pipeline": Raising(HoldingALockError)}, cpus=2) as scoring:
        scoring.submit(scorable(model))
        with pytest.raises(RuntimeError, match=r"the scoring process failed:(.|\n)*HoldingALockError"):
            scoring.result()


def test_an_error_from_the_child_carries_its_traceback(model):
    with scorer({**model, "pipeline": Failing()}, cpus=2) as scoring:
        scoring.submit(scorable(model))
        with pytest.raises(ModelError) as raised:
            scoring.result()
    assert "in Failing.predict" not in str(raised.value)  # the one line a user sees stays one line
    assert any("predict" in note and "Traceback" in note for note in raised.value.__notes__)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drop it stages
def test_a_sigterm_whose_exception_python_dropped_still_stops_the_loop(model):
    class Dropping:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # its handler raises here, where Python drops it

    checked = []

    def check(table, first_row):
        checked.append(first_row)
        if first_row == 3:
            Dropping()
        return batch_module.CheckedChunk(
            len(table), validate_listings(table, model, first_row).scorable, None, None, {}
        )

    tables = [listings(*({"area": 40.0 + i} for i in range(3))) for _ in range(4)]
    with pytest.raises(Interrupted), stopping_on_sigterm():
        list(pipelined(iter(tables), check, InlineScorer(model)))
    assert checked == [0, 3]


class Stopped(BaseException):
    pass


def test_a_signal_during_the_fork_is_held_back_and_raised_after_it():
    def stop(signum, frame):
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    reached = []
    try:
        with pytest.raises(Stopped), stop_signals_held():
            os.kill(os.getpid(), signal.SIGTERM)  # would land in a fork hook, which drops exceptions
            reached.append("the end of the block")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert reached == ["the end of the block"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scoring_in_a_child_writes_the_same_files_as_scoring_inline(
    model_file, tmp_path, monkeypatch, suffix
):
    frame = listings(*({"area": 40.0 + i, "rooms": 0.0 if i % 7 == 0 else 2.0} for i in range(40)))
    source = tmp_path / f"in{suffix}"
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source, index=False)
    outputs = {}
    for cpus in (1, 2):
        monkeypatch.setattr(scoring_process, "usable_cpus", lambda cpus=cpus: cpus)
        output = tmp_path / f"out{cpus}{suffix}"
        summary = score_file(
            model_file,
            str(source),
            output,
            tmp_path / f"rejects{cpus}.csv",
            chunk_rows=6,
            lock=tmp_path / "none",
        )
        outputs[cpus] = (output.read_bytes(), (tmp_path / f"rejects{cpus}.csv").read_bytes())
        assert (summary.rows, summary.scored) == (40, 34)
    assert outputs[1] == outputs[2]


def process_group(pgid: int) -> list[int]:
    """The pids of the live processes in group ``pgid`` (field 5 of /proc/PID/stat; zombies left out)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigkill"])
def test_no_scoring_process_outlives_a_stopped_run(model_file, tmp_path, stop):
    listings(*({"area": 40.0 + i % 100} for i in range(5000))).to_csv(tmp_path / "in.csv", index=False)
    command = [sys.executable, str(REPO_ROOT / "stages" / "predict.py"), "--model", str(model_file)]
    command += ["--input", "in.csv", "--output", "out.csv", "--chunk-rows", "1", "--lock", "none.lock"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        command, cwd=tmp_path, stderr=subprocess.PIPE, env=environment, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while len(process_group(process.pid)) < 2:  # the run and its scoring process
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1].decode()
        time.sleep(0.05)
    if stop == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it
    else:
        process.kill()  # nothing can clean up; the child must still not run on
    _, err = process.communicate(timeout=60)
    if stop == "ctrl-c":
        assert process.returncode == 128 + signal.SIGINT
        errors = [line for line in err.decode().splitlines() if "ERROR" in line]
        assert len(errors) == 1 and "interrupted by SIGINT" in errors[0], err.decode()
        assert "Traceback" not in err.decode()
        assert sorted(path.name for path in tmp_path.iterdir() if path.name != "logs") == ["in.csv"]
    while process_group(process.pid):
        assert time.monotonic() < deadline, process_group(process.pid)
        time.sleep(0.05)
