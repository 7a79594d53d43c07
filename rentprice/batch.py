"""Batch scoring of listing files: streamed chunks in, scored rows and rejects out, written atomically.

The stage ``stages/predict.py`` wires these together with logging and progress; the rules of what
can be scored live in ``rentprice.scoring``.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from rentprice.errors import DataError
from rentprice.io import atomic_path
from rentprice.schema import FEATURE_COLUMNS, SOURCE_COLUMNS, missing_columns
from rentprice.scoring import FIELD, HIGH, LOW, PREDICTION, REASON, ROW, score, validate_listings

STDIN = "-"
FORMATS = {".csv": "csv", ".parquet": "parquet"}
#: Rows per chunk: enough that per-call overhead is negligible, few enough that memory stays well
#: under 1 GiB (bench/predict.py measures both).
CHUNK_ROWS = 100_000


def file_format(path: str | Path, role: str) -> str:
    """``csv`` or ``parquet`` by extension (stdin is CSV); anything else is a one-line DataError."""
    if str(path) == STDIN:
        return "csv"
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise DataError(f"{path}: {role} must be a .csv or .parquet file")
    return kind


def read_chunks(source: str, chunk_rows: int) -> Iterator[pa.Table]:
    """Stream the input as tables of at most ``chunk_rows`` rows; at least one, maybe empty.

    CSV values are read as text exactly as written (no guessing of types or missing values), so
    pass-through columns stay untouched and validation sees what the file says.
    """
    kind = file_format(source, "input")
    label = "stdin" if source == STDIN else source
    try:
        if kind == "parquet":
            # pre_buffer would keep every row group's bytes read so far: memory growing with the file
            parquet = pq.ParquetFile(source, pre_buffer=False)
            empty = True
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                empty = False
                yield pa.Table.from_batches([batch])
            if empty:
                yield parquet.schema_arrow.empty_table()
        else:
            handle = sys.stdin.buffer if source == STDIN else source
            reader = pd.read_csv(
                handle, dtype=str, keep_default_na=False, index_col=False, chunksize=chunk_rows
            )
            while (chunk := next_csv_chunk(reader)) is not None:
                yield pa.Table.from_pandas(chunk, preserve_index=False)
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.ParserWarning, pa.ArrowException) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise DataError(f"{label}: not a readable {kind.upper()} file ({reason})") from None


def next_csv_chunk(reader) -> pd.DataFrame | None:
    """The next chunk of a pandas CSV reader, None at the end; a line with extra fields is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return next(reader, None)


def count_rows(source: str) -> int | None:
    """Rows in the input when known without reading it (Parquet metadata), for the progress bar."""
    return pq.ParquetFile(source).metadata.num_rows if file_format(source, "input") == "parquet" else None


@contextmanager
def table_writer(path: Path, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """Append tables to a CSV or Parquet file that appears, complete, only if the block succeeds."""
    kind = file_format(path, "output")
    with atomic_path(path) as temporary:
        writer = (
            pq.ParquetWriter(temporary, schema) if kind == "parquet" else pa_csv.CSVWriter(temporary, schema)
        )
        with writer:
            yield writer.write_table


def output_schemas(first: pa.Table, source: str) -> tuple[list[str], pa.Schema, pa.Schema]:
    """Pass-through columns, scored and rejects schemas.

    A missing listing column, one holding lists or records, or a column clashing with an output
    column is a DataError.
    """
    columns = first.column_names
    absent = missing_columns(columns, FEATURE_COLUMNS)
    if absent:
        raise DataError(f"{source}: missing column(s) {', '.join(absent)}")
    nested = [
        field.name
        for field in first.schema
        if field.name in FEATURE_COLUMNS and pa.types.is_nested(field.type)
    ]
    if nested:
        raise DataError(f"{source}: column(s) {', '.join(nested)} hold lists or records, not single values")
    clash = [name for name in columns if name in (ROW, FIELD, REASON, PREDICTION, LOW, HIGH)]
    if clash:
        raise DataError(f"{source}: column(s) {', '.join(clash)} clash with output columns; rename them")
    passthrough = [name for name in columns if name not in SOURCE_COLUMNS]
    kept = list(first.select(passthrough).schema.remove_metadata())
    prices = [pa.field(name, pa.float64()) for name in (PREDICTION, LOW, HIGH)]
    scored = pa.schema([pa.field(ROW, pa.int64()), *kept, *prices])
    rejects = pa.schema(
        [pa.field(ROW, pa.int64()), pa.field(FIELD, pa.string()), pa.field(REASON, pa.string()), *kept]
    )
    return passthrough, scored, rejects


def score_chunk(
    model: dict, table: pa.Table, first_row: int, passthrough: list[str], schemas: tuple[pa.Schema, pa.Schema]
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Scored rows and rejects of one chunk (row numbers from ``first_row``) and its recovered counts."""
    result = validate_listings(table.select(list(FEATURE_COLUMNS)).to_pandas(), model, first_row)
    rows = result.scorable.index.to_numpy(dtype="int64")
    passed = table.select(passthrough)
    kept = passed.take(rows - first_row)
    prices = score(model, result.scorable)
    scored = pa.Table.from_arrays(
        [
            pa.array(rows),
            *kept.columns,
            *(pa.array(prices[name].to_numpy(), pa.float64()) for name in (PREDICTION, LOW, HIGH)),
        ],
        schema=schemas[0],
    )
    rejects = result.rejects
    rejected_rows = rejects[ROW].to_numpy(dtype="int64")
    rejected = pa.Table.from_arrays(
        [
            pa.array(rejected_rows),
            pa.array(rejects[FIELD].to_numpy(dtype=object), pa.string()),
            pa.array(rejects[REASON].to_numpy(dtype=object), pa.string()),
            *passed.take(rejected_rows - first_row).columns,
        ],
        schema=schemas[1],
    )
    return scored, rejected, result.recovered


def use_jemalloc() -> None:
    """Allocate Arrow (and pandas string) memory with jemalloc where pyarrow has it.

    With pyarrow's default mimalloc pool the resident memory of a long batch creeps up chunk
    after chunk; with jemalloc it stays flat (measured with bench/predict.py).
    """
    with suppress(NotImplementedError):  # a pyarrow build without jemalloc (e.g. on Windows)
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def check_reject_rate(source: str, rows: int, rejected_fields: Counter, limit: float) -> None:
    """Fail when the share of rejected rows is above ``limit``: most likely the wrong file."""
    rejected = sum(rejected_fields.values())
    if rows and rejected / rows > limit:
        raise DataError(
            f"{source}: {rejected} of {rows} rows rejected ({rejected / rows:.1%} > --max-reject-rate "
            f"{limit:g}), most often {describe(rejected_fields)}; is this the right file?"
        )


def describe(counts: Counter) -> str:
    """``name=count`` pairs, most frequent first."""
    return ", ".join(f"{name}={count}" for name, count in counts.most_common() if count)
