"""Reading and writing: the SQL source, Parquet, JSON and YAML files, always written atomically."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from ruamel.yaml import YAML

from rentprice.errors import DataError

#: Rows fetched from the database at a time: the driver holds one chunk, never the whole table.
SQL_CHUNK_ROWS = 50_000
#: Per SQL dialect, the collation that orders text by code point (as SQLite's default BINARY does),
#: so the snapshot's row order does not depend on the server's locale. Other dialects use their own.
CODE_POINT_COLLATION = {"postgresql": "C"}


def read_sql_table(
    db_url: str, table: str, columns: Sequence[str], kinds: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Read ``columns`` of ``table`` as one frame, in the order of ``read_sql_chunks``.

    Errors as for ``read_sql_chunks``.
    """
    return pd.concat(list(read_sql_chunks(db_url, table, columns, kinds)), ignore_index=True)


def read_sql_chunks(
    db_url: str,
    table: str,
    columns: Sequence[str],
    kinds: Mapping[str, str] | None = None,
    chunk_rows: int = SQL_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """Stream ``columns`` of ``table`` as frames of at most ``chunk_rows`` rows, ordered by every column.

    Rows come ordered by every column in turn (text by code point, missing values first), so the
    order never depends on storage or on the server's locale. The query runs on a server-side
    cursor where the driver has one (PostgreSQL), so memory holds one chunk, not the table.
    ``kinds`` maps a column to ``"number"`` or ``"text"``: a column whose declared SQL type is of the
    other kind is an error (a column without a declared type, possible in SQLite, passes).

    A bad URL, a missing driver, an unreachable database, refused credentials or permissions, a
    missing table or column, a column of the wrong type and a table without rows are each a one-line
    DataError; the password never appears in it.
    """
    import sqlalchemy as sa  # here, not at the top: only collect reads SQL; it adds 0.3 s to every start-up

    where = _redact(db_url)
    try:
        engine = sa.create_engine(db_url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as error:
        raise DataError(f"{where}: not a usable database URL ({error})") from None
    except ImportError as error:
        raise DataError(
            f"{where}: database driver {error.name!r} is not installed (pip install it)"
        ) from None
    rows = 0
    try:
        with engine.connect() as connection:
            try:
                reflected = sa.Table(table, sa.MetaData(), autoload_with=connection)
            except sa.exc.NoSuchTableError:
                raise DataError(f"{where}: table {table!r} not found") from None
            absent = [name for name in columns if name not in reflected.columns]
            if absent:
                raise DataError(f"{where}: table {table!r} is missing column(s) {', '.join(absent)}")
            selected = [reflected.columns[name] for name in columns]
            wrong = [_kind_problem(column, (kinds or {}).get(column.name)) for column in selected]
            if any(wrong):
                raise DataError(f"{where}: table {table!r}: {'; '.join(filter(None, wrong))}")
            collation = CODE_POINT_COLLATION.get(engine.dialect.name)
            order = [_ordering(column, collation) for column in selected]
            query = sa.select(*selected).order_by(*order)
            streaming = connection.execution_options(stream_results=True, max_row_buffer=chunk_rows)
            result = streaming.execute(query)
            while records := result.fetchmany(chunk_rows):
                rows += len(records)
                yield pd.DataFrame.from_records(records, columns=list(columns), coerce_float=True)
    except sa.exc.DBAPIError as error:
        raise DataError(f"{where}: cannot read the database ({_reason(error, db_url)})") from None
    finally:
        engine.dispose()
    if not rows:
        raise DataError(f"{where}: table {table!r} has no rows")


def _kind_problem(column, kind: str | None) -> str | None:
    """Why ``column``'s declared SQL type does not hold values of ``kind``, or None when it does."""
    import sqlalchemy as sa

    declared = column.type
    if kind is None or isinstance(declared, sa.types.NullType):
        return None
    is_number = isinstance(declared, sa.types.Integer | sa.types.Numeric | sa.types.Float)
    is_text = isinstance(declared, sa.types.String)
    if (kind == "number" and is_number) or (kind == "text" and is_text):
        return None
    return f"column {column.name} is {declared}, expected {kind}"


def _ordering(column, collation: str | None):
    """Ascending, missing values first, text in ``collation`` when given."""
    import sqlalchemy as sa

    key = column.collate(collation) if collation and isinstance(column.type, sa.types.String) else column
    return key.asc().nulls_first()


def _reason(error, db_url: str) -> str:
    """The first line of the driver's message, with the URL's password (if any) masked."""
    import sqlalchemy as sa

    reason = str(error.orig).strip().splitlines()[0] if error.orig and str(error.orig).strip() else ""
    password = sa.engine.make_url(db_url).password
    if password:
        reason = reason.replace(str(password), "***")
    return reason or error.__class__.__name__


def _redact(db_url: str) -> str:
    """The URL with any password masked, safe to print in logs."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(db_url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "database URL"


#: Where atomic writes keep their temporary files, at the root of the DVC repository that holds the
#: target: git-ignored and .dvcignore'd, so a file left by a killed run never shows as an untracked
#: change (which blocks `make sweep` and `make release`), and on the target's filesystem, so the
#: final rename stays atomic.
TEMP_DIR = ".tmp"
_TEMPORARY = re.compile(r"\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path for ``path``; rename it into place only if the block succeeds.

    The temporary file comes from ``new_temporary``. It is removed when the block fails or the
    process is interrupted; a file a killed process left (its pid no longer runs) is removed by the
    next atomic write into the same directory.
    """
    temporary = new_temporary(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def new_temporary(path: Path) -> Path:
    """Create an empty temporary file to be renamed onto ``path`` later; return its path.

    It is ``<repo>/.tmp/<name>.<pid>.<random>.tmp`` (beside the target, hidden, when the target is
    outside a DVC repository or on another filesystem), and the leftovers of killed writers there
    are removed first. Raises OSError (its ``filename`` the target) when the target is a folder or
    its folder cannot be written.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        directory = temporary_dir(path)
        remove_leftovers(directory)
        prefix = "" if directory.name == TEMP_DIR else "."
        temporary = directory / f"{prefix}{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        # os.open with 0o666 honours the umask, so the output gets ordinary file permissions
        # (tempfile.mkstemp would leave it readable by its owner only).
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:  # named by the target, not by a temporary the user never asked for
        raise type(error)(error.errno, error.strerror, str(path)) from None
    return temporary


def temporary_dir(path: Path) -> Path:
    """``<repo>/.tmp`` for a target inside a DVC repository on the same filesystem, else its directory."""
    parent = path.parent.resolve()
    root = next((folder for folder in (parent, *parent.parents) if (folder / ".dvc").is_dir()), None)
    if root is None:
        return path.parent
    directory = root / TEMP_DIR
    directory.mkdir(exist_ok=True)
    return directory if directory.stat().st_dev == parent.stat().st_dev else path.parent


def remove_leftovers(directory: Path) -> list[Path]:
    """Remove the temporary files in ``directory`` whose writing process is gone; return them."""
    removed = []
    for candidate in directory.glob("*.tmp"):
        match = _TEMPORARY.search(candidate.name)
        if match and not _running(int(match["pid"])):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` without its index, atomically."""
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file; a missing or unreadable file is a one-line DataError."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error.__class__.__name__})") from None


def read_yaml(path: Path) -> Any:
    """The parsed YAML of ``path`` (params.yaml, dvc.yaml, dvc.lock) exactly as DVC parses it.

    DVC reads these files with ruamel.yaml's safe loader, by the YAML 1.2 rules; PyYAML follows
    YAML 1.1, where ``yes``, ``on`` and ``no`` are booleans and ``1:30`` is 90. Reading them any
    other way would let a stage use another value than ``dvc params diff`` and ``dvc exp show``
    show. None for an empty file. Raises OSError, or ruamel.yaml's YAMLError for a file that is not
    YAML.
    """
    return YAML(typ="safe", pure=True).load(Path(path).read_text(encoding="utf-8"))


def write_json(data: Any, path: Path) -> None:
    """Write pretty, stable JSON with a trailing newline (``json_text``), atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json_text(data), encoding="utf-8")


def json_text(data: Any) -> str:
    """Pretty, stable JSON with a trailing newline: the form of every JSON file the project writes."""
    return json.dumps(data, indent=2) + "\n"


def file_md5(path: Path) -> str:
    """Hex md5 of a file's bytes (the hash DVC records in ``dvc.lock``)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
