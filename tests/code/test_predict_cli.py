"""The predict stage script end to end on small files, in process."""

import importlib.util
import io
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from rentprice import batch as batch_module
from rentprice.io import file_md5
from rentprice.model import load_model
from rentprice.scoring import score, validate_listings
from tests.code.scoring_fixtures import save_tiny_model
from tests.conftest import REPO_ROOT, listings

BAD_ROWS = {1: {"area": None}, 3: {"balcony": "maybe"}, 4: {"garden": "huge"}, 6: {"area": "12a"}}


def load_stage():
    spec = importlib.util.spec_from_file_location("stage_predict", REPO_ROOT / "stages" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stage():
    return load_stage()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model.joblib")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def batch(rows: int = 8) -> pd.DataFrame:
    """Listings with an id first, a note last, a rent column and bad rows at BAD_ROWS."""
    frame = listings(*({"area": 40.0 + 5 * i, **BAD_ROWS.get(i, {})} for i in range(rows)))
    frame.insert(0, "listing_id", [f"00{i}" for i in range(rows)])
    frame["note"] = ["", "NA", "None", "a,b", 'say "hi"', "x", "", "y"][:rows]
    return frame


def write(frame: pd.DataFrame, path):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.astype({"area": "str"}).to_parquet(path, index=False)
    return path


def read(path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"listing_id": str, "note": str}, keep_default_na=False)
    return pd.read_parquet(path)


def run(stage, model_file, source, output, *extra) -> int:
    return stage.main(["--model", str(model_file), "--input", str(source), "--output", str(output), *extra])


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]


def leftovers(directory) -> list[str]:
    """Files other than the inputs: outputs, rejects or temporary files."""
    inputs = {"model.joblib", "dvc.lock"}
    return sorted(
        path.name
        for path in directory.iterdir()
        if path.is_file() and not path.name.startswith("in.") and path.name not in inputs
    )


@pytest.mark.parametrize("source_suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("output_suffix", [".csv", ".parquet"])
def test_every_row_is_scored_or_rejected_in_order_with_ids_passed_through(
    stage, model_file, workdir, capsys, source_suffix, output_suffix
):
    frame = batch()
    source = write(frame, workdir / f"in{source_suffix}")
    output = workdir / f"scored{output_suffix}"
    assert run(stage, model_file, source, output, "--chunk-rows", "3") == 0
    scored, rejects = read(output), read(workdir / "scored.rejects.csv")
    assert list(scored.columns) == [
        "row",
        "listing_id",
        "note",
        "predicted_rent",
        "predicted_rent_low",
        "predicted_rent_high",
    ]
    assert list(rejects.columns) == ["row", "field", "reason", "listing_id", "note"]
    assert len(scored) + len(rejects) == len(frame)
    assert sorted([*scored["row"], *rejects["row"]]) == list(range(len(frame)))
    assert scored["row"].is_monotonic_increasing and rejects["row"].is_monotonic_increasing
    assert scored["listing_id"].tolist() == frame["listing_id"].drop(list(BAD_ROWS)).tolist()
    assert rejects["listing_id"].tolist() == frame["listing_id"].iloc[list(BAD_ROWS)].tolist()
    assert rejects["field"].tolist() == ["area", "balcony", "garden", "area"]
    assert rejects["note"].tolist() == ["NA", "a,b", 'say "hi"', ""]
    expected = score(load_model(model_file), validate_listings(frame, load_model(model_file)).scorable)
    np.testing.assert_array_equal(scored[list(expected.columns)].to_numpy(), expected.to_numpy())
    assert (scored["predicted_rent_low"] < scored["predicted_rent"]).all()
    assert (scored["predicted_rent"] < scored["predicted_rent_high"]).all()
    assert "score listings: rows=8, scored=4, rejected=4" in capsys.readouterr().err


def test_pass_through_text_is_kept_exactly_and_rent_is_not_output(stage, model_file, workdir):
    source = write(batch(), workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "scored.csv") == 0
    scored = read(workdir / "scored.csv")
    assert scored["listing_id"].tolist() == ["000", "002", "005", "007"]
    assert scored["note"].tolist() == ["", "None", "x", "y"]
    assert "rent" not in scored.columns


def test_chunk_size_does_not_change_the_output(stage, model_file, workdir):
    source = write(batch(), workdir / "in.parquet")
    outputs = []
    for rows in ["1", "3", "100"]:
        assert run(stage, model_file, source, workdir / f"out{rows}.parquet", "--chunk-rows", rows) == 0
        outputs.append(read(workdir / f"out{rows}.parquet"))
    for output in outputs[1:]:
        pd.testing.assert_frame_equal(output, outputs[0])


def test_csv_from_stdin(stage, model_file, workdir, monkeypatch):
    data = batch().to_csv(index=False).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert stage.main(["--model", str(model_file), "--input", "-", "--output", "out.parquet"]) == 0
    assert len(read(workdir / "out.parquet")) == 4
    assert len(read(workdir / "out.rejects.csv")) == 4


def test_explicit_rejects_path_and_empty_input(stage, model_file, workdir):
    source = write(batch().iloc[:0], workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "o.parquet", "--rejects", str(workdir / "r.parquet")) == 0
    assert read(workdir / "o.parquet").empty and read(workdir / "r.parquet").empty
    assert list(read(workdir / "r.parquet").columns) == ["row", "field", "reason", "listing_id", "note"]


def test_a_failure_mid_run_leaves_no_partial_output_and_keeps_the_old_one(
    stage, model_file, workdir, monkeypatch
):
    source = write(batch(), workdir / "in.csv")
    (workdir / "scored.csv").write_text("previous run\n")
    calls = []

    def crash_on_second_chunk(model, scorable):
        calls.append(len(scorable))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return score(model, scorable)

    monkeypatch.setattr(batch_module, "score", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run(stage, model_file, source, workdir / "scored.csv", "--chunk-rows", "3")
    assert len(calls) == 2
    assert leftovers(workdir) == ["scored.csv"]
    assert (workdir / "scored.csv").read_text() == "previous run\n"


def test_a_missing_column_is_one_line_exit_2_and_no_output(stage, model_file, workdir, capsys):
    source = write(batch().drop(columns=["garden"]), workdir / "in.parquet")
    assert run(stage, model_file, source, workdir / "scored.parquet") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and errors[0].endswith("in.parquet: missing column(s) garden")
    assert leftovers(workdir) == []


def test_a_listing_column_of_lists_is_one_line_exit_2_and_no_output(stage, model_file, workdir, capsys):
    frame = batch(3).assign(facilities=[["Lift"], [], ["Bath", "Lift"]])
    source = workdir / "in.parquet"
    frame.to_parquet(source, index=False)
    assert run(stage, model_file, source, workdir / "scored.parquet") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and errors[0].endswith(
        "in.parquet: column(s) facilities hold lists or records, not single values"
    )
    assert leftovers(workdir) == []


def test_too_many_rejects_fail_the_run_without_output(stage, model_file, workdir, capsys):
    source = write(batch(), workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "scored.csv", "--max-reject-rate", "0.4") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1
    assert "4 of 8 rows rejected (50.0% > --max-reject-rate 0.4), most often area=2" in errors[0]
    assert leftovers(workdir) == []


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        (lambda path: None, "model file not found"),
        (lambda path: joblib.dump({"weights": [1]}, path), "not a model file of this project"),
        (lambda path: path.write_bytes(b"not a pickle"), "not a model file of this project"),
    ],
)
def test_a_bad_model_is_one_line_exit_2_and_no_output(stage, workdir, capsys, make_model, message):
    make_model(workdir / "model.joblib")
    source = write(batch(), workdir / "in.csv")
    assert run(stage, workdir / "model.joblib", source, workdir / "scored.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0]
    assert leftovers(workdir) == []


def test_a_model_that_differs_from_dvc_lock_is_refused(stage, model_file, workdir, capsys):
    (workdir / "dvc.lock").write_text(
        f"stages:\n  train:\n    outs:\n    - path: {model_file}\n      md5: {'0' * 32}\n", encoding="utf-8"
    )
    source = write(batch(), workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "scored.csv") == 2
    assert "md5 differs from dvc.lock" in error_lines(capsys)[0]
    (workdir / "dvc.lock").write_text(
        f"stages:\n  train:\n    outs:\n    - path: {model_file}\n      md5: {file_md5(model_file)}\n",
        encoding="utf-8",
    )
    assert run(stage, model_file, source, workdir / "scored.csv") == 0
    assert leftovers(workdir) == ["scored.csv", "scored.rejects.csv"]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "in.csv", "in.csv: file not found"),
        ("", "in.csv", "in.csv: not a readable CSV file"),
        ("a,b\n1,2,3,4\n", "in.csv", "in.csv: not a readable CSV file (Length of header"),
        (
            "a,b\n1,2\n1,2,3\n",
            "in.csv",
            "in.csv: not a readable CSV file (Error tokenizing data. C error: Expected 2",
        ),
        ("not parquet", "in.parquet", "in.parquet: not a readable PARQUET file"),
        ("a,b\n", "in.txt", "in.txt: input must be a .csv or .parquet file"),
    ],
)
def test_unreadable_input_is_one_line_exit_2(stage, model_file, workdir, capsys, content, name, message):
    if content is not None:
        (workdir / name).write_text(content)
    assert run(stage, model_file, workdir / name, workdir / "scored.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0]
    assert leftovers(workdir) == []


def test_output_columns_must_not_clash_and_formats_are_checked(stage, model_file, workdir, capsys):
    source = write(batch().assign(predicted_rent=1), workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "scored.csv") == 2
    assert "column(s) predicted_rent clash with output columns" in error_lines(capsys)[0]
    assert run(stage, model_file, write(batch(), source), workdir / "scored.json") == 2
    assert "scored.json: output must be a .csv or .parquet file" in error_lines(capsys)[0]
    assert leftovers(workdir) == []


def test_importing_the_stage_does_no_work(workdir):
    load_stage()
    assert list(workdir.iterdir()) == []
