"""Scoring a partitioned data set on a Dask cluster (stages/predict.py --scheduler), on loopback only.

One LocalCluster of 2 worker processes (1 thread each) serves the whole module; its workers inherit
the credentials and endpoint of a moto S3 server, as a real cluster's workers would have theirs.
The distributed result is compared row for row with the streaming stage scoring each file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import dask
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from rentprice import distributed as distributed_module
from rentprice.logs import setup_logging
from tests.code.scoring_fixtures import save_tiny_model
from tests.integration.storage_support import aws_client, free_port, moto_server
from tests.support import REPO_ROOT, listings, load_module

pytestmark = pytest.mark.slow

BUCKET = "rentprice"
#: Per file: (name, rows, {row: bad values}); one file sits in a Hive-style subdirectory.
FILES = [
    ("a.parquet", 5, {1: {"area": None}, 3: {"balcony": "maybe"}}),
    ("b.parquet", 4, {2: {"garden": "huge"}}),
    ("year=2026/c.parquet", 3, {}),
]


def load_stage():
    return load_module("stages/predict.py")


@pytest.fixture(scope="module")
def stage():
    return load_stage()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model.joblib")


@pytest.fixture(scope="module")
def s3():
    """The endpoint of a moto S3 server on loopback holding an empty bucket."""
    with moto_server() as endpoint:
        aws_client("s3", endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(scope="module")
def client(s3, tmp_path_factory):
    """A Client of a LocalCluster (2 processes, 1 thread each) whose workers can reach the moto bucket."""
    empty = tmp_path_factory.mktemp("no-aws")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": s3,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
            "AWS_CONFIG_FILE": str(empty / "config"),
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as cluster_client,
        ):
            yield cluster_client


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def listing_file(name: str, rows: int, bad: dict) -> pd.DataFrame:
    """Listings with an id first and a note last, bad values at the rows in ``bad``."""
    frame = listings(*({"area": 40.0 + 5 * i, **bad.get(i, {})} for i in range(max(rows, 1)))).iloc[:rows]
    frame.insert(0, "listing_id", [f"{name[0]}{i}" for i in range(rows)])
    frame["note"] = [f"note {i}" if i % 2 else None for i in range(rows)]
    return frame.astype({"area": "str"})


def write_dataset(directory, files=FILES, row_group_size: int = 2) -> list:
    """The FILES as Parquet under ``directory``, several row groups each; their paths."""
    paths = []
    for name, rows, bad in files:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        listing_file(name, rows, bad).to_parquet(path, index=False, row_group_size=row_group_size)
        paths.append(path)
    return paths


def streaming_results(stage, model_file, paths, shown) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scored rows and rejects of the streaming stage on each file, concatenated, with source_file first."""
    scored, rejects = [], []
    for number, (path, name) in enumerate(zip(paths, shown, strict=True)):
        out, rejected = (
            path.parent / f"single{number}.parquet",
            path.parent / f"single{number}.rejects.parquet",
        )
        assert run(stage, model_file, path, out, "--rejects", str(rejected)) == 0
        for frames, result in ((scored, out), (rejects, rejected)):
            frame = pd.read_parquet(result)
            frame.insert(0, "source_file", name)
            frames.append(frame)
            result.unlink()
    return pd.concat(scored, ignore_index=True), pd.concat(rejects, ignore_index=True)


def run(stage, model_file, source, output, *extra) -> int:
    return stage.main(["--model", str(model_file), "--input", str(source), "--output", str(output), *extra])


def read_dataset(path) -> pd.DataFrame:
    return pd.read_parquet(path).reset_index(drop=True)


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "| ERROR" in line]


def leftovers(directory) -> list[str]:
    """Everything in ``directory`` but the inputs and the logs: outputs and temporary prefixes."""
    return sorted(path.name for path in directory.iterdir() if path.name not in {"parts", "logs"})


def test_a_partitioned_data_set_equals_streaming_scoring_row_for_row(
    stage, model_file, client, workdir, capsys
):
    paths = write_dataset(workdir / "parts")
    shown = [f"parts/{name}" for name, _, _ in FILES]
    expected_scored, expected_rejects = streaming_results(stage, model_file, paths, shown)
    assert (
        run(stage, model_file, "parts", "out", "--scheduler", client.scheduler.address, "--chunk-rows", "2")
        == 0
    )
    scored, rejects = read_dataset(workdir / "out"), read_dataset(workdir / "out.rejects")
    pd.testing.assert_frame_equal(scored, expected_scored)
    pd.testing.assert_frame_equal(rejects, expected_rejects)
    assert list(scored.columns) == [
        "source_file",
        "row",
        *(
            name
            for name in expected_scored.columns
            if name not in ("source_file", "row") and "rent" not in name
        ),
        "predicted_rent",
        "predicted_rent_low",
        "predicted_rent_high",
    ]
    assert rejects[["source_file", "row", "field"]].values.tolist() == [
        ["parts/a.parquet", 1, "area"],
        ["parts/a.parquet", 3, "balcony"],
        ["parts/b.parquet", 2, "garden"],
    ]
    assert len(scored) + len(rejects) == sum(rows for _, rows, _ in FILES)
    assert leftovers(workdir) == ["out", "out.drift.json", "out.rejects"]
    assert (workdir / "out" / "_SUCCESS").is_file()
    err = capsys.readouterr().err
    assert "score listings: rows=12, scored=9, rejected=3, parts=3" in err
    # the drift of the whole data set: what streaming all its rows as one file reports
    pd.concat([pd.read_parquet(path) for path in paths]).to_parquet(workdir / "all.parquet", index=False)
    assert run(stage, model_file, workdir / "all.parquet", workdir / "all" / "scored.parquet") == 0
    drift = json.loads((workdir / "out.drift.json").read_text())
    assert drift == json.loads((workdir / "all" / "scored.parquet.drift.json").read_text())
    assert drift["rows"] == 9 and drift["max_psi"] is not None  # a profile, counted on the workers
    assert "dashboard: http://127.0.0.1:" in err


def test_files_cut_into_parts_of_row_groups_give_the_same_rows(model_file, client, workdir):
    setup_logging("predict", workdir / "logs")  # loguru to this test's stderr
    write_dataset(workdir / "parts", row_group_size=1)
    address = client.scheduler.address
    distributed_module.score_dataset(model_file, "parts", "whole", "whole.rejects", address)
    distributed_module.score_dataset(
        model_file, "parts", "cut", "cut.rejects", address, chunk_rows=1, part_rows=2
    )
    assert len(list((workdir / "cut").glob("part-*.parquet"))) == 3 + 2 + 2  # 5, 4 and 3 rows
    pd.testing.assert_frame_equal(read_dataset(workdir / "cut"), read_dataset(workdir / "whole"))
    pd.testing.assert_frame_equal(
        read_dataset(workdir / "cut.rejects"), read_dataset(workdir / "whole.rejects")
    )


def test_csv_files_and_csv_outputs(stage, model_file, client, workdir):
    for name, rows, bad in FILES:
        path = workdir / "parts" / name.replace(".parquet", ".csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        listing_file(name, rows, bad).to_csv(path, index=False)
    address = client.scheduler.address
    assert run(stage, model_file, "parts", "out.csv", "--scheduler", address) == 0
    scored = pd.concat(
        pd.read_csv(path, dtype={"note": str}) for path in sorted((workdir / "out.csv").glob("*.csv"))
    )
    rejects = pd.concat(pd.read_csv(path) for path in sorted((workdir / "out.rejects.csv").glob("*.csv")))
    assert scored["source_file"].unique().tolist() == ["parts/a.csv", "parts/b.csv", "parts/year=2026/c.csv"]
    assert len(scored) == 9 and rejects["row"].tolist() == [1, 3, 2]


def test_input_and_output_on_s3(stage, model_file, client, workdir, s3):
    paths = write_dataset(workdir / "parts")
    s3_client = aws_client("s3", s3)
    for path, (name, _, _) in zip(paths, FILES, strict=True):
        s3_client.upload_file(str(path), BUCKET, f"listings/{name}")
    address = client.scheduler.address
    assert (
        run(
            stage, model_file, f"s3://{BUCKET}/listings/", f"s3://{BUCKET}/scored/out", "--scheduler", address
        )
        == 0
    )
    assert run(stage, model_file, "parts", "out", "--scheduler", address) == 0
    for remote, local in (("out", "out"), ("out.rejects", "out.rejects")):
        frame = read_dataset(f"s3://{BUCKET}/scored/{remote}")
        expected = read_dataset(workdir / local)
        assert frame["source_file"].tolist() == [
            name.replace("parts/", f"s3://{BUCKET}/listings/") for name in expected["source_file"]
        ]
        pd.testing.assert_frame_equal(frame.drop(columns="source_file"), expected.drop(columns="source_file"))
    keys = [item["Key"] for item in s3_client.list_objects_v2(Bucket=BUCKET, Prefix="scored/")["Contents"]]
    assert all(key.startswith(("scored/out/", "scored/out.rejects/")) for key in keys), keys
    assert "scored/out/_SUCCESS" in keys


def die_on_second_chunk():
    """Installed into a worker process: it exits abruptly when scoring its second chunk, as if killed."""
    calls = []
    original = distributed_module.score_chunk

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os._exit(1)
        return original(*args, **kwargs)

    distributed_module.score_chunk = dying


def kill_one_worker_mid_part(client) -> int:
    """Make the first worker exit abruptly in its next part; its process id."""
    address, pid = sorted(client.run(os.getpid).items())[0]
    client.run(die_on_second_chunk, workers=[address])
    return pid


def test_a_worker_killed_mid_run_is_replaced_and_the_job_finishes_correctly(stage, model_file, workdir):
    write_dataset(workdir / "parts")
    # a cluster of its own: the module's keeps both its workers for the other tests
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        address = cluster.scheduler_address
        assert run(stage, model_file, "parts", "expected", "--scheduler", address, "--chunk-rows", "2") == 0
        killed = kill_one_worker_mid_part(client)
        assert run(stage, model_file, "parts", "out", "--scheduler", address, "--chunk-rows", "2") == 0
        assert killed not in client.run(os.getpid).values()  # it died during the run
    pd.testing.assert_frame_equal(read_dataset(workdir / "out"), read_dataset(workdir / "expected"))
    pd.testing.assert_frame_equal(
        read_dataset(workdir / "out.rejects"), read_dataset(workdir / "expected.rejects")
    )
    # the part retried after the death is counted once
    assert (workdir / "out.drift.json").read_text() == (workdir / "expected.drift.json").read_text()
    assert leftovers(workdir) == [
        "expected",
        "expected.drift.json",
        "expected.rejects",
        "out",
        "out.drift.json",
        "out.rejects",
    ]


def test_a_job_whose_worker_dies_too_often_fails_with_one_line_and_leaves_nothing(
    stage, model_file, workdir, capsys
):
    write_dataset(workdir / "parts")
    (workdir / "out").mkdir()
    (workdir / "out" / "previous.parquet").write_text("previous run")
    # a cluster of its own, whose scheduler fails a part at its first death (by default the 4th)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        kill_one_worker_mid_part(client)
        code = run(
            stage, model_file, "parts", "out", "--scheduler", cluster.scheduler_address, "--chunk-rows", "2"
        )
    assert code == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "a worker died on each of 1 tries" in errors[0], errors
    assert leftovers(workdir) == ["out"]
    assert [path.name for path in (workdir / "out").iterdir()] == ["previous.parquet"]


def mixed_types(workdir):
    write_dataset(workdir / "parts")
    frame = listing_file("b", 2, {}).assign(listing_id=[1, 2])
    frame.to_parquet(workdir / "parts" / "b.parquet", index=False)


@pytest.mark.parametrize(
    ("prepare", "arguments", "message"),
    [
        (
            lambda workdir: (workdir / "parts").mkdir(),
            (),
            "parts: empty data set (no .parquet or .csv files)",
        ),
        (
            lambda workdir: write_dataset(workdir / "parts", [("a.parquet", 0, {}), ("b.parquet", 0, {})]),
            (),
            "parts: empty data set (2 file(s), no rows)",
        ),
        (lambda workdir: None, (), "parts: no such file or directory"),
        (
            lambda workdir: write_dataset(workdir / "parts"),
            ("--rejects", "out"),
            "out: rejects must be another path on the same storage as out",
        ),
        (
            lambda workdir: write_dataset(workdir / "parts"),
            ("--drift", "parts/a.parquet"),  # it would overwrite an input file
            "parts/a.parquet: output must not be inside the input data set parts",
        ),
        (
            lambda workdir: write_dataset(workdir / "parts"),
            ("--drift", "out/drift.json"),
            "out/drift.json: --drift must not be inside the data set out or out.rejects",
        ),
        (
            mixed_types,
            (),
            "parts/b.parquet: other column types (listing_id int64 not large_string) than parts/a.parquet",
        ),
        (
            lambda workdir: [
                *write_dataset(workdir / "parts"),
                (workdir / "parts" / "b.parquet").write_text("x"),
            ],
            (),
            "parts/b.parquet: not a readable PARQUET file",
        ),
        (
            lambda workdir: write_dataset(workdir / "parts", [("a.parquet", 2, {0: {"area": None}})]),
            ("--max-reject-rate", "0.4"),
            "parts: 1 of 2 rows rejected (50.0% > --max-reject-rate 0.4)",
        ),
        (
            lambda workdir: write_dataset(workdir / "parts", [("a.parquet", 2, {}), ("b.csv", 2, {})]),
            (),
            "parts: holds both .csv and .parquet files",
        ),
    ],
)
def test_a_bad_data_set_is_one_line_exit_2_and_nothing_written(
    stage, model_file, client, workdir, capsys, prepare, arguments, message
):
    prepare(workdir)
    code = run(stage, model_file, "parts", "out", "--scheduler", client.scheduler.address, *arguments)
    errors = error_lines(capsys)
    assert code == 2
    assert len(errors) == 1 and message in errors[0], errors
    assert leftovers(workdir) == []


def stop_after_commits(monkeypatch, count: int) -> None:
    """Ctrl-C right after the ``count``-th data set is committed (0: before any, as the job ends)."""
    commits = []
    real_commit = distributed_module.commit

    def commit(*args):
        real_commit(*args)
        commits.append(args)
        if len(commits) == count:
            raise KeyboardInterrupt

    def check_reject_rate(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed_module, "commit", commit)
    if count == 0:
        monkeypatch.setattr(distributed_module, "check_reject_rate", check_reject_rate)


@pytest.mark.parametrize(
    ("commits", "line", "left"),
    [
        (0, "stopped; no partial output left", []),
        (1, "stopped after writing new/deeper/out.rejects (complete); nothing partial left", ["out.rejects"]),
        (
            2,
            "stopped after writing new/deeper/out.rejects, new/deeper/out (complete); nothing partial left",
            ["out", "out.rejects"],
        ),
    ],
)
def test_ctrl_c_in_any_phase_says_truly_what_it_leaves(
    stage, model_file, client, workdir, capsys, monkeypatch, commits, line, left
):
    """Folders made for the outputs go with a stopped job; data sets committed before the stop stay."""
    write_dataset(workdir / "parts")
    stop_after_commits(monkeypatch, commits)
    code = run(stage, model_file, "parts", "new/deeper/out", "--scheduler", client.scheduler.address)
    errors = error_lines(capsys)
    assert code == 130
    assert len(errors) == 1 and errors[0].endswith(f"predict interrupted by SIGINT: {line}"), errors
    if not left:
        assert leftovers(workdir) == []
    else:
        assert sorted(path.name for path in (workdir / "new" / "deeper").iterdir()) == left


def test_a_commit_stopped_between_its_renames_puts_the_old_data_set_back(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-0.parquet").write_text("previous run")
    (tmp_path / ".out.1234.tmp").mkdir()
    renames = []
    real_rename = os.rename

    def rename(source, target):
        renames.append(target)
        if len(renames) == 2:  # the new data set into place: stopped there
            raise KeyboardInterrupt
        real_rename(source, target)

    monkeypatch.setattr(distributed_module.os, "rename", rename)
    fs = distributed_module.fsspec.filesystem("file")
    with pytest.raises(KeyboardInterrupt):
        distributed_module.commit(fs, str(tmp_path / ".out.1234.tmp"), str(tmp_path / "out"))
    assert renames == [str(tmp_path / name) for name in (".out.1234.tmp.old", "out", "out")]
    assert (tmp_path / "out" / "part-0.parquet").read_text() == "previous run"
    assert sorted(path.name for path in tmp_path.iterdir()) == [".out.1234.tmp", "out"]


def test_an_output_data_set_given_as_a_symlink_stays_a_link_to_the_new_data_set(
    stage, model_file, client, workdir, capsys
):
    write_dataset(workdir / "parts")
    (workdir / "real").mkdir()
    (workdir / "real" / "previous.parquet").write_text("previous run")
    (workdir / "out").symlink_to("real")
    (workdir / "inside").symlink_to("parts")
    code = run(stage, model_file, "parts", "inside", "--scheduler", client.scheduler.address)
    errors = error_lines(capsys)
    assert code == 2 and len(errors) == 1 and "inside: output must not be inside the input" in errors[0]
    assert run(stage, model_file, "parts", "out", "--scheduler", client.scheduler.address) == 0
    assert (workdir / "out").is_symlink() and (workdir / "out").resolve() == workdir / "real"
    names = sorted(path.name for path in (workdir / "real").iterdir())
    assert "previous.parquet" not in names and "_SUCCESS" in names
    assert len(read_dataset(workdir / "out")) == 9
    assert sorted(path.name for path in workdir.iterdir() if path.name.startswith(".")) == []


def test_an_output_under_a_file_is_one_line_exit_2(stage, model_file, workdir, capsys):
    write_dataset(workdir / "parts")
    (workdir / "file").write_text("")
    code = run(stage, model_file, "parts", "new/out", "--rejects", "file/rejects", "--scheduler", "local:1")
    errors = error_lines(capsys)
    assert code == 2 and len(errors) == 1, errors
    assert "file/rejects: cannot write (" in errors[0] and "is a file, not a folder" in errors[0]
    assert leftovers(workdir) == ["file"]


def test_a_failed_job_removes_the_folders_it_made(stage, model_file, client, workdir, capsys):
    write_dataset(workdir / "parts", [("a.parquet", 2, {0: {"area": None}})])
    code = run(
        stage,
        model_file,
        "parts",
        "new/deeper/out",
        *("--rejects", "other/rejects", "--scheduler", client.scheduler.address, "--max-reject-rate", "0.4"),
    )
    errors = error_lines(capsys)
    assert code == 2 and len(errors) == 1 and "1 of 2 rows rejected" in errors[0], errors
    assert leftovers(workdir) == []


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("tcp://127.0.0.1:{port}", "cannot reach the Dask scheduler tcp://127.0.0.1:{port}"),
        ("local:0", "--scheduler local:0: local:N needs a positive number of workers N"),
        ("local:two", "--scheduler local:two: local:N needs a positive number of workers N"),
    ],
)
def test_a_bad_scheduler_is_one_line_exit_2(stage, model_file, workdir, capsys, scheduler, message):
    write_dataset(workdir / "parts")
    port = free_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = run(stage, model_file, "parts", "out", "--scheduler", scheduler.format(port=port))
    errors = error_lines(capsys)
    assert code == 2
    assert len(errors) == 1 and message.format(port=port) in errors[0], errors
    assert leftovers(workdir) == []


def test_without_a_scheduler_the_stage_streams_one_file_as_before(stage):
    for value in ("None", "null", ""):  # what a params null looks like when pasted into a command
        assert stage.scheduler(value) is None
    assert stage.default_rejects(Path("o.parquet")) == Path("o.parquet.rejects.csv")
    assert stage.rejects_dataset("s3://b/o.parquet") == "s3://b/o.rejects.parquet"


def test_the_streaming_stage_does_not_import_dask():
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('stage', 'stages/predict.py')\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('dask', 'distributed')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
