"""The predict stage script end to end on small files, in process."""

import datetime
import decimal
import errno
import io
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest
import yaml
from loguru import logger

from rentprice import batch as batch_module
from rentprice import io as io_module
from rentprice.batch import Summary
from rentprice.drift import DriftMonitor
from rentprice.io import file_md5, read_yaml
from rentprice.model import load_model
from rentprice.scoring import score, validate_listings
from tests.code.scoring_fixtures import save_tiny_model
from tests.support import REPO_ROOT, listings, load_module, stage_started

BAD_ROWS = {1: {"area": None}, 3: {"balcony": "maybe"}, 4: {"garden": "huge"}, 6: {"area": "12a"}}


def load_stage():
    return load_module("stages/predict.py")


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
    scored, rejects = read(output), read(workdir / f"scored{output_suffix}.rejects.csv")
    assert list(scored.columns) == [
        "row",
        "listing_id",
        "address",
        "note",
        "predicted_rent",
        "predicted_rent_low",
        "predicted_rent_high",
    ]
    assert list(rejects.columns) == ["row", "field", "reason", "listing_id", "address", "note"]
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
    assert len(read(workdir / "out.parquet.rejects.csv")) == 4


def test_explicit_rejects_path_and_empty_input(stage, model_file, workdir):
    source = write(batch().iloc[:0], workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "o.parquet", "--rejects", str(workdir / "r.parquet")) == 0
    assert read(workdir / "o.parquet").empty and read(workdir / "r.parquet").empty
    assert list(read(workdir / "r.parquet").columns) == [
        "row", "field", "reason", "listing_id", "address", "note"
    ]  # fmt: skip


def test_a_failure_mid_run_leaves_no_partial_output_and_keeps_the_old_one(
    stage, model_file, workdir, monkeypatch
):
    source = write(batch(), workdir / "in.csv")
    (workdir / "scored.csv").write_text("previous run\n")
    calls = []
    write_scored_rows = batch_module.scored_table

    def crash_on_second_chunk(checked, prices, schema):
        calls.append(len(prices))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return write_scored_rows(checked, prices, schema)

    monkeypatch.setattr(batch_module, "scored_table", crash_on_second_chunk)
    assert run(stage, model_file, source, workdir / "scored.csv", "--chunk-rows", "3") == 128 + signal.SIGINT
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


def with_a_line_of_extra_fields(workdir):
    """A CSV whose 6th row has a field too many: the run fails mid-way, after chunks were written."""
    source = write(batch(), workdir / "in.csv")
    lines = source.read_text().splitlines()
    lines[6] += ",extra"
    source.write_text("\n".join(lines) + "\n")
    return source


def interrupted_mid_run(monkeypatch):
    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_module, "scored_table", stop)


@pytest.mark.parametrize(
    ("fail", "extra", "code", "message"),
    [
        (lambda workdir, patch: None, ["--max-reject-rate", "0.4"], 2, "4 of 8 rows rejected"),
        (lambda workdir, patch: with_a_line_of_extra_fields(workdir), [], 2, "in.csv: not a readable CSV"),
        (lambda workdir, patch: interrupted_mid_run(patch), [], 130, "no partial output left"),
    ],
)
def test_a_failed_run_removes_the_folders_it_made_for_its_outputs(
    stage, model_file, workdir, capsys, monkeypatch, fail, extra, code, message
):
    write(batch(), workdir / "in.csv")
    fail(workdir, monkeypatch)
    (workdir / "kept").mkdir()
    paths = ["--rejects", "kept/new/rejects.parquet", "--drift", "drift/of/run.json", "--chunk-rows", "2"]
    assert run(stage, model_file, workdir / "in.csv", "new/deeper/out.csv", *paths, *extra) == code
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0], errors
    assert sorted(path.name for path in workdir.iterdir()) == ["in.csv", "kept", "logs"]
    assert list((workdir / "kept").iterdir()) == []


def test_outputs_given_as_symlinks_are_written_through_and_stay_links(stage, model_file, workdir):
    source = write(batch(), workdir / "in.csv")
    (workdir / "real").mkdir()
    for name in ("out.csv", "rejects.csv"):
        (workdir / "real" / name).write_text("stale\n")
        (workdir / name).symlink_to(Path("real") / name)
    assert run(stage, model_file, source, "out.csv", "--rejects", "rejects.csv") == 0
    assert (workdir / "out.csv").is_symlink() and (workdir / "rejects.csv").is_symlink()
    assert len(read(workdir / "real" / "out.csv")) == 4 and len(read(workdir / "real" / "rejects.csv")) == 4
    assert sorted(path.name for path in (workdir / "real").iterdir()) == ["out.csv", "rejects.csv"]


def test_a_symlink_to_the_input_is_still_refused(stage, model_file, workdir, capsys):
    source = write(batch(), workdir / "in.csv")
    before = source.read_bytes()
    (workdir / "out.csv").symlink_to("in.csv")
    assert run(stage, model_file, source, "out.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "--output is the same file as --input" in errors[0]
    assert source.read_bytes() == before and (workdir / "out.csv").is_symlink()


def test_a_stop_after_the_outputs_are_in_place_names_them(stage, model_file, workdir, capsys, monkeypatch):
    source = write(batch(), workdir / "in.csv")

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "report", stop)
    assert run(stage, model_file, source, "out.csv") == 130
    errors = error_lines(capsys)
    assert len(errors) == 1, errors
    assert errors[0].endswith(
        "predict interrupted by SIGINT: stopped after writing out.csv, out.csv.rejects.csv, "
        "out.csv.drift.json (complete); nothing partial left"
    )
    assert len(read(workdir / "out.csv")) == 4


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
    assert leftovers(workdir) == ["scored.csv", "scored.csv.drift.json", "scored.csv.rejects.csv"]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "in.csv", "in.csv: file not found"),
        ("", "in.csv", "in.csv: not a readable CSV file"),
        ("a,b\n1,2,3,4\n", "in.csv", "in.csv: not a readable CSV file (row 0 has 4 fields, the header 2"),
        ("a,b\n1,2\n1,2,3\n", "in.csv", "in.csv: not a readable CSV file (row 1 has 3 fields, the header 2"),
        ('a,b\n1,"2\n3,4\n', "in.csv", "in.csv: not a readable CSV file (row 0 opens a quoted value"),
        ("not parquet", "in.parquet", "in.parquet: not a readable PARQUET file"),
        ("a,b\r1,2\r", "in.csv", "in.csv: not a readable CSV file (its lines end in a lone carriage return"),
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


# --- issue 13: each kind of fault end to end: one line, exit 2, nothing written; or the right rows ---


def run_ok(stage, model_file, source, output, *extra) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert run(stage, model_file, source, output, *extra) == 0
    rejects = next((Path(value) for flag, value in itertools.pairwise(extra) if flag == "--rejects"), None)
    return read(output), read(rejects or output.with_name(output.name + ".rejects.csv"))


def test_values_outside_the_trained_range_are_rejected_and_no_warning_reaches_stderr(
    stage, model_file, workdir, capsys
):
    frame = listings(
        {}, {"area": "83000"}, {"area": "1e300"}, {"area": "12345678901234567890"}, {"rooms": "1e39"}
    )
    source = write(frame, workdir / "in.csv")
    scored, rejects = run_ok(stage, model_file, source, workdir / "out.csv", "--max-reject-rate", "1")
    assert scored["row"].tolist() == [0]
    assert rejects["field"].tolist() == ["area", "area", "area", "rooms"]
    assert rejects["reason"].str.contains("is outside the range the model was trained on").all()
    err = capsys.readouterr().err
    assert "Warning" not in err and "warn" not in err.lower() and "Traceback" not in err


def test_headers_differing_in_spacing_case_or_source_spelling_are_the_same_columns(
    stage, model_file, workdir
):
    frame = batch()
    expected, _ = run_ok(stage, model_file, write(frame, workdir / "in.csv"), workdir / "plain.csv")
    spelled = frame.rename(
        columns={"area": " Area ", "garden": "GARDEN", "construction_year": "constraction_year"}
    )
    scored, _ = run_ok(stage, model_file, write(spelled, workdir / "in.csv"), workdir / "spelled.csv")
    pd.testing.assert_frame_equal(scored, expected)
    joined = frame.rename(columns={"construction_year": "Construction Year", "bathrooms": "\u200bBathrooms"})
    scored, _ = run_ok(stage, model_file, write(joined, workdir / "in.csv"), workdir / "joined.csv")
    pd.testing.assert_frame_equal(scored, expected)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("second", ["area", " AREA", "constraction_year"])
def test_a_repeated_column_is_one_line_exit_2_and_no_output(
    stage, model_file, workdir, capsys, suffix, second
):
    frame = batch()
    first = "construction_year" if second == "constraction_year" else "area"
    doubled = pd.concat([frame, frame[[first]].set_axis([second], axis=1)], axis=1)
    source = workdir / f"in{suffix}"
    if suffix == ".csv":
        doubled.to_csv(source, index=False)
    else:
        columns = [pa.array(doubled.iloc[:, i].astype(str)) for i in range(doubled.shape[1])]
        pa_parquet.write_table(pa.Table.from_arrays(columns, names=list(doubled.columns)), source)
    assert run(stage, model_file, source, workdir / "scored.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"in{suffix}: column '{first}' appears more than once" in errors[0]
    assert leftovers(workdir) == []


def typed_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Parquet types: booleans, nullable ints, decimals, dictionaries, dates, a list column."""
    return pa.table(
        {
            "listing_id": frame["listing_id"],
            "area": pa.array([decimal.Decimal(str(value)) for value in frame["area"]], pa.decimal128(9, 2)),
            "construction_year": pa.array([datetime.date(int(y), 6, 1) for y in frame["construction_year"]]),
            "rooms": pa.array(frame["rooms"].astype(int), pa.int16()),
            "bedrooms": pa.array([int(value) for value in frame["bedrooms"]], pa.int64()),
            "bathrooms": pa.array(frame["bathrooms"].astype(int).tolist(), pa.uint8()),
            **{
                name: pa.array(frame[name] == "yes")
                for name in ("balcony", "storage", "parking", "furnished")
            },
            "garage": pa.array(frame["garage"]).dictionary_encode(),
            "garden": frame["garden"],
            "energy": pa.array(frame["energy"]).dictionary_encode(),
            "facilities": frame["facilities"],
            "zip": frame["zip"],
            "neighborhood": pa.array(frame["neighborhood"]).dictionary_encode(),
            "tags": pa.array([["a", "b"]] * len(frame), pa.list_(pa.string())),
        }
    )


def test_typed_parquet_gets_the_same_verdict_and_rent_as_text(stage, model_file, workdir):
    frame = listings(*({"area": 40.0 + 5 * i, "balcony": "yes" if i % 2 else "no"} for i in range(6)))
    frame.insert(0, "listing_id", [f"L{i}" for i in range(len(frame))])
    write(frame, workdir / "in.csv")
    as_text, _ = run_ok(stage, model_file, workdir / "in.csv", workdir / "text.parquet")
    pa_parquet.write_table(typed_table(frame), workdir / "in.parquet")
    typed, rejects = run_ok(
        stage, model_file, workdir / "in.parquet", workdir / "typed.parquet", "--rejects", "r.parquet"
    )
    assert rejects.empty
    np.testing.assert_array_equal(typed["predicted_rent"], as_text["predicted_rent"])
    assert typed["tags"].map(list).tolist() == [["a", "b"]] * 6, "Parquet holds the list column"


def test_timestamps_in_a_year_field_are_their_year(stage, model_file, workdir):
    frame = batch(3).drop(columns="note")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    years = pa.array([datetime.datetime(1930, 1, 1, 12)] * 3, pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("construction_year"), "construction_year", years)
    pa_parquet.write_table(table, workdir / "in.parquet")
    typed, _ = run_ok(stage, model_file, workdir / "in.parquet", workdir / "out.parquet")
    plain, _ = run_ok(stage, model_file, write(frame, workdir / "in.csv"), workdir / "plain.parquet")
    np.testing.assert_array_equal(typed["predicted_rent"], plain["predicted_rent"])


def bytes_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Parquet with its text columns stored as bytes (BYTE_ARRAY without UTF-8 annotation)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.cast(
        pa.schema(
            [
                pa.field(f.name, pa.binary())
                if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                else f
                for f in table.schema
            ]
        )
    )


def test_text_stored_as_bytes_gets_the_same_verdict_and_rent_as_text(stage, model_file, workdir):
    frame = listings(*({"area": 40.0 + 5 * i, "balcony": "yes" if i % 2 else "no"} for i in range(4)))
    as_text, _ = run_ok(stage, model_file, write(frame, workdir / "in.csv"), workdir / "text.parquet")
    pa_parquet.write_table(bytes_table(frame), workdir / "in.parquet")
    as_bytes, rejects = run_ok(
        stage, model_file, workdir / "in.parquet", workdir / "b.parquet", "--rejects", "r.parquet"
    )
    assert rejects.empty
    np.testing.assert_array_equal(as_bytes["predicted_rent"], as_text["predicted_rent"])


def test_bytes_that_are_not_text_are_one_line_exit_2_naming_row_and_field(stage, model_file, workdir, capsys):
    table = bytes_table(listings({}, {}, {}))
    neighborhoods = pa.array([b"Centrum", b"Centrum", b"\xff\xfe"])
    table = table.set_column(table.schema.get_field_index("neighborhood"), "neighborhood", neighborhoods)
    pa_parquet.write_table(table, workdir / "in.parquet")
    assert (
        run(stage, model_file, workdir / "in.parquet", workdir / "o.parquet", "--rejects", "r.parquet") == 2
    )
    errors = error_lines(capsys)
    assert len(errors) == 1
    assert errors[0].endswith("in.parquet: row 2, field neighborhood: bytes that are not UTF-8 text")
    assert leftovers(workdir) == []


def test_a_bytes_column_into_csv_is_one_line_exit_2_before_writing(stage, model_file, workdir, capsys):
    frame = listings({}, {})
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column("raw", pa.array([b"a", b"\xff"]))
    pa_parquet.write_table(table, workdir / "in.parquet")
    assert run(stage, model_file, workdir / "in.parquet", workdir / "out.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "column 'raw' holds binary, which CSV cannot hold" in errors[0]
    assert leftovers(workdir) == []
    assert (
        run(stage, model_file, workdir / "in.parquet", workdir / "o.parquet", "--rejects", "r.parquet") == 0
    )
    assert read(workdir / "o.parquet")["raw"].tolist() == [b"a", b"\xff"], "Parquet holds the bytes"


@pytest.mark.parametrize(
    ("output", "extra", "blocked"),
    [
        ("out.csv", (), "out.csv"),
        ("out.parquet", (), "out.parquet.rejects.csv"),
        ("out.csv", ("--rejects", "r.parquet"), "out.csv"),
    ],
)
def test_a_list_column_into_csv_is_one_line_exit_2_before_writing(
    stage, model_file, workdir, capsys, output, extra, blocked
):
    frame = listings({}, {})
    frame.insert(0, "listing_id", ["L0", "L1"])
    pa_parquet.write_table(typed_table(frame), workdir / "in.parquet")
    assert run(stage, model_file, workdir / "in.parquet", workdir / output, *extra) == 2
    errors = error_lines(capsys)
    assert (
        len(errors) == 1 and "column 'tags' holds list<" in errors[0] and "which CSV cannot hold" in errors[0]
    )
    assert f"cannot be passed through to {workdir / blocked};" in errors[0]
    assert leftovers(workdir) == []


COLLISIONS = [
    "output-is-input", "rejects-is-output", "symlink", "rejects-is-input", "drift-is-input",
    "drift-is-output", "drift-is-rejects",
]  # fmt: skip


@pytest.mark.parametrize("collision", COLLISIONS)
def test_colliding_paths_are_one_line_exit_2_before_reading(stage, model_file, workdir, capsys, collision):
    source = write(batch(), workdir / "in.csv")
    before = source.read_bytes()
    out = workdir / "out.csv"
    args = {
        "output-is-input": (source, ()),
        "rejects-is-output": (out, ("--rejects", str(out))),
        "symlink": (workdir / "link.csv", ()),
        "rejects-is-input": (out, ("--rejects", str(source))),
        "drift-is-input": (out, ("--drift", str(source))),
        "drift-is-output": (out, ("--drift", str(out))),
        "drift-is-rejects": (out, ("--drift", f"{out}.rejects.csv")),
    }[collision]
    if collision == "symlink":
        (workdir / "link.csv").symlink_to(source)
    assert run(stage, model_file, source, args[0], *args[1]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "is the same file as" in errors[0]
    assert source.read_bytes() == before
    assert not (workdir / "out.csv").exists() and not (workdir / "out.csv.rejects.csv").exists()


@pytest.mark.parametrize("role", ["--output", "--rejects"])
def test_an_output_that_is_the_file_stdin_reads_is_refused(
    stage, model_file, workdir, capsys, monkeypatch, role
):
    source = write(batch(), workdir / "in.csv")
    before = source.read_bytes()
    with open(source, encoding="utf-8") as redirected:  # as `--input - < in.csv` has it
        monkeypatch.setattr(sys, "stdin", redirected)
        paths = {"--output": str(source), "--rejects": str(workdir / "out.csv")}
        if role == "--rejects":
            paths = {"--output": str(workdir / "out.csv"), "--rejects": f"./{source.name}"}
        argv = ["--model", str(model_file), "--input", "-", *itertools.chain(*paths.items())]
        assert stage.main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"{role} is the file stdin reads (--input -)" in errors[0]
    assert source.read_bytes() == before and leftovers(workdir) == []


@pytest.mark.parametrize("flags", [("--output", "-"), ("--output", "out.csv", "--rejects", "-")])
def test_an_output_named_dash_is_refused_not_written_to_a_file_named_dash(
    stage, model_file, workdir, capsys, flags
):
    source = write(batch(), workdir / "in.csv")
    assert stage.main(["--model", str(model_file), "--input", str(source), *flags]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "output cannot be stdout (- reads stdin for --input only)" in errors[0]
    assert leftovers(workdir) == []


def test_default_rejects_of_a_csv_and_a_parquet_output_differ(stage, model_file, workdir):
    source = write(batch(), workdir / "in.csv")
    run_ok(stage, model_file, source, workdir / "x.csv")
    run_ok(stage, model_file, source, workdir / "x.parquet")
    assert {"x.csv.rejects.csv", "x.parquet.rejects.csv"} <= set(leftovers(workdir))


@pytest.mark.parametrize("failing", [".rejects.csv", ".drift.json"])
def test_a_failed_later_rename_keeps_every_old_output(
    stage, model_file, workdir, capsys, monkeypatch, failing
):
    source = write(batch(), workdir / "in.csv")
    old = {name: f"old {name}\n" for name in ("out.csv", "out.csv.rejects.csv", "out.csv.drift.json")}
    for name, text in old.items():
        (workdir / name).write_text(text)
    real_replace = os.replace

    def replace(source_path, target):
        if str(target).endswith(failing):
            raise OSError(errno.EACCES, "Permission denied", str(target))
        return real_replace(source_path, target)

    monkeypatch.setattr(io_module.os, "replace", replace)
    assert run(stage, model_file, source, workdir / "out.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "cannot write (Permission denied); nothing was written" in errors[0]
    assert {name: (workdir / name).read_text() for name in old} == old
    assert leftovers(workdir) == sorted(old)


@pytest.mark.parametrize("drift", ["a-folder", "/proc/rentprice-drift.json"])
def test_a_drift_file_that_cannot_be_written_is_one_line_exit_2_and_nothing_changes(
    stage, model_file, workdir, capsys, drift
):
    source = write(batch(), workdir / "in.csv")
    (workdir / "a-folder").mkdir()
    (workdir / "out.csv").write_text("old scored\n")
    target = workdir / drift
    assert run(stage, model_file, source, workdir / "out.csv", "--drift", str(target)) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f" {target}: cannot write" in errors[0] and "nothing was written" in errors[0]
    assert (workdir / "out.csv").read_text() == "old scored\n"
    assert leftovers(workdir) == ["out.csv"]


def test_a_full_disk_is_one_line_exit_2_and_no_output(stage, model_file, workdir, capsys, monkeypatch):
    source = write(batch(), workdir / "in.csv")

    class FullDisk:
        def __init__(self, *args):
            pass

        def write_table(self, table):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(batch_module.pa_csv, "CSVWriter", FullDisk)
    assert run(stage, model_file, source, workdir / "out.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "cannot write (No space left on device)" in errors[0]
    assert leftovers(workdir) == []


def test_an_output_in_a_folder_that_cannot_exist_is_one_line_exit_2(stage, model_file, workdir, capsys):
    source = write(batch(), workdir / "in.csv")
    (workdir / "file").write_text("")
    assert run(stage, model_file, source, workdir / "file" / "out.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "cannot write" in errors[0]
    assert leftovers(workdir) == ["file"]


@pytest.mark.slow
def test_sigterm_mid_run_is_one_line_and_leaves_no_temporary_file_nor_folder(model_file, workdir):
    command = [sys.executable, str(REPO_ROOT / "stages" / "predict.py"), "--model", str(model_file)]
    command += ["--input", "in.csv", "--output", "new/deeper/out.csv", "--chunk-rows", "1"]
    command += ["--lock", "none.lock"]
    listings(*({"area": 40.0 + i % 100} for i in range(5000))).to_csv(workdir / "in.csv", index=False)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=workdir, stderr=subprocess.PIPE, env=environment)
    deadline = time.monotonic() + 120
    while not list(workdir.rglob("*.tmp")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1].decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    errors = [line for line in err.decode().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "interrupted by SIGTERM: stopped; no partial output left" in errors[0]
    assert "Traceback" not in err.decode()
    assert sorted(path.name for path in workdir.iterdir() if path.name != "logs") == ["in.csv"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_script_imports_is_one_line(model_file, workdir, signum):
    """Run by hand, not by DVC: Ctrl-C or `kill` in the seconds of imports before run_stage.

    Ctrl-C would print a traceback, SIGTERM nothing at all; either is one line and exit 128 + signal.
    """
    command = [sys.executable, str(REPO_ROOT / "stages" / "predict.py"), "--model", str(model_file)]
    command += ["--input", "in.csv", "--output", "new/out.csv", "--lock", "none.lock"]
    listings({"area": 50.0}).to_csv(workdir / "in.csv", index=False)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    environment.pop("DVC_STAGE", None)
    process = subprocess.Popen(
        command, cwd=workdir, stderr=subprocess.PIPE, env=environment, start_new_session=True
    )
    time.sleep(0.5)  # past the interpreter's own start, inside the seconds of imports
    assert not stage_started(process.pid), "past its imports: the machine is too slow for this test"
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # as a terminal sends it
    else:
        process.send_signal(signum)  # as `kill PID` does
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    name = signal.Signals(signum).name
    assert err.decode().strip() == f"interrupted by {name} while starting: stopped; nothing written"
    assert sorted(path.name for path in workdir.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_semicolon_separated_csv_says_so_in_one_line(stage, model_file, workdir, capsys, separator):
    batch().to_csv(workdir / "in.csv", index=False, sep=separator, decimal=",")
    assert run(stage, model_file, workdir / "in.csv", workdir / "out.csv") == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"the header holds {separator!r} but no comma" in errors[0]
    assert leftovers(workdir) == []


def test_the_stage_scores_params_predict_input_when_no_input_is_given(stage, model_file, workdir):
    write(batch(), workdir / "my listings.csv")
    params = read_yaml(REPO_ROOT / "params.yaml")
    params["predict"]["input"] = "my listings.csv"
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    assert stage.main(["--model", str(model_file), "--output", str(workdir / "out.csv")]) == 0
    assert len(read(workdir / "out.csv")) == 4


def test_summaries_of_parts_merged_equal_counting_every_chunk_in_one():
    rejects = pa.table({"field": ["area", "balcony", "area"]})
    chunks = [
        (5, pa.table({"x": [1] * 3}), rejects.slice(0, 2), {"energy": 1}),
        (4, pa.table({"x": [1] * 3}), rejects.slice(2), {"zip": 2}),
    ]
    whole = Summary(DriftMonitor(None))
    for chunk in chunks:
        whole.count(*chunk)
    merged = Summary(DriftMonitor(None))
    for chunk in chunks:
        part = Summary(DriftMonitor(None))
        part.count(*chunk)
        merged.merge(part)
    for summary in (whole, merged):
        assert (summary.rows, summary.scored, summary.rejected) == (9, 6, 3)
        assert summary.rejected_by_field == {"area": 2, "balcony": 1}
        assert summary.treated_as_unknown == {"energy": 1, "zip": 2}


def test_without_a_terminal_progress_is_a_log_line_with_rows_so_far(monkeypatch):
    monkeypatch.setattr(batch_module, "PROGRESS_SECONDS", 0)
    lines = []
    sink = logger.add(lines.append, format="{message}")
    try:
        with batch_module.progress_reporter(total=10) as progress:
            progress(4)
            progress(6)
    finally:
        logger.remove(sink)
    assert [line.split(",")[0] for line in lines] == ["progress: 4 rows", "progress: 10 rows"]


def test_a_drift_folder_is_refused_before_a_cluster_starts(stage, model_file, workdir, capsys):
    source = write(batch(), workdir / "in.csv")
    (workdir / "a-folder").mkdir()
    args = ("--scheduler", "local:1", "--drift", str(workdir / "a-folder"))
    assert run(stage, model_file, source, workdir / "out", *args) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "--drift is a folder" in errors[0]
    assert not (workdir / "out").exists()


@pytest.mark.parametrize(
    ("flags", "phrase"),
    [
        (("--psi-warn", "-1"), "drift.psi_warn: expected a number > 0, given -1.0"),
        (("--psi-alert", "nan"), "drift.psi_alert: expected a number > 0, given nan"),
        (("--min-rows", "0"), "drift.min_rows: expected an integer >= 1, given 0"),
        (("--psi-warn", "0.5", "--psi-alert", "0.3"), "drift: expected psi_warn <= psi_alert"),
    ],
)
def test_drift_flags_are_checked_as_the_params_are(stage, model_file, workdir, capsys, flags, phrase):
    source = write(batch(), workdir / "in.csv")
    assert run(stage, model_file, source, workdir / "out.csv", *flags) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and phrase in errors[0]
    assert leftovers(workdir) == []
