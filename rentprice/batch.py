"""Batch scoring of listing files: streamed chunks in, scored rows and rejects out, written as a pair.

``score_file`` is the whole job (``stages/predict.py`` only parses arguments and logs); the rules of
what can be scored live in ``rentprice.scoring``, the listing contract in ``rentprice.schema``.
Every input row ends in exactly one of the two outputs, or the run fails with one line
(a ``RentpriceError``) and neither output changes.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
import stat
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from pathlib import Path
from time import perf_counter
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from loguru import logger
from tqdm import tqdm

from rentprice.drift import DEFAULT_THRESHOLDS, DriftMonitor
from rentprice.errors import DataError
from rentprice.io import (
    atomic_path,
    final_path,
    json_text,
    made_folders,
    new_temporary,
    remove_own_temporaries,
)
from rentprice.logs import record_written, stop_if_requested
from rentprice.schema import FEATURE_COLUMNS, FIELDS, NUMBER, TARGET, canonical_names, missing_columns
from rentprice.scoring import (
    DVC_LOCK,
    FIELD,
    HIGH,
    LOW,
    PREDICTION,
    REASON,
    ROW,
    ValidationResult,
    load_scoring_model,
    score,
    validate_listings,
)
from rentprice.scoring_process import Scorer, scorer

STDIN = "-"
FORMATS = {".csv": "csv", ".parquet": "parquet"}
#: Rows per chunk: enough that per-call overhead is negligible, few enough that memory stays well
#: under 1 GiB (bench/predict.py measures both).
CHUNK_ROWS = 100_000
#: The share of rejected rows above which a run fails and writes nothing, unless told otherwise.
MAX_REJECT_RATE = 0.5
#: Seconds between progress lines in the log when no terminal shows a progress bar.
PROGRESS_SECONDS = 30
#: The default rejects file of output ``x.csv``: ``x.csv.rejects.csv``, which no other output's
#: default can be (``x.parquet`` gets ``x.parquet.rejects.csv``).
REJECTS_SUFFIX = ".rejects.csv"
SEPARATORS_HINTED = (";", "\t", "|")
#: The value of the line the CSV reader appends to every input (``CsvRows``); no listing holds it.
CSV_END = "rentprice:end-of-input"
#: Schema metadata of a chunk listing its rows the reader could not read (a CSV row with fewer
#: fields than the header): JSON ``[[position in the chunk, first missing field, reason], ...]``.
#: ``validate_chunk`` rejects them for that reason.
UNREAD_ROWS = b"rentprice.unread_rows"
#: The type of every CSV column: text as written (large_string, as pandas' text columns convert to,
#: so outputs keep the types they had when pandas read the CSV).
TEXT = pa.large_string()
#: Bytes of CSV rows with fewer fields than the header held while no row of the header's length
#: comes (pyarrow hands over only rows that fit): beyond it the run fails rather than fill memory.
HELD_SHORT_BYTES = 32 << 20


@dataclass
class Summary:
    """What scoring did: rows read, scored and rejected (per field), values treated as unknown.

    ``drift``: the bin counts of the scored listings against the model's training profile. The
    streaming loop ``count``s each chunk; a data set scored on a cluster ``merge``s each part's.
    """

    drift: DriftMonitor
    rows: int = 0
    scored: int = 0
    rejected_by_field: Counter = field(default_factory=Counter)
    treated_as_unknown: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        """Rows written to the rejects file."""
        return self.rows - self.scored

    def count(self, rows: int, scored: pa.Table, rejects: pa.Table, unknown: Mapping[str, int]) -> None:
        """Add one chunk of ``rows`` rows: its ``score_chunk`` results."""
        self.rows += rows
        self.scored += scored.num_rows
        self.rejected_by_field.update(rejects.column(FIELD).to_pylist())
        self.treated_as_unknown.update(unknown)

    def merge(self, part: Summary) -> None:
        """Add the counts of another part of the same input (its drift counts included)."""
        self.rows += part.rows
        self.scored += part.scored
        self.rejected_by_field.update(part.rejected_by_field)
        self.treated_as_unknown.update(part.treated_as_unknown)
        self.drift.merge(part.drift)


def default_rejects(output: Path) -> Path:
    """The rejects file of ``output`` when none is given: ``<output name>.rejects.csv`` beside it."""
    return output.with_name(output.name + REJECTS_SUFFIX)


def file_format(path: str | Path, role: str) -> str:
    """``csv`` or ``parquet`` by extension (stdin is CSV); anything else is a one-line DataError.

    ``-`` is stdin for the input only: an output named ``-`` would be a file of that name, not stdout.
    """
    if str(path) == STDIN and role == "input":
        return "csv"
    if str(path) == STDIN:
        raise DataError(f"{path}: {role} cannot be stdout (- reads stdin for --input only); give a file path")
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise DataError(f"{path}: {role} must be a .csv or .parquet file")
    return kind


def check_paths(source: str, output: Path, rejects: Path, drift: Path | None = None) -> None:
    """Refuse an output, rejects or drift file that is the input or another of them (links too).

    Checked before anything is read, so a collision never overwrites the input or loses rows; with
    ``--input -`` the file stdin is redirected from counts as the input.
    """
    named = [("--output", Path(output)), ("--rejects", Path(rejects))]
    if drift is not None:
        named.append(("--drift", Path(drift)))
    if source != STDIN:
        named.insert(0, ("--input", Path(source)))
    for position, (role, path) in enumerate(named):
        for other_role, other in named[position + 1 :]:
            if _same_file(path, other):
                raise DataError(f"{other}: {other_role} is the same file as {role} {path}; give another path")
    if source == STDIN and (stdin := _stdin_file()) is not None:
        for role, path in named:
            with suppress(OSError):
                if os.path.samestat(stdin, os.stat(path)):
                    raise DataError(f"{path}: {role} is the file stdin reads (--input -); give another path")


def _stdin_file() -> os.stat_result | None:
    """The status of the file stdin is redirected from (``< in.csv``); None for a pipe or terminal."""
    try:
        status = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return status if stat.S_ISREG(status.st_mode) else None


def _same_file(first: Path, second: Path) -> bool:
    if first.resolve() == second.resolve():
        return True
    with suppress(OSError):
        return os.path.samefile(first, second)
    return False


def read_chunks(source: str, chunk_rows: int) -> Iterator[pa.Table]:
    """Stream the input as tables of at most ``chunk_rows`` rows; at least one, maybe empty.

    Column names are made canonical (``schema.canonical_names``: spacing, case, aliases); a
    repeated name is a DataError. CSV values are read as text exactly as written (no guessing of
    types or missing values), so pass-through columns stay untouched and validation sees what the
    file says.
    """
    kind = file_format(source, "input")
    label = "stdin" if source == STDIN else source
    try:
        if kind == "parquet":
            yield from _parquet_chunks(source, label, chunk_rows)
        else:
            with ExitStack() as stack:
                handle = sys.stdin.buffer if source == STDIN else stack.enter_context(open(source, "rb"))
                yield from _csv_chunks(handle, label, chunk_rows)
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{label}: is a folder, not a file") from None
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.ParserWarning, pa.ArrowException) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise DataError(f"{label}: not a readable {kind.upper()} file ({reason})") from None


def _parquet_chunks(source: str, label: str, chunk_rows: int) -> Iterator[pa.Table]:
    # pre_buffer would keep every row group's bytes read so far: memory growing with the file
    parquet = pq.ParquetFile(source, pre_buffer=False)
    names = canonical_names(parquet.schema_arrow.names, label)
    empty = True
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        empty = False
        yield pa.Table.from_batches([batch]).rename_columns(names)
    if empty:
        yield parquet.schema_arrow.empty_table().rename_columns(names)


def _csv_chunks(handle: IO[bytes], label: str, chunk_rows: int) -> Iterator[pa.Table]:
    header_line = handle.readline().decode("utf-8-sig")
    try:
        header = next(csv.reader([header_line]), [])
    except csv.Error:  # a line break inside the line: lines that end in a lone carriage return
        raise DataError(
            f"{label}: not a readable CSV file (its lines end in a lone carriage return, as old Mac "
            "exports do): save it with ordinary line ends"
        ) from None
    if not header:
        raise DataError(f"{label}: not a readable CSV file (empty: no header line)")
    names = canonical_names(header, label)
    if len(header) == 1 and (separator := next((s for s in SEPARATORS_HINTED if s in header[0]), None)):
        raise DataError(
            f"{label}: the header holds {separator!r} but no comma; the file seems {separator!r}-separated "
            "(a spreadsheet's export?): save it as comma-separated CSV"
        )
    rows = CsvRows(names, label)
    empty = pa.schema([pa.field(name, TEXT) for name in names]).empty_table()
    try:
        batches = pa_csv.open_csv(
            _Ended(handle, f"\n{rows.end_line}\n".encode()),
            # serial: pyarrow numbers the rows it cannot read only when it parses one block at a time
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=rows.invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, TEXT), strings_can_be_null=False
            ),
        )
        yield from _rechunked(rows.pieces(batches), chunk_rows, empty)
    except pa.ArrowInvalid:
        rows.check_held()
        raise


class _Ended:
    """A binary stream that reads ``handle`` to its end, then ``ending`` (a file object for pyarrow).

    ``read(size)`` returns ``size`` bytes unless the ending is used up: a shorter read means the end.
    """

    def __init__(self, handle: IO[bytes], ending: bytes) -> None:
        self.handle, self.ending, self.closed = handle, ending, False

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        if size < 0 or len(data) < size:
            more = self.ending if size < 0 else self.ending[: size - len(data)]
            self.ending = self.ending[len(more) :]
            data += more
        return data


class CsvRows:
    """Every data row of a CSV body in file order, the rows that do not fit the header included.

    pyarrow's CSV reader leaves a row out of its batches when its field count differs from the
    header's and reports it to ``invalid`` with its number. ``pieces`` puts each row with fewer fields
    (a truncated or mis-quoted line) back in its place, to be rejected (``UNREAD_ROWS``), so the rows
    after it keep their numbers. A row with more fields is a DataError: which field is which would
    be a guess. The reader appends ``end_line`` to the input; that it reads it as a last row of its
    own proves the input did not end inside a quoted value (an opening quote never closed, which
    would have read the rest of the file as one value).
    """

    def __init__(self, names: list[str], label: str) -> None:
        self.names, self.label = names, label
        self.end_line = ",".join([CSV_END] * (len(names) + 1))  # one field too many: reported to `invalid`
        self.short: list[tuple[int, str]] = []  # (row, text), a heap
        self.held = 0  # characters of text in `short`
        self.long: list[tuple[int, int, str]] = []  # (row, fields, text)

    def invalid(self, row: pa_csv.InvalidRow) -> str:
        """The ``invalid_row_handler`` of pyarrow's reader: record the row (0-based data row), skip it."""
        if row.number is None:  # not known where it is (a threaded read): fail with pyarrow's message
            return "error"
        if row.actual_columns < row.expected_columns:
            if self.held > HELD_SHORT_BYTES:  # stop the read (`check_held` says why)
                return "error"
            heapq.heappush(self.short, (row.number - 1, row.text))
            self.held += len(row.text)
        else:
            self.long.append((row.number - 1, row.actual_columns, row.text))
        return "skip"

    def pieces(self, batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.Table, list[Unread]]]:
        """The rows in order: runs of rows read, and runs of short rows with why each is unread."""
        row = 0  # the data row the next piece starts at
        for batch in batches:
            self._check_long()
            start = 0
            while True:
                if self.short and self.short[0][0] == row:
                    table, unread = self._short_rows(row)
                    yield table, unread
                    row += table.num_rows
                    continue
                if start == batch.num_rows:
                    break
                size = batch.num_rows - start
                if self.short:
                    size = min(size, self.short[0][0] - row)
                yield pa.Table.from_batches([batch.slice(start, size)]), []
                start, row = start + size, row + size
        if self.short and self.short[0][0] == row:  # short rows at the end: a file cut off
            table, unread = self._short_rows(row)
            yield table, unread
            row += table.num_rows
        self._check_long()
        self._check_end(row)

    def _short_rows(self, row: int) -> tuple[pa.Table, list[Unread]]:
        """The short rows known from ``row`` on, without a gap, as one table: their fields, then nulls."""
        columns: list[list[str | None]] = [[] for _ in self.names]
        unread: list[Unread] = []
        while self.short and self.short[0][0] == row + len(unread):
            number, text = heapq.heappop(self.short)
            self.held -= len(text)
            try:
                given = next(csv.reader(io.StringIO(text, newline="")), [])[: len(self.names) - 1]
            except csv.Error as error:  # e.g. a field over csv.field_size_limit(): many lines in one
                raise DataError(f"{self.label}: not a readable CSV file (row {number}: {error})") from None
            for column, value in zip_longest(columns, given):
                column.append(value)
            reason = f"has {len(given)} of {len(self.names)} fields (a truncated or mis-quoted line?)"
            unread.append(Unread(number, self.names[len(given)], reason))
        return pa.table([pa.array(column, TEXT) for column in columns], names=self.names), unread

    def check_held(self) -> None:
        """A DataError when ``invalid`` stopped the read: too many short rows and none that fits."""
        if self.held > HELD_SHORT_BYTES:
            raise DataError(
                f"{self.label}: not a readable CSV file (the {len(self.short):,} rows from row "
                f"{self.short[0][0]} on have fewer fields than the header's {len(self.names)}: does the "
                "header name columns the rows have no value for?)"
            )

    def _check_long(self) -> None:
        """A DataError naming the first row with more fields than the header, the end line aside."""
        for number, fields, text in self.long:
            if text != self.end_line:
                raise DataError(
                    f"{self.label}: not a readable CSV file (row {number} has {fields} fields, the header "
                    f"{len(self.names)}: a stray comma, or a quote not closed?)"
                )

    def _check_end(self, rows: int) -> None:
        """A DataError unless the end line was read as the row after the ``rows`` data rows."""
        if self.long != [(rows, len(self.names) + 1, self.end_line)]:
            raise DataError(
                f"{self.label}: not a readable CSV file (row {rows - 1} opens a quoted value that is not "
                "closed before the end of the file: a stray quote, or the file cut off?)"
            )
        if self.short:  # pyarrow numbered a row out of order: its place is not known
            raise DataError(f"{self.label}: not a readable CSV file (row {self.short[0][0]} out of order)")


@dataclass(frozen=True)
class Unread:
    """A row the reader could not split into the header's fields: its number, first field missing, why."""

    row: int
    field: str
    reason: str


def _rechunked(
    pieces: Iterable[tuple[pa.Table, list[Unread]]], rows: int, empty: pa.Table
) -> Iterator[pa.Table]:
    """``pieces`` (tables, their unread rows) as tables of ``rows`` rows; ``empty`` when there are none.

    The last table may be shorter. Each table lists its unread rows in its ``UNREAD_ROWS`` metadata.
    """
    held: list[pa.Table] = []
    unread: deque[Unread] = deque()
    first, count = 0, 0  # the data row the held rows start at, and how many there are
    for table, reasons in pieces:
        unread.extend(reasons)
        held.append(table)
        count += table.num_rows
        while count >= rows:
            whole = pa.concat_tables(held)
            yield _with_unread(whole.slice(0, rows), _unread_before(unread, first, first + rows))
            held, first, count = [whole.slice(rows)], first + rows, count - rows
    if count or not first:
        yield _with_unread(
            pa.concat_tables(held) if count else empty, _unread_before(unread, first, first + count)
        )


def _unread_before(unread: deque[Unread], first: int, end: int) -> list[tuple[int, str, str]]:
    """Take the unread rows before row ``end`` off ``unread``, numbered from row ``first``."""
    taken = []
    while unread and unread[0].row < end:
        entry = unread.popleft()
        taken.append((entry.row - first, entry.field, entry.reason))
    return taken


def _with_unread(table: pa.Table, unread: list[tuple[int, str, str]]) -> pa.Table:
    return table.replace_schema_metadata({UNREAD_ROWS: json.dumps(unread)}) if unread else table


def unread_rows(table: pa.Table, first_row: int = 0) -> pd.DataFrame:
    """The rows of a chunk its reader could not read (``UNREAD_ROWS``) as ROW, FIELD, REASON.

    ROW counts from ``first_row``, as ``validate_listings`` numbers rows.
    """
    unread = json.loads((table.schema.metadata or {}).get(UNREAD_ROWS, b"[]"))
    frame = pd.DataFrame(unread, columns=[ROW, FIELD, REASON]).astype(
        {ROW: "int64", FIELD: "str", REASON: "str"}
    )
    return frame.assign(**{ROW: frame[ROW] + first_row})


def validate_chunk(model: dict, table: pa.Table, first_row: int) -> ValidationResult:
    """``validate_listings`` of one chunk, its unread rows (``unread_rows``) rejected as the reader said."""
    unread = unread_rows(table, first_row)
    if unread.empty:
        return validate_listings(listing_frame(table, first_row), model, first_row)
    rows = np.setdiff1d(np.arange(first_row, first_row + table.num_rows), unread[ROW])
    result = validate_listings(listing_frame(table.take(rows - first_row), first_row), model)
    rejects = pd.concat([result.rejects.assign(**{ROW: rows[result.rejects[ROW]]}), unread])
    return ValidationResult(
        result.scorable.set_axis(rows[result.scorable.index]),
        rejects.sort_values(ROW, kind="stable", ignore_index=True),
        result.treated_as_unknown,
    )


def count_rows(source: str) -> int | None:
    """Rows in the input when known without reading it (Parquet metadata), for the progress bar.

    None when unknown, also for a file that cannot be read (``read_chunks`` reports that).
    """
    if source == STDIN or not source.lower().endswith(".parquet"):
        return None
    try:
        return pq.ParquetFile(source).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def output_schemas(
    first: pa.Table, source: str, outputs: tuple[Path, ...] = ()
) -> tuple[list[str], pa.Schema, pa.Schema]:
    """Pass-through columns, scored and rejects schemas (``outputs``: the files they go to).

    Every input column the model does not read is passed through, except the rent (the target):
    the output's rent is the predicted one. A missing listing column, one
    holding lists or records, a column clashing with an output column, or a pass-through column
    of a type an output's format cannot hold (a list into CSV) is a DataError.
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
    passthrough = [name for name in columns if name not in FEATURE_COLUMNS and name != TARGET]
    kept = list(first.select(passthrough).schema.remove_metadata())
    prices = [pa.field(name, pa.float64()) for name in (PREDICTION, LOW, HIGH)]
    scored = pa.schema([pa.field(ROW, pa.int64()), *kept, *prices])
    rejects = pa.schema(
        [pa.field(ROW, pa.int64()), pa.field(FIELD, pa.string()), pa.field(REASON, pa.string()), *kept]
    )
    for path in outputs:
        if file_format(path, "output") == "csv":
            for column in kept:
                _check_csv_type(source, path, column)
    return passthrough, scored, rejects


def _check_csv_type(source: str, path: Path, column: pa.Field) -> None:
    # bytes Arrow would write as they are: a traceback mid-run at the first that is not UTF-8
    if _is_bytes(column.type) or not _csv_writes(column.type):
        raise DataError(
            f"{source}: column {column.name!r} holds {column.type}, which CSV cannot hold, so it cannot "
            f"be passed through to {path}; write a .parquet file or drop the column"
        )


def _csv_writes(kind: pa.DataType) -> bool:
    """Whether Arrow's CSV writer takes a column of type ``kind``."""
    try:
        pa_csv.CSVWriter(io.BytesIO(), pa.schema([pa.field("column", kind)]))
    except pa.ArrowException:
        return False
    return True


def listing_frame(table: pa.Table, first_row: int = 0) -> pd.DataFrame:
    """The feature columns of a chunk as pandas objects, storage types mapped to the same information.

    Dictionary columns are decoded, decimals become floats, a date or timestamp in a year field
    (construction year) becomes its year; a date in another number field becomes its text (so
    validation names it as not a number). Bytes
    (Parquet text without its UTF-8 annotation) are their text; bytes that are not UTF-8 are a
    DataError naming the row (``first_row`` plus the position) and field. Booleans stay booleans:
    yes/no fields read them as yes/no, number fields reject them.
    """
    columns = {}
    for name in FEATURE_COLUMNS:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if _is_bytes(column.type):  # text stored without its UTF-8 annotation: the same text
            column = _as_text(column, name, first_row)
        if FIELDS[name].kind == NUMBER:
            kind = column.type
            if pa.types.is_decimal(kind):
                column = pc.cast(column, pa.float64())
            elif pa.types.is_date(kind) or pa.types.is_timestamp(kind):
                column = pc.year(column) if FIELDS[name].unit == "year" else pc.cast(column, pa.string())
        columns[name] = column
    return pa.table(columns).to_pandas()


def _as_text(column: pa.ChunkedArray, name: str, first_row: int) -> pa.ChunkedArray:
    """A column of bytes as UTF-8 text; a DataError naming the first row whose bytes are not UTF-8."""
    try:
        return pc.cast(column, pa.string())
    except pa.ArrowInvalid:
        position = next(i for i, value in enumerate(column.to_pylist()) if not _is_utf8(value))
        raise DataError(f"row {first_row + position}, field {name}: bytes that are not UTF-8 text") from None


def _is_utf8(value: bytes | None) -> bool:
    if value is None:
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_bytes(kind: pa.DataType) -> bool:
    """Whether ``kind`` holds raw bytes (Parquet BYTE_ARRAY without the UTF-8 annotation)."""
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


@dataclass(frozen=True)
class CheckedChunk:
    """One chunk after validation: the rows to score, and what is written around their rents.

    ``scorable``: ``ValidationResult.scorable`` (indexed by input row number); ``kept``: their
    pass-through columns in the same order; ``rejected``: the chunk's rejects in the rejects schema;
    ``unknown``: ``ValidationResult.treated_as_unknown``; ``rows``: rows the chunk had.
    """

    rows: int
    scorable: pd.DataFrame
    kept: pa.Table
    rejected: pa.Table
    unknown: dict[str, int]


def check_chunk(
    model: dict,
    table: pa.Table,
    first_row: int,
    passthrough: list[str],
    rejects_schema: pa.Schema,
    drift: DriftMonitor | None = None,
) -> CheckedChunk:
    """Validate one chunk (row numbers from ``first_row``): everything of ``score_chunk`` but the rents.

    ``drift``, when given, counts the scorable listings (as validated) into its bins.
    """
    result = validate_chunk(model, table, first_row)
    if drift is not None:
        drift.update(result.scorable)
    passed = table.select(passthrough)
    rejects = result.rejects
    rejected_rows = rejects[ROW].to_numpy(dtype="int64")
    rejected = pa.Table.from_arrays(
        [
            pa.array(rejected_rows),
            pa.array(rejects[FIELD].to_numpy(dtype=object), pa.string()),
            pa.array(rejects[REASON].to_numpy(dtype=object), pa.string()),
            *passed.take(rejected_rows - first_row).columns,
        ],
        schema=rejects_schema,
    )
    kept = passed.take(result.scorable.index.to_numpy(dtype="int64") - first_row)
    return CheckedChunk(table.num_rows, result.scorable, kept, rejected, result.treated_as_unknown)


def scored_table(checked: CheckedChunk, prices: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The scored rows of ``checked``: row number, pass-through columns, then ``prices`` (``score``)."""
    return pa.Table.from_arrays(
        [
            pa.array(checked.scorable.index.to_numpy(dtype="int64")),
            *checked.kept.columns,
            *(pa.array(prices[name].to_numpy(), pa.float64()) for name in (PREDICTION, LOW, HIGH)),
        ],
        schema=schema,
    )


def score_chunk(
    model: dict,
    table: pa.Table,
    first_row: int,
    passthrough: list[str],
    schemas: tuple[pa.Schema, pa.Schema],
    drift: DriftMonitor | None = None,
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Scored rows and rejects of one chunk (row numbers from ``first_row``) and its unknown counts.

    ``drift``, when given, counts the scored listings (as validated) into its bins.
    """
    checked = check_chunk(model, table, first_row, passthrough, schemas[1], drift)
    scored = scored_table(checked, score(model, checked.scorable), schemas[0])
    return scored, checked.rejected, checked.unknown


def pipelined(
    chunks: Iterator[pa.Table], check: Callable[[pa.Table, int], CheckedChunk], scoring: Scorer
) -> Iterator[tuple[CheckedChunk, pd.DataFrame]]:
    """Each chunk ``check``ed (with its first row number) and its rents from ``scoring``, in order.

    Chunk k + 1 is read and checked while ``scoring`` scores chunk k, and chunk k is yielded (to be
    written) while chunk k + 1 is scored: with a ``ProcessScorer`` the two run on two cores.
    """
    waiting: CheckedChunk | None = None
    first_row = 0
    for table in chunks:
        stop_if_requested()
        checked = check(table, first_row)
        first_row += checked.rows
        prices = None if waiting is None else scoring.result()
        scoring.submit(checked.scorable)
        if waiting is not None:
            yield waiting, prices
        waiting = checked
    if waiting is not None:
        yield waiting, scoring.result()
    stop_if_requested()


@contextmanager
def table_writer(path: Path, temporary: Path, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """Append tables to ``temporary`` in the CSV or Parquet format of ``path``."""
    kind = file_format(path, "output")
    writer = pq.ParquetWriter(temporary, schema) if kind == "parquet" else pa_csv.CSVWriter(temporary, schema)
    with writer:
        yield writer.write_table


@contextmanager
def output_files(*paths: Path) -> Iterator[tuple[Path, ...]]:
    """Temporary paths for ``paths`` (``io.new_temporary``); they replace their targets together.

    A path that is a symlink is written through: its target gets the new file, the link stays
    (``io.final_path``). Folders the paths need are created, and removed again (only those, only
    while empty) if the block fails (``io.made_folders``). The temporaries vanish on any exit
    Python sees. On success they are renamed into place one by one; if a rename fails, the files
    already replaced are put back (their old contents held open, never copied into the tree), or
    removed when there was none. Either every file is new or every file is as before. Once all are
    in place, ``rentprice.logs.record_written`` notes them for the stage's closing line.
    """
    finals = [final_path(path) for path in paths]
    with ExitStack() as previous, made_folders(*finals):
        old = [previous.enter_context(open(path, "rb")) if path.is_file() else None for path in finals]
        temporaries: list[Path] = []
        try:
            for path in finals:  # one by one, so a failure removes those already made
                temporaries.append(new_temporary(path))
            yield tuple(temporaries)
            replaced: list[tuple[Path, IO[bytes] | None]] = []
            try:
                for path, temporary, before in zip(finals, temporaries, old, strict=True):
                    os.replace(temporary, path)
                    replaced.append((path, before))
            except BaseException:
                for path, before in replaced:
                    with suppress(OSError):  # put back as many as can be; the first error is raised
                        _restore(path, before)
                raise
        finally:  # by name: an interrupt may land after a temporary is made and before it is noted
            for path in finals:
                remove_own_temporaries(path)
    record_written(*paths)


def _restore(path: Path, old: IO[bytes] | None) -> None:
    """Put back the file ``old`` was before it was replaced, or remove ``path`` if there was none."""
    if old is None:
        path.unlink(missing_ok=True)
        return
    old.seek(0)
    with atomic_path(path) as temporary, open(temporary, "wb") as copy:
        while block := old.read(1 << 20):
            copy.write(block)


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


@contextmanager
def progress_reporter(total: int | None) -> Iterator[Callable[[int], None]]:
    """A callback taking the rows just done, reporting the progress of a run.

    On a terminal it draws a progress bar; otherwise it logs the rows so far and rows/s every
    PROGRESS_SECONDS. ``total``: the rows expected, None when unknown.
    """
    started = last_report = perf_counter()
    done = 0
    with tqdm(total=total, unit="rows", disable=not sys.stderr.isatty()) as bar:

        def report(rows: int) -> None:
            nonlocal done, last_report
            done += rows
            bar.update(rows)
            if bar.disable and perf_counter() - last_report >= PROGRESS_SECONDS:
                last_report = perf_counter()
                logger.info("progress: {} rows, {:.0f} rows/s", done, done / (last_report - started))

        yield report


def use_jemalloc() -> None:
    """Allocate Arrow (and pandas string) memory with jemalloc where pyarrow has it.

    With pyarrow's default mimalloc pool the resident memory of a long batch creeps up chunk
    after chunk; with jemalloc it stays flat (measured with bench/predict.py).
    """
    with suppress(NotImplementedError):  # a pyarrow build without jemalloc (e.g. on Windows)
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def score_file(
    model_path: Path,
    source: str,
    output: Path,
    rejects: Path,
    *,
    drift: Path | None = None,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    max_reject_rate: float = MAX_REJECT_RATE,
    chunk_rows: int = CHUNK_ROWS,
    lock: Path = DVC_LOCK,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Score listings file ``source`` (``-``: CSV on stdin) into ``output`` and ``rejects``.

    ``drift``, when given, receives the drift summary of the scored listings at ``thresholds``
    (JSON, ``DriftMonitor.summary``). Paths are checked before anything is read (``check_paths``);
    the input is streamed in chunks of ``chunk_rows``; ``progress`` is called with each chunk's row
    count. The files appear together or not at all (``output_files``). Raises DataError (bad input,
    a collision, a reject rate above ``max_reject_rate``, a file that cannot be written: e.g. a full
    disk) or ModelError; in every case none of the files changes and no folder is left behind.
    """
    output, rejects = Path(output), Path(rejects)
    for path in (output, rejects):
        file_format(path, "output")
    check_paths(source, output, rejects, drift)
    label = "stdin" if source == STDIN else source
    use_jemalloc()
    chunks = read_chunks(source, chunk_rows)
    first = next(chunks)
    passthrough, *schemas = output_schemas(first, label, (output, rejects))
    model = load_scoring_model(model_path, lock)
    summary = Summary(DriftMonitor(model.get("drift_profile")))

    def check(table: pa.Table, first_row: int) -> CheckedChunk:
        try:
            return check_chunk(model, table, first_row, passthrough, schemas[1], summary.drift)
        except DataError as error:  # a chunk's value no row can hold: name the file
            raise DataError(f"{label}: {error}") from None

    chunks = chain([first], chunks)
    del first  # so each chunk is freed once written
    started = perf_counter()
    written = (output, rejects, *([] if drift is None else [Path(drift)]))
    temporaries: tuple[Path, ...] = ()
    try:
        with output_files(*written) as temporaries, ExitStack() as stack:
            scoring = stack.enter_context(scorer(model))  # forked before the outputs are opened
            write_scored = stack.enter_context(table_writer(output, temporaries[0], schemas[0]))
            write_rejects = stack.enter_context(table_writer(rejects, temporaries[1], schemas[1]))
            for checked, prices in pipelined(chunks, check, scoring):
                scored = scored_table(checked, prices, schemas[0])
                write_scored(scored)
                write_rejects(checked.rejected)
                summary.count(checked.rows, scored, checked.rejected, checked.unknown)
                if progress is not None:
                    progress(checked.rows)
            check_reject_rate(label, summary.rows, summary.rejected_by_field, max_reject_rate)
            stack.close()  # the writers flush inside the block, so a full disk fails here
            if drift is not None:
                temporaries[2].write_text(json_text(summary.drift.summary(thresholds)), encoding="utf-8")
    except OSError as error:
        targets = {str(temporary): str(path) for temporary, path in zip(temporaries, written, strict=False)}
        where = (
            error.filename2
            or targets.get(str(error.filename), error.filename)
            or ", ".join(map(str, written))
        )
        raise DataError(f"{where}: cannot write ({error.strerror or error}); nothing was written") from None
    summary.seconds = perf_counter() - started
    return summary
