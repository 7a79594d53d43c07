"""Reading CSV input (``rentprice.batch.read_chunks``): every row kept in its place, short rows rejected."""

import csv
import io
import os
import random
import subprocess
import sys

import pandas as pd
import pytest

from rentprice import batch as batch_module
from rentprice.batch import check_chunk, output_schemas, read_chunks, unread_rows
from rentprice.errors import DataError
from rentprice.model import load_model
from tests.code.scoring_fixtures import save_tiny_model
from tests.support import REPO_ROOT, listings

SHORT = "has {} of {} fields (a truncated or mis-quoted line?)"


def read_all(path, chunk_rows: int) -> tuple[list[list], list[list]]:
    """The values of every row read, and the unread rows numbered from the first data row."""
    rows, unread, first = [], [], 0
    for table in read_chunks(str(path), chunk_rows):
        assert table.num_rows <= chunk_rows
        rows += [list(row.values()) for row in table.to_pylist()]
        unread += unread_rows(table, first).values.tolist()
        first += table.num_rows
    return rows, unread


def write(tmp_path, text: str, name: str = "in.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 100])
def test_a_short_row_and_a_cut_off_last_line_are_unread_rows_in_their_places(tmp_path, chunk_rows):
    text = 'id,a,b,note\n0,1,2,x\n1,80\n2,3,4,"q, ""r""\ns"\n\n3,5,6,\n4,7'  # no line end after the last
    rows, unread = read_all(write(tmp_path, text), chunk_rows)
    assert rows == [
        ["0", "1", "2", "x"],
        ["1", "80", None, None],
        ["2", "3", "4", 'q, "r"\ns'],
        ["3", "5", "6", ""],
        ["4", "7", None, None],
    ]
    assert unread == [[1, "b", SHORT.format(2, 4)], [4, "b", SHORT.format(2, 4)]]


def test_a_short_row_at_every_place_and_every_chunk_size_keeps_the_row_numbers(tmp_path):
    for place in range(7):
        lines = [f"{row},{row * 10},{row * 100}" for row in range(7)]
        lines[place] = f"{place}"
        path = write(tmp_path, "id,a,b\n" + "\n".join(lines) + "\n")
        for chunk_rows in range(1, 9):
            rows, unread = read_all(path, chunk_rows)
            assert [row[0] for row in rows] == [str(row) for row in range(7)], (place, chunk_rows)
            assert unread == [[place, "a", SHORT.format(1, 3)]], (place, chunk_rows)


def random_csv(seed: int, rows: int) -> tuple[str, list[list[str]]]:
    """A CSV body of ``rows`` rows of 6 fields or fewer (quoted commas, quotes, line breaks, blank lines)."""
    rng = random.Random(seed)
    values = ["plain", "a, b", 'say "hi"', "two\nlines", "", "crlf\r\ninside", "  spaced  ", "€ 1.200"]
    records = []
    for _ in range(rows):
        fields = 6 if rng.random() > 0.02 else rng.randint(1, 5)
        records.append([rng.choice(values) for _ in range(fields)])
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"]))
    for record in records:
        writer.writerow(record)
        if rng.random() < 0.01:
            out.write("\n")  # a blank line: not a row
    return out.getvalue(), records


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_across_read_blocks_are_numbered_as_a_csv_parser_numbers_them(tmp_path, seed):
    body, records = random_csv(seed, 60_000)  # several MiB: several of pyarrow's read blocks
    path = write(tmp_path, "\ufeffc0,c1,c2,c3,c4,c5\n" + body)
    rows, unread = read_all(path, 7_000)
    assert rows == [record + [None] * (6 - len(record)) for record in records]
    short = [(number, len(record)) for number, record in enumerate(records) if len(record) < 6]
    assert len(short) > 100
    assert unread == [[number, f"c{fields}", SHORT.format(fields, 6)] for number, fields in short]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('id,a\n0,"x\ny"\n1,2,3\n', "in.csv: not a readable CSV file (row 1 has 3 fields, the header 2"),
        ("id,a\n0,1\n1,2\n2,3,4", "in.csv: not a readable CSV file (row 2 has 3 fields, the header 2"),
        ('id,a\n0,1\n1,"2\n2,3\n3,4\n', "in.csv: not a readable CSV file (row 1 opens a quoted value"),
        ('id,a\n0,1\n1,"cut off', "in.csv: not a readable CSV file (row 1 opens a quoted value"),
    ],
)
def test_a_row_with_more_fields_or_a_quote_never_closed_is_a_one_line_error_naming_the_row(
    tmp_path, monkeypatch, text, message
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(DataError) as error:
        read_all("in.csv", 2)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_short_row_is_rejected_with_its_reason_and_the_fields_it_has(tmp_path):
    model = load_model(save_tiny_model(tmp_path / "model.joblib"))
    frame = listings({}, {}, {})
    frame.insert(0, "id", ["a", "b", "c"])
    text = frame.to_csv(index=False, lineterminator="\n").splitlines()
    text[2] = ",".join(text[2].split(",")[:5])  # id, address, area, construction year, rooms
    path = write(tmp_path, "\n".join(text) + "\n")
    table = next(read_chunks(str(path), 100))
    passthrough, _, rejects_schema = output_schemas(table, "in.csv")
    checked = check_chunk(model, table, 10, passthrough, rejects_schema)
    assert checked.scorable.index.tolist() == [10, 12]
    assert checked.rejected.to_pylist() == [
        {
            "row": 11,
            "field": "bedrooms",
            "reason": SHORT.format(5, 18),
            "id": "b",
            "address": frame["address"][1],
        }
    ]
    assert checked.unknown == {"energy": 0, "neighborhood": 0, "construction_year": 0, "zip": 0}


@pytest.mark.slow
@pytest.mark.parametrize("from_stdin", [False, True])
def test_the_stage_puts_every_csv_row_in_exactly_one_of_scored_and_rejects(tmp_path, from_stdin):
    """``stages/predict.py`` in a child process: short rows rejected, the rest scored, rows numbered."""
    model = save_tiny_model(tmp_path / "model.joblib")
    frame = listings(*({"area": 40.0 + i} for i in range(9)))
    frame.insert(0, "id", [str(i) for i in range(9)])
    frame["note"] = ["", "a, b", "two\nlines", "", "", 'say "hi"', "", "", ""]
    lines = frame.to_csv(index=False, lineterminator="\n").split("\n")  # "two\nlines" spans two lines
    lines[5] = "3,1071 HN Amsterdam,80,1930,3"  # row 3: 5 of the 19 fields
    lines[-2:] = ["8,1071 HN Amsterdam,4"]  # row 8 cut off in its area, no line end
    text = "\n".join(lines)
    command = [sys.executable, str(REPO_ROOT / "stages" / "predict.py"), "--model", str(model)]
    command += ["--input", "-" if from_stdin else "in.csv", "--output", "out.csv"]
    command += ["--chunk-rows", "3", "--lock", "none.lock"]
    if not from_stdin:
        write(tmp_path, text)
    result = subprocess.run(
        command,
        cwd=tmp_path,
        input=text.encode() if from_stdin else None,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()
    read = {"dtype": str, "keep_default_na": False}
    scored = pd.read_csv(tmp_path / "out.csv", **read)
    rejects = pd.read_csv(tmp_path / "out.csv.rejects.csv", **read)
    assert sorted([*scored["row"], *rejects["row"]], key=int) == [str(row) for row in range(9)]
    assert (scored["row"] == scored["id"]).all() and (rejects["row"] == rejects["id"]).all()
    assert scored["note"].tolist() == ["", "a, b", "two\nlines", "", 'say "hi"', "", ""]
    assert rejects[["row", "field", "reason"]].values.tolist() == [
        ["3", "bedrooms", SHORT.format(5, 19)],
        ["8", "construction_year", SHORT.format(3, 19)],
    ]


def test_short_rows_without_end_fail_the_run_before_they_fill_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_module, "HELD_SHORT_BYTES", 1000)
    path = write(tmp_path, "id,a,b\n" + "".join(f"{row},{row}\n" for row in range(2000)) + "0,1,2\n")
    with pytest.raises(
        DataError, match=r"in.csv: not a readable CSV file \(the \d+ rows from row 0 on have fewer"
    ):
        read_all(path, 100)
    monkeypatch.setattr(batch_module, "HELD_SHORT_BYTES", 1 << 20)
    rows, unread = read_all(path, 100)
    assert len(rows) == 2001 and [entry[0] for entry in unread] == list(range(2000))
