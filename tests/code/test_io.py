import os
import re
import sqlite3
import stat

import pytest

from rentprice import batch as batch_module
from rentprice import io as io_module
from rentprice.batch import output_files
from rentprice.errors import DataError
from rentprice.io import (
    atomic_path,
    file_md5,
    final_path,
    made_folders,
    new_temporary,
    read_parquet,
    read_sql_chunks,
    read_sql_table,
    remove_own_temporaries,
    write_json,
)
from rentprice.logs import Interrupted
from tests.support import listings


@pytest.fixture
def tiny_db(tmp_path):
    path = tmp_path / "tiny.sqlite"
    with sqlite3.connect(path) as connection:
        listings({"rent": 3000.0}, {"rent": 1000.0}).to_sql("rent_apartments", connection, index=False)
    return path


def test_read_sql_table_orders_rows_deterministically(tiny_db):
    frame = read_sql_table(f"sqlite:///{tiny_db}", "rent_apartments", ["rent", "area"])
    assert list(frame.columns) == ["rent", "area"]
    assert frame["rent"].tolist() == [1000.0, 3000.0]


def test_read_sql_chunks_streams_at_most_chunk_rows_in_order(tiny_db):
    chunks = list(read_sql_chunks(f"sqlite:///{tiny_db}", "rent_apartments", ["rent"], chunk_rows=1))
    assert [chunk["rent"].tolist() for chunk in chunks] == [[1000.0], [3000.0]]


def test_read_sql_table_checks_declared_types(tiny_db):
    with pytest.raises(DataError, match=r"column rent is REAL, expected text; column area is REAL, exp"):
        read_sql_table(
            f"sqlite:///{tiny_db}", "rent_apartments", ["rent", "area"], {"rent": "text", "area": "text"}
        )


def test_a_schema_qualified_table_is_read(tiny_db):
    url = f"sqlite:///{tiny_db}"
    assert read_sql_table(url, "main.rent_apartments", ["rent"]).equals(
        read_sql_table(url, "rent_apartments", ["rent"])
    )


def test_read_sql_table_missing_table(tiny_db):
    with pytest.raises(DataError, match=r"tiny.sqlite: table 'flats' not found$"):
        read_sql_table(f"sqlite:///{tiny_db}", "flats", ["rent"])


def test_read_sql_table_missing_column(tiny_db):
    with pytest.raises(DataError, match=r"table 'rent_apartments' is missing column\(s\) balconies$"):
        read_sql_table(f"sqlite:///{tiny_db}", "rent_apartments", ["rent", "balconies"])


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://host/db"])
def test_read_sql_table_bad_url(url):
    with pytest.raises(DataError, match="not a usable database URL"):
        read_sql_table(url, "rent_apartments", ["rent"])


@pytest.mark.parametrize("name", ["missing-dir/x.sqlite", "x.sqlite"])
def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path, name):
    with pytest.raises(DataError, match=f"database file {tmp_path / name} not found"):
        read_sql_table(f"sqlite:///{tmp_path / name}", "rent_apartments", ["rent"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+pg8000://u@127.0.0.1:1/db?password=QueryPw777", "u@127.0.0.1:1/db?password=***"),
        (
            "postgresql+pg8000://u:Pw1@127.0.0.1:1/db?sslpassword=Key777",
            "u:***@127.0.0.1:1/db?sslpassword=***",
        ),
        ("postgresql+pg8000://u:Sec@ret77@127.0.0.1:1/db", "***@127.0.0.1:1/db: more than one '@'"),
        (
            "postgresql+pg8000://u:Sec@ret77@127.0.0.1:1/db?password=QueryPw777",
            "***@127.0.0.1:1/db?password=***:",
        ),
        ("postgresql+pg8000://u:Pw1/ret77@Sec@127.0.0.1:1/db", "***@127.0.0.1:1/db: more than one '@'"),
    ],
)
def test_every_form_of_password_is_masked(url, shown):
    with pytest.raises(DataError) as failure:
        read_sql_table(url, "t", ["rent"])
    message = str(failure.value)
    assert shown in message
    assert not {"QueryPw777", "Pw1", "Key777", "Sec", "ret77"} & set(re.split(r"[^\w]+", message))


def test_read_sql_table_missing_driver_is_named_and_password_hidden():
    with pytest.raises(DataError, match="driver 'pg8000' is not installed") as failure:
        read_sql_table("postgresql+pg8000://user:secret@127.0.0.1:1/db", "t", ["rent"])
    assert "secret" not in str(failure.value) and "***" in str(failure.value)


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("partial")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_json({"b": 1, "a": 2}, target)
    assert target.read_text() == '{\n  "b": 1,\n  "a": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("stop", [RuntimeError("failed"), KeyboardInterrupt(), Interrupted(15)])
def test_a_failed_write_removes_the_folders_it_made_and_only_those(tmp_path, stop):
    (tmp_path / "kept").mkdir()
    targets = [tmp_path / "new" / "deeper" / "out.csv", tmp_path / "kept" / "made" / "r.csv"]
    with pytest.raises(type(stop)), made_folders(*targets) as created:
        assert created == [tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "kept" / "made"]
        raise stop
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["kept"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), Interrupted(15)])
def test_an_interrupt_after_a_temporary_is_made_and_before_it_is_noted_leaves_nothing(
    tmp_path, monkeypatch, stop
):
    """The SIGTERM lands as new_temporary returns: the file exists, the caller never held its path."""
    made = new_temporary

    def made_then_stopped(path):
        made(path)
        raise stop

    monkeypatch.setattr(io_module, "new_temporary", made_then_stopped)
    monkeypatch.setattr(batch_module, "new_temporary", made_then_stopped)
    with pytest.raises(type(stop)):
        write_json({}, tmp_path / "new" / "out.json")
    with pytest.raises(type(stop)), output_files(tmp_path / "a" / "out.csv", tmp_path / "b" / "r.csv"):
        pass
    assert list(tmp_path.rglob("*")) == []
    monkeypatch.undo()
    write_json({}, tmp_path / "out.json")  # another write's temporaries, and only ours, are removed
    (tmp_path / f".out.json.{os.getpid()}.0123abcd.tmp.kept").write_text("")
    remove_own_temporaries(tmp_path / "out.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f".out.json.{os.getpid()}.0123abcd.tmp.kept",
        "out.json",
    ]


def test_a_made_folder_that_is_no_longer_empty_stays(tmp_path):
    with pytest.raises(RuntimeError), made_folders(tmp_path / "new" / "out.csv"):
        (tmp_path / "new" / "someone else's").write_text("x")
        raise RuntimeError
    assert [path.name for path in (tmp_path / "new").iterdir()] == ["someone else's"]


def test_made_folders_stay_when_the_write_succeeds(tmp_path):
    write_json({"a": 1}, tmp_path / "new" / "deeper" / "out.json")
    assert (tmp_path / "new" / "deeper" / "out.json").is_file()


def test_a_file_where_a_folder_should_be_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "sub" / "out.json"
    with pytest.raises(NotADirectoryError, match="is a file, not a folder") as failure:
        write_json({}, target)
    assert failure.value.filename == str(target)
    assert [path.name for path in tmp_path.iterdir()] == ["file"]


def test_an_atomic_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "summary.json"
    target.write_text("stale")
    link = tmp_path / "summary.json"
    link.symlink_to(target)
    write_json({"a": 1}, link)
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["real", "summary.json", "summary.json"]


def test_a_link_to_a_read_only_file_is_replaced_not_written_through(tmp_path):
    """With DVC's cache.type symlink an output links to its read-only cache file: never change that."""
    cache = tmp_path / "cache" / "ab" / "cdef"
    cache.parent.mkdir(parents=True)
    cache.write_text("cached")
    cache.chmod(0o444)
    link = tmp_path / "summary.json"
    link.symlink_to(cache)
    write_json({"a": 1}, link)
    assert cache.read_text() == "cached"
    assert not link.is_symlink() and link.read_text() == '{\n  "a": 1\n}\n'


def test_a_dangling_symlink_gets_its_target_only_in_a_folder_that_exists(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to("made.json")
    write_json({}, link)
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "{}\n"
    into_nowhere = tmp_path / "other.json"
    into_nowhere.symlink_to(tmp_path / "nowhere" / "other.json")
    with pytest.raises(FileNotFoundError, match="whose folder does not exist") as failure:
        write_json({}, into_nowhere)
    assert failure.value.filename == str(into_nowhere)
    assert not (tmp_path / "nowhere").exists()


def test_the_final_path_of_a_chain_of_links_is_the_last_target(tmp_path):
    (tmp_path / "c").write_text("")
    (tmp_path / "b").symlink_to("c")
    (tmp_path / "a").symlink_to("b")
    assert final_path(tmp_path / "a") == tmp_path / "c"
    assert final_path(tmp_path / "c") == tmp_path / "c"


def test_read_parquet_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"missing.parquet: file not found"):
        read_parquet(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DataError, match=r"junk.parquet: not a readable Parquet file"):
        read_parquet(junk)


def test_file_md5(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert file_md5(path) == "900150983cd24fb0d6963f7d28e17f72"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        write_json({}, tmp_path / "out.json")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o644
