"""Batch scoring of a partitioned data set on a Dask cluster: the same rules as the streaming stage.

``score_dataset`` lists the data set's files (a directory, a glob or one file; local or ``s3://``),
asks the workers for each file's schema and row groups, cuts the files into parts of about
``part_rows`` rows (whole row groups; a CSV file is one part) and maps ``score_part`` over them
with ``distributed``'s futures. Each part is streamed in chunks through ``rentprice.batch``'s
``score_chunk`` (``validate_listings`` then ``score``) and written as one Parquet (or CSV) file of
scored rows and one of rejects under a temporary prefix; once every part is done and the reject
rate is acceptable the two prefixes are moved to the output paths. Every output row names its
input file (``source_file``) and its 0-based row in that file (``row``).

Why futures and not ``dask.dataframe.to_parquet``: one pass writes two data sets (scored rows and
rejects) and returns per-part counts for ``--max-reject-rate``; the Arrow tables of the streaming
stage are written as they are (pass-through columns keep their exact types, no pandas round
trip); and a part knows the file and first row of its rows. Dask does the scheduling, data
placement, retries when a worker dies, and the dashboard.

The model file's bytes go to every worker once, in a worker plugin; a worker checks their md5 against
the one the client verified (the md5 in dvc.lock when it lists the model) before unpickling them, and
keeps the loaded model for every later part. Workers never read a model path of their own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker
from fsspec.implementations.local import LocalFileSystem
from loguru import logger

from rentprice.batch import (
    CHUNK_ROWS,
    FORMATS,
    MAX_REJECT_RATE,
    Summary,
    check_reject_rate,
    output_schemas,
    progress_reporter,
    read_chunks,
    score_chunk,
    use_jemalloc,
)
from rentprice.drift import DriftMonitor
from rentprice.errors import DataError, ModelError, RentpriceError
from rentprice.io import final_path, made_folders
from rentprice.logs import record_written, step
from rentprice.model import load_model, predict_on_threads
from rentprice.scoring import DVC_LOCK, load_scoring_model

#: Column naming the input file of every output row (as the data set was named: a relative local
#: path stays relative, an S3 key is a full ``s3://`` URL), beside ``row``, its 0-based row in that file.
SOURCE_FILE = "source_file"
#: Rows per part (whole Parquet row groups, so a part may be larger): a part is one Dask task, one
#: output file per data set and the unit Dask retries when a worker dies. Memory does not depend on
#: it: a part is streamed in chunks of ``chunk_rows``.
PART_ROWS = 1_000_000
LOCAL = "local"
#: How long to wait for the first worker of a scheduler that has none (e.g. an autoscaling cluster).
WORKERS_TIMEOUT_S = 120
#: Written last into each committed data set: on S3, where a move is a copy, it says the data set is
#: complete. Readers (pyarrow, pandas, Dask, Spark) skip files whose name starts with ``_`` or ``.``.
SUCCESS_MARKER = "_SUCCESS"
GLOB_CHARS = frozenset("*?[")
#: Suffix of a temporary prefix that holds, during a local commit, the data set being replaced.
OLD = ".old"


class ClusterError(RentpriceError):
    """A Dask scheduler cannot be reached, has no workers, or its workers cannot finish the job."""


@dataclass(frozen=True)
class DataFile:
    """One input file: ``path`` on its filesystem, ``shown`` as written in outputs and messages."""

    path: str
    url: str
    shown: str
    kind: str


@dataclass(frozen=True)
class FileLayout:
    """What a worker found in a file's header: its Arrow schema and, for Parquet, rows per row group."""

    schema: pa.Schema
    row_groups: tuple[int, ...] | None


@dataclass(frozen=True)
class Part:
    """Rows of one file scored by one task: row groups (all of a CSV file) from row ``first_row``."""

    number: int
    file: DataFile
    row_groups: tuple[int, ...] | None
    first_row: int
    rows: int | None


@dataclass(frozen=True)
class Outputs:
    """Where a task writes: the filesystem, the two temporary prefixes and the two formats."""

    fs: Any
    scored: str
    rejects: str
    scored_kind: str
    rejects_kind: str


# ---------------------------------------------------------------------------- the client's side


def score_dataset(
    model_path: Path,
    dataset: str,
    output: str,
    rejects: str,
    scheduler: str,
    max_reject_rate: float = MAX_REJECT_RATE,
    chunk_rows: int = CHUNK_ROWS,
    part_rows: int = PART_ROWS,
    lock: Path = DVC_LOCK,
    drift: Path | None = None,
) -> Summary:
    """Score every row of ``dataset`` on the Dask cluster ``scheduler`` into two data sets, or write nothing.

    ``output`` and ``rejects`` become directories of part files (Parquet, or CSV when the path ends
    in ``.csv``), local or on S3, replacing what was there only once every part is scored and at
    most ``max_reject_rate`` of all rows are rejected. ``drift``, the local file the caller writes
    the drift summary to afterwards, is only checked: not in the input nor in an output data set.
    Errors a user can cause are RentpriceErrors:
    DataError (input, output), ModelError (model file), ClusterError (scheduler, workers).
    Returns the counts of every part, drift included, as streaming ``score_file`` does.
    """
    files, in_fs = list_files(dataset)
    out_fs, output_path = fsspec.core.url_to_fs(str(output))
    rejects_fs, rejects_path = fsspec.core.url_to_fs(str(rejects))
    if isinstance(out_fs, LocalFileSystem) and isinstance(rejects_fs, LocalFileSystem):
        output_path, rejects_path = _final(output, output_path), _final(rejects, rejects_path)
    if rejects_fs.protocol != out_fs.protocol or rejects_path.rstrip("/") == output_path.rstrip("/"):
        raise DataError(f"{rejects}: rejects must be another path on the same storage as {output}")
    for name in (output, rejects, *([] if drift is None else [str(drift)])):
        if _is_inside(name, dataset):
            raise DataError(f"{name}: output must not be inside the input data set {dataset}")
    if drift is not None and any(_is_inside(str(drift), name) for name in (output, rejects)):
        raise DataError(f"{drift}: --drift must not be inside the data set {output} or {rejects}")
    # the client verifies the model as the streaming stage does, so a bad file fails before any work
    model = load_scoring_model(model_path, lock)  # its md5 matches dvc.lock's, where that lists it
    model_bytes = Path(model_path).read_bytes()
    model_md5 = hashlib.md5(model_bytes).hexdigest()
    token = secrets.token_hex(4)
    outputs = Outputs(
        out_fs,
        _temporary_prefix(output_path, token),
        _temporary_prefix(rejects_path, token),
        output_kind(output),
        output_kind(rejects),
    )
    prefixes = [prefix + end for prefix in (outputs.scored, outputs.rejects) for end in ("", OLD)]
    with (
        _output_folders(out_fs, {output: output_path, rejects: rejects_path}),
        connect(scheduler) as client,
        _removed_on_exit(out_fs, prefixes),
    ):
        with step("plan parts") as facts:
            layouts = _gather(
                client, client.map(inspect_file, files, fs=in_fs, pure=False), "read the headers"
            )
            passthrough, schemas = dataset_schemas(files, layouts)
            parts = plan_parts(files, layouts, part_rows)
            known = [part.rows for part in parts if part.rows is not None]
            facts.update(files=len(files), parts=len(parts), rows=sum(known) if known else "unknown")
        for prefix in (outputs.scored, outputs.rejects):
            out_fs.makedirs(prefix, exist_ok=True)
        with shipped_model(client, model_bytes, model_md5):
            shared = dict(fs=in_fs, md5=model_md5, passthrough=passthrough, schemas=schemas)
            totals = Summary(DriftMonitor(model.get("drift_profile")))
            run_parts(client, parts, shared | dict(outputs=outputs, chunk_rows=chunk_rows), totals)
        if totals.rows == 0:
            raise DataError(f"{dataset}: empty data set ({len(files)} file(s), no rows)")
        check_reject_rate(dataset, totals.rows, totals.rejected_by_field, max_reject_rate)
        with step("commit"):
            for temporary, final, shown in (
                (outputs.rejects, rejects_path, rejects),
                (outputs.scored, output_path, output),
            ):
                try:
                    commit(out_fs, temporary, final)
                finally:  # stopped even mid-commit, a data set moved into place is complete: say so
                    with suppress(OSError):
                        if not out_fs.exists(temporary):
                            record_written(shown)
    return totals


def run_parts(client: Client, parts: list[Part], shared: dict[str, Any], totals: Summary) -> None:
    """Map ``score_part`` over ``parts``, merging each part's counts into ``totals`` as it finishes."""
    total_rows = sum(part.rows for part in parts) if all(part.rows is not None for part in parts) else None
    futures = dict(zip(client.map(score_part, parts, pure=False, **shared), parts, strict=True))
    started = perf_counter()
    with progress_reporter(total_rows) as progress, step("score listings") as facts:
        for future in as_completed(futures):
            part = _result(future, futures)
            totals.merge(part)
            progress(part.rows)
        facts.update(rows=totals.rows, scored=totals.scored, rejected=totals.rejected, parts=len(parts))
        facts["rows_per_s"] = round(totals.rows / max(perf_counter() - started, 1e-9))


def _result(future, futures: dict) -> Summary:
    """A finished part's result; on any failure, cancel the other parts and raise a one-line error."""
    try:
        return future.result()
    except BaseException as error:
        for other in futures:
            other.cancel()
        part = futures[future]
        where = f"part {part.number} ({part.file.shown} from row {part.first_row})"
        if isinstance(error, KilledWorker):
            raise ClusterError(
                f"{where}: a worker died on each of {error.allowed_failures + 1} tries (out of memory, or"
                " killed?); the job cannot finish, see the worker logs"
            ) from None
        if isinstance(error, FutureCancelledError | OSError) and not isinstance(error, RentpriceError):
            raise ClusterError(f"{where}: the Dask job stopped ({_first_line(error)})") from None
        raise


def _gather(client: Client, futures: list, doing: str) -> list:
    """The results of ``futures``; a lost scheduler or worker is a ClusterError naming ``doing``."""
    try:
        return client.gather(futures)
    except KilledWorker:
        raise ClusterError(f"workers died while trying to {doing}; see the worker logs") from None
    except OSError as error:
        raise ClusterError(
            f"lost the Dask scheduler while trying to {doing} ({_first_line(error)})"
        ) from None


@contextmanager
def connect(scheduler: str) -> Iterator[Client]:
    """A Client of the scheduler at ``scheduler``, or of a new LocalCluster for ``local[:N]``.

    ``local:N`` starts N worker processes of one thread each on this machine (``local``: one per
    core), listening on loopback only. Its dashboard link, like a remote scheduler's, goes to the
    log. An unreachable scheduler (after Dask's ``distributed.comm.timeouts.connect``) or one with no
    worker after WORKERS_TIMEOUT_S is a ClusterError.
    """
    with _dask_logs_to_loguru(), _client(scheduler) as client:
        link = client.dashboard_link if "dashboard" in client.scheduler_info().get("services", {}) else None
        logger.info(
            "Dask scheduler {} with {} worker(s); dashboard: {}",
            client.scheduler.address,
            len(client.scheduler_info()["workers"]),
            link or "none (install bokeh where the scheduler runs)",
        )
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(
                f"Dask scheduler {scheduler}: no worker joined within {WORKERS_TIMEOUT_S}s"
            ) from None
        yield client


@contextmanager
def _client(scheduler: str) -> Iterator[Client]:
    """The Client (and, for ``local[:N]``, the LocalCluster) of ``connect``, closed on exit."""
    workers = local_workers(scheduler)
    if workers is not None:
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, set_as_default=False)
    except (OSError, ValueError, TypeError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler {scheduler} ({_first_line(error)})") from None
    with client:
        yield client


def local_workers(scheduler: str) -> int | None:
    """The worker count of ``local`` (one per core) or ``local:N``; None for a scheduler address."""
    name, _, count = scheduler.partition(":")
    if name != LOCAL:
        return None
    if not count:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"--scheduler {scheduler}: local:N needs a positive number of workers N")
    return int(count)


@contextmanager
def _dask_logs_to_loguru() -> Iterator[None]:
    """While the block runs, send Dask's log records (workers lost, restarted) to loguru.

    Warnings and errors become loguru warnings, the rest debug lines (in the log file only): the
    run's own verdict is the one ERROR line, and Dask recovers from most of what it reports.
    """

    class ToLoguru(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            level = "WARNING" if record.levelno >= logging.WARNING else "DEBUG"
            logger.log(level, "dask: {}", _first_line(record.getMessage()))

    dask_logger = logging.getLogger("distributed")
    saved = dask_logger.handlers, dask_logger.propagate
    dask_logger.handlers, dask_logger.propagate = [ToLoguru()], False
    try:
        yield
    finally:
        dask_logger.handlers, dask_logger.propagate = saved


def list_files(dataset: str) -> tuple[list[DataFile], Any]:
    """The data files of ``dataset`` (a directory, searched recursively, a glob or one file), sorted.

    Files whose name starts with ``_`` or ``.`` are skipped (markers, temporary files). No file, a
    path that does not exist, or .csv and .parquet files mixed is a DataError.
    """
    try:
        fs, root = fsspec.core.url_to_fs(dataset)
        if GLOB_CHARS & set(dataset):
            found = fs.glob(root)
        elif fs.isdir(root):
            found = fs.find(root)
        elif fs.isfile(root):
            found = [root]
        else:
            raise DataError(f"{dataset}: no such file or directory")
    except (OSError, ValueError, ImportError) as error:
        raise DataError(f"{dataset}: cannot list the data set ({_first_line(error)})") from None
    paths = sorted(
        path
        for path in found
        if Path(path).suffix.lower() in FORMATS
        and not any(part.startswith(("_", ".")) for part in Path(path).relative_to(_base(root)).parts)
    )
    if not paths:
        raise DataError(f"{dataset}: empty data set (no .parquet or .csv files)")
    kinds = {FORMATS[Path(path).suffix.lower()] for path in paths}
    if len(kinds) > 1:
        raise DataError(f"{dataset}: holds both .csv and .parquet files; score each format separately")
    kind = kinds.pop()
    return [DataFile(path, _url(fs, path), _shown(fs, dataset, path), kind) for path in paths], fs


def _base(root: str) -> str:
    """A glob's directory before its first glob character; any other path itself."""
    if not GLOB_CHARS & set(root):
        return root
    head = min((root.split(char)[0] for char in GLOB_CHARS), key=len)
    return head.rsplit("/", 1)[0] if "/" in head else ""


def _url(fs, path: str) -> str:
    """A file's absolute path or URL, the same on every worker."""
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def _shown(fs, dataset: str, path: str) -> str:
    """A file's path as outputs name it: relative when the data set was a relative local path."""
    if isinstance(fs, LocalFileSystem):
        return os.path.relpath(path) if not os.path.isabs(dataset) else path
    return fs.unstrip_protocol(path)


def _is_inside(path: str, dataset: str) -> bool:
    """Whether an output path is the data set or lies in it (the next run would read it as input).

    Local paths are compared with their symlinks resolved.
    """
    fs, target = fsspec.core.url_to_fs(str(path))
    base = _base(fsspec.core.url_to_fs(dataset)[1])
    if isinstance(fs, LocalFileSystem):
        target, base = os.path.realpath(target), os.path.realpath(base or ".")
    target, base = target.rstrip("/"), base.rstrip("/")
    return target == base or target.startswith(f"{base}/")


def _final(shown: str, path: str) -> str:
    """A local output's path, a symlink resolved (``io.final_path``): the link stays, its target is replaced.

    A link into a folder that does not exist is a DataError naming ``shown``.
    """
    try:
        return str(final_path(Path(path)))
    except OSError as error:
        raise DataError(f"{shown}: cannot write ({error.strerror})") from None


def dataset_schemas(files: list[DataFile], layouts: list[FileLayout]) -> tuple[list[str], tuple]:
    """Pass-through columns and the scored and rejects schemas, with ``source_file`` first.

    Every file must hold the listing columns and the same pass-through columns with the same types
    as the first; a file that differs is a one-line DataError naming both files.
    """
    first = None
    for file, layout in zip(files, layouts, strict=True):
        passthrough, scored, rejects = output_schemas(layout.schema.empty_table(), file.shown)
        if SOURCE_FILE in layout.schema.names:
            raise DataError(f"{file.shown}: column(s) {SOURCE_FILE} clash with output columns; rename them")
        kept = {name: scored.field(name).type for name in passthrough}
        if first is None:
            first = (file, passthrough, kept, scored, rejects)
        elif kept != first[2]:
            raise DataError(
                f"{file.shown}: {_schema_difference(kept, first[2])} than {first[0].shown}"
                " (mixed schemas in the data set)"
            )
    _, passthrough, _, scored, rejects = first
    source = pa.field(SOURCE_FILE, pa.string())
    return passthrough, (scored, rejects, scored.insert(0, source), rejects.insert(0, source))


def _schema_difference(columns: dict, expected: dict) -> str:
    """How pass-through ``columns`` differ from ``expected``: other names or other types."""
    if set(columns) != set(expected):
        extra, absent = sorted(set(columns) - set(expected)), sorted(set(expected) - set(columns))
        return (
            f"other pass-through columns (extra: {', '.join(extra) or 'none'}; "
            f"missing: {', '.join(absent) or 'none'})"
        )
    changed = [
        f"{name} {columns[name]} not {expected[name]}" for name in expected if columns[name] != expected[name]
    ]
    return f"other column types ({'; '.join(changed)})"


def plan_parts(files: list[DataFile], layouts: list[FileLayout], part_rows: int) -> list[Part]:
    """Cut files into parts of whole row groups, about ``part_rows`` rows each; a CSV file is one part."""
    parts: list[Part] = []
    for file, layout in zip(files, layouts, strict=True):
        if layout.row_groups is None:
            parts.append(Part(len(parts), file, None, 0, None))
            continue
        groups, rows, first_row = [], 0, 0
        for index, size in enumerate(layout.row_groups):
            groups.append(index)
            rows += size
            if rows >= part_rows:
                parts.append(Part(len(parts), file, tuple(groups), first_row, rows))
                groups, first_row, rows = [], first_row + rows, 0
        if groups or first_row == 0:  # the rest, or an empty file: one empty part keeps its schema
            parts.append(Part(len(parts), file, tuple(groups), first_row, rows))
    return parts


def commit(fs, temporary: str, final: str) -> None:
    """Replace whatever is at ``final`` with the directory ``temporary``, then mark it complete.

    Locally a rename: ``final`` never holds a partial data set. On S3 a move is a copy of every
    object: SUCCESS_MARKER, written last, tells a complete data set from one cut short.
    """
    if isinstance(fs, LocalFileSystem):
        old = f"{temporary}{OLD}"
        if fs.exists(final):
            os.rename(final, old)
        try:
            os.rename(temporary, final)
        except BaseException:  # stopped or failed between the two renames: the old data set goes back
            if fs.exists(old):
                os.rename(old, final)
            raise
        if fs.exists(old):
            fs.rm(old, recursive=True)
    else:
        fs.invalidate_cache()
        if fs.exists(final):
            fs.rm(final, recursive=True)
        for key in fs.find(temporary):
            fs.copy(key, f"{final}{key[len(temporary) :]}")
        fs.rm(temporary, recursive=True)
        fs.invalidate_cache()
    fs.touch(f"{final}/{SUCCESS_MARKER}")


def _temporary_prefix(path: str, token: str) -> str:
    """A hidden sibling of ``path`` for this run's parts."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.{token}.tmp" if parent else f".{name}.{token}.tmp"


@contextmanager
def _output_folders(fs, paths: dict[str, str]) -> Iterator[None]:
    """Make the missing local folders of ``paths`` (shown name: path); remove them if the block fails.

    ``io.made_folders`` for a local filesystem (object storage has no folders); a folder that cannot
    be made is a DataError naming the output.
    """
    if not isinstance(fs, LocalFileSystem):
        yield
        return
    made = False
    try:
        with made_folders(*map(Path, paths.values())):
            made = True
            yield
    except OSError as error:
        if made:  # the block's own error
            raise
        shown = next((name for name, path in paths.items() if path == error.filename), error.filename)
        raise DataError(f"{shown}: cannot write ({error.strerror})") from None


@contextmanager
def _removed_on_exit(fs, prefixes: list[str]) -> Iterator[None]:
    """Remove the temporary prefixes that are left when the block ends, however it ends."""
    try:
        yield
    finally:
        for prefix in prefixes:
            with suppress(FileNotFoundError):
                if fs.exists(prefix):
                    fs.rm(prefix, recursive=True)


def output_kind(path: str) -> str:
    """The format of an output data set's parts: CSV when its path ends in .csv, else Parquet."""
    return "csv" if str(path).lower().rstrip("/").endswith(".csv") else "parquet"


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


# ---------------------------------------------------------------------------- the workers' side


def inspect_file(file: DataFile, fs) -> FileLayout:
    """A file's schema and rows per row group (Parquet footer), or its header (CSV: every column text)."""
    try:
        if file.kind == "parquet":
            with fs.open(file.path, "rb") as handle:
                metadata = pq.ParquetFile(handle).metadata
                schema = metadata.schema.to_arrow_schema()
                return FileLayout(
                    schema, tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
                )
        with fs.open(file.path, "rb") as handle:
            header = pd.read_csv(handle, dtype=str, nrows=0, index_col=False)
        return FileLayout(pa.schema([pa.field(str(name), pa.string()) for name in header.columns]), None)
    except FileNotFoundError:
        raise DataError(f"{file.shown}: file not found") from None
    except (OSError, ValueError, pd.errors.ParserError, pa.ArrowException) as error:
        raise DataError(
            f"{file.shown}: not a readable {file.kind.upper()} file ({_first_line(error)})"
        ) from None


def score_part(
    part: Part,
    fs,
    md5: str,
    passthrough: list[str],
    schemas: tuple[pa.Schema, pa.Schema, pa.Schema, pa.Schema],
    outputs: Outputs,
    chunk_rows: int,
) -> Summary:
    """Score one part in chunks into its scored and rejects files under the temporary prefixes.

    Returns its counts (drift included). Run again after a worker died, it writes the same two
    files over whatever the first try left.
    """
    model = worker_model(md5)
    name = f"part-{part.number:06d}"
    summary = Summary(DriftMonitor(model.get("drift_profile")))
    with (
        part_writer(outputs.fs, f"{outputs.scored}/{name}.{outputs.scored_kind}", schemas[2]) as write_scored,
        part_writer(
            outputs.fs, f"{outputs.rejects}/{name}.{outputs.rejects_kind}", schemas[3]
        ) as write_rejects,
    ):
        for table in part_chunks(part, fs, chunk_rows):
            scored, rejects, unknown = score_chunk(
                model, table, part.first_row + summary.rows, passthrough, schemas[:2], summary.drift
            )
            write_scored(with_source(scored, part.file.shown))
            write_rejects(with_source(rejects, part.file.shown))
            summary.count(table.num_rows, scored, rejects, unknown)
    return summary


def with_source(table: pa.Table, shown: str) -> pa.Table:
    """``table`` with ``source_file`` first."""
    return table.add_column(0, SOURCE_FILE, pa.array([shown] * table.num_rows, pa.string()))


def part_chunks(part: Part, fs, chunk_rows: int) -> Iterator[pa.Table]:
    """A part's rows as tables of at most ``chunk_rows`` rows (CSV: the whole file, as the stage reads it)."""
    if part.file.kind == "csv":
        yield from read_chunks(part.file.url, chunk_rows)
        return
    if not part.row_groups:
        return
    try:
        with fs.open(part.file.path, "rb") as handle:
            # pre_buffer would keep every row group's bytes read so far: memory growing with the part
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=list(part.row_groups)):
                yield pa.Table.from_batches([batch])
    except FileNotFoundError:
        raise DataError(f"{part.file.shown}: file not found") from None
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataError(f"{part.file.shown}: not a readable PARQUET file ({_first_line(error)})") from None


@contextmanager
def part_writer(fs, path: str, schema: pa.Schema) -> Iterator:
    """Write tables to one part file (Parquet, or CSV by the path's suffix); a failure is a DataError."""
    try:
        with fs.open(path, "wb") as handle:
            kind_writer = pa_csv.CSVWriter if path.endswith(".csv") else pq.ParquetWriter
            with kind_writer(handle, schema) as writer:
                yield writer.write_table
    except OSError as error:
        raise DataError(f"{path}: cannot write ({_first_line(error)})") from None


@contextmanager
def shipped_model(client: Client, data: bytes, md5: str) -> Iterator[None]:
    """Give every worker, present or joining later, the model file's bytes while the block runs.

    A worker plugin, not ``client.scatter``: Dask hands a plugin to each worker that starts,
    including one that replaces a worker that died, whereas scattered data dies with the workers
    that hold it. Unregistering it drops the bytes and the loaded model from the workers again.
    """
    plugin = ModelBytes(data, md5)
    client.register_plugin(plugin)
    try:
        yield
    finally:
        with suppress(Exception):  # the workers may be gone; the plugin goes with them
            client.unregister_worker_plugin(plugin.name)


class ModelBytes(WorkerPlugin):
    """A worker plugin holding a model file's bytes and the md5 they must have."""

    def __init__(self, data: bytes, md5: str) -> None:
        self.data, self.md5 = data, md5
        self.name = f"rentprice-model-{md5}"

    def setup(self, worker) -> None:
        """Keep the bytes in the worker process for ``worker_model``."""
        _SHIPPED[self.md5] = self.data

    def teardown(self, worker) -> None:
        """Forget the bytes and the model loaded from them."""
        _SHIPPED.pop(self.md5, None)
        _MODELS.pop(self.md5, None)


_SHIPPED: dict[str, bytes] = {}
_MODELS: dict[str, dict] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(md5: str) -> dict:
    """The model shipped with ``md5``, loaded once per worker process after its bytes' md5 matches.

    ``load_model`` reads a path: the checked bytes go to a private temporary file first. The model
    predicts on one thread here (``predict_on_threads``): Dask runs one task per worker thread, and
    the model's own threads would compete with them for the same cores.
    """
    with _MODELS_LOCK:
        if md5 not in _MODELS:
            data = _SHIPPED.get(md5)
            if data is None:
                raise ModelError(f"this worker did not receive the model with md5 {md5}")
            if hashlib.md5(data).hexdigest() != md5:
                raise ModelError(
                    f"the model bytes this worker received do not have md5 {md5}; not loading them"
                )
            use_jemalloc()
            with tempfile.TemporaryDirectory(prefix="rentprice-model-") as directory:
                path = Path(directory) / "model.joblib"
                path.write_bytes(data)
                bundle = load_model(path)
            predict_on_threads(bundle["pipeline"], 1)
            _MODELS[md5] = bundle
        return _MODELS[md5]
