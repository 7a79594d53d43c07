"""Reading and writing: the SQL source, Parquet, JSON and YAML files, always written atomically."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pandas as pd
from ruamel.yaml import YAML

from rentprice.errors import DataError
from rentprice.logs import record_written

#: Rows fetched from the database at a time: the driver holds one chunk, never the whole table.
SQL_CHUNK_ROWS = 50_000
#: Per SQL dialect, the collation that orders text by code point (as SQLite's default BINARY does),
#: so the snapshot's row order does not depend on the server's locale. Other dialects use their own.
CODE_POINT_COLLATION = {"postgresql": "C"}
#: Query parameters of a database URL whose values are secrets (libpq's ``password``, ``sslpassword``, …).
SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)
#: SQLAlchemy's warning for a column type it cannot map: the type, then the column.
UNKNOWN_TYPE = re.compile(r"Did not recognize type '([^']+)' of column '([^']+)'")


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
    _check_url(db_url, where)
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
            with warnings.catch_warnings(record=True) as caught:  # types SQLAlchemy does not know
                warnings.simplefilter("always", sa.exc.SAWarning)
                schema, _, name = table.rpartition(".")
                try:
                    reflected = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=connection)
                except sa.exc.NoSuchTableError:
                    raise DataError(f"{where}: table {table!r} not found") from None
            unknown = {
                column: kind
                for warning in caught
                for kind, column in UNKNOWN_TYPE.findall(str(warning.message))
            }
            absent = [name for name in columns if name not in reflected.columns]
            if absent:
                raise DataError(f"{where}: table {table!r} is missing column(s) {', '.join(absent)}")
            selected = [reflected.columns[name] for name in columns]
            wrong = [
                _kind_problem(column, (kinds or {}).get(column.name), unknown.get(column.name))
                for column in selected
            ]
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


def _kind_problem(column, kind: str | None, unknown_type: str | None = None) -> str | None:
    """Why ``column``'s declared SQL type does not hold values of ``kind``, or None when it does.

    A domain is judged by its underlying type and an enum is text. ``unknown_type``: the name of a
    type SQLAlchemy does not know (e.g. PostgreSQL's ``point``), never of the expected kind. A column
    without a declared type (possible in SQLite) passes.
    """
    if kind is None:
        return None
    if unknown_type is not None:
        return f"column {column.name} is {unknown_type}, expected {kind}"
    declared = _underlying(column.type)
    if (kind == "number" and _is_number(declared)) or (kind == "text" and _is_text(declared)):
        return None
    if _is_untyped(declared):
        return None
    return f"column {column.name} is {column.type}, expected {kind}"


def _underlying(declared):
    """The type a PostgreSQL domain is defined over (domains of domains unwrapped); else ``declared``."""
    from sqlalchemy.dialects.postgresql import DOMAIN

    while isinstance(declared, DOMAIN):
        declared = declared.data_type
    return declared


def _is_number(declared) -> bool:
    import sqlalchemy as sa

    return isinstance(declared, sa.types.Integer | sa.types.Numeric | sa.types.Float)


def _is_text(declared) -> bool:
    import sqlalchemy as sa

    return isinstance(declared, sa.types.String)  # sa.Enum is a String


def _is_untyped(declared) -> bool:
    import sqlalchemy as sa

    return isinstance(declared, sa.types.NullType)


def _ordering(column, collation: str | None):
    """Ascending, missing values first, text in ``collation`` when given (an enum or domain as text)."""
    import sqlalchemy as sa

    key = column
    if collation and _is_text(_underlying(column.type)):
        key = sa.cast(column, sa.Text).collate(collation)
    return key.asc().nulls_first()


def _reason(error, db_url: str) -> str:
    """The first line of the driver's message, every secret of the URL (``_secrets``) masked."""
    reason = str(error.orig).strip().splitlines()[0] if error.orig and str(error.orig).strip() else ""
    for secret in _secrets(db_url):
        reason = reason.replace(secret, "***")
    return reason or error.__class__.__name__


def _secrets(db_url: str) -> list[str]:
    """The password of ``db_url`` and the values of its secret query parameters (``password=``, …)."""
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(db_url)
    except sa.exc.ArgumentError:
        return []
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if SECRET_PARAMETER.search(key):
            values += [value] if isinstance(value, str) else list(value)
    return [str(value) for value in values if value]


def _redact(db_url: str) -> str:
    """The URL with its password and secret query parameters masked, safe to print in logs.

    A URL whose part before the host holds more than one ``@`` (an unencoded ``@`` in a password)
    cannot be told apart from its host: everything before its last ``@`` is masked.
    """
    import sqlalchemy as sa

    if _ambiguous_at(db_url):
        scheme, _, rest = db_url.partition("://")
        before_query, question, query = rest.partition("?")
        masked = "&".join(
            f"{key}=***" if SECRET_PARAMETER.search(key) else f"{key}{equals}{value}"
            for key, equals, value in (item.partition("=") for item in query.split("&") if item)
        )
        return f"{scheme}://***@{before_query.rpartition('@')[2]}{question}{masked}"
    try:
        url = sa.engine.make_url(db_url)
    except sa.exc.ArgumentError:
        return "database URL"
    query = {key: "***" if SECRET_PARAMETER.search(key) else value for key, value in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _ambiguous_at(db_url: str) -> bool:
    """Whether more than one ``@`` comes before the URL's query.

    Its host then cannot be told from a password holding an unencoded ``@`` (or ``/``), so
    everything up to the last ``@`` is masked.
    """
    _, separator, rest = db_url.partition("://")
    return bool(separator) and rest.partition("?")[0].count("@") > 1


def _check_url(db_url: str, where: str) -> None:
    """Refuse, before connecting, a URL that is ambiguous or names a SQLite file that does not exist.

    SQLite creates a missing database file on connect: a mistyped path would leave an empty file
    (at the source snapshot's path, one that blocks ``dvc pull``) instead of an error.
    """
    import sqlalchemy as sa

    if _ambiguous_at(db_url):
        raise DataError(
            f"{where}: more than one '@' before the host; write an '@' in the user name or password as %40"
        )
    try:
        url = sa.engine.make_url(db_url)
    except sa.exc.ArgumentError:
        return  # create_engine reports it
    in_memory = url.database in (None, "", ":memory:") or url.query.get("uri") == "true"
    if url.get_backend_name() == "sqlite" and not in_memory and not Path(url.database).is_file():
        raise DataError(f"{where}: database file {url.database} not found")


#: Where atomic writes keep their temporary files, at the root of the DVC repository that holds the
#: target: git-ignored and .dvcignore'd, so a file left by a killed run never shows as an untracked
#: change (which blocks `make sweep` and `make release`), and on the target's filesystem, so the
#: final rename stays atomic.
TEMP_DIR = ".tmp"
_TEMPORARY = re.compile(r"\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
#: What follows ``_own_start`` in a temporary's name: its random token and the suffix.
_TOKEN = re.compile(r"[0-9a-f]{8}\.tmp")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path for ``path``; rename it into place only if the block succeeds.

    The file lands in ``final_path(path)``: a symlink stays a link and its target gets the new
    contents. Missing folders are created (``made_folders``) and removed again if the block fails.
    The temporary file comes from ``new_temporary``. It is removed when the block fails or the
    process is interrupted (``remove_own_temporaries``, so also when the interrupt lands between
    its creation and this function noting it); a file a killed process left (its pid no longer
    runs) is removed by the next atomic write into the same directory.
    """
    final = final_path(path)
    with made_folders(final):
        try:
            temporary = new_temporary(final)
            yield temporary
            os.replace(temporary, final)
        finally:
            remove_own_temporaries(final)


def final_path(path: Path) -> Path:
    """The file a write to ``path`` replaces: ``path``, or for a symlink the file it points to.

    Renaming a new file onto the link itself would turn the link into a regular file and leave its
    target stale. A dangling link gets its target created, as a shell's ``>`` does, but only in a
    folder that exists: a run does not make folders a link points into (FileNotFoundError naming
    ``path``). A link to a read-only file (no write bit for anyone) is replaced itself, as DVC replaces
    its outputs: with ``cache.type`` symlink, DVC links an output to its read-only cache file, which
    must never change. Symlinked folders need nothing: a rename goes through them.
    """
    path = Path(path)
    if not path.is_symlink():
        return path
    final = Path(os.path.realpath(path))
    if final.is_file() and not final.stat().st_mode & 0o222:
        return path
    if not final.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"a symlink to {final}, whose folder does not exist", str(path))
    return final


@contextmanager
def made_folders(*paths: Path) -> Iterator[list[Path]]:
    """Create the missing folders ``paths`` go in; if the block fails, remove the ones made here.

    Yields the folders created, outermost first. On any exit Python sees other than success (an
    error, Ctrl-C, SIGTERM as ``rentprice.logs.Interrupted``) they are removed, deepest first and
    only while empty: a folder that existed before, or that holds anything, stays. Raises OSError
    naming the path when a folder cannot be made (a file where one should be, no permission).
    """
    created: list[Path] = []
    try:
        for path in paths:
            _make_folders(Path(path), created)
        yield created
    except BaseException:
        for folder in reversed(created):
            with suppress(OSError):
                folder.rmdir()
        raise


def _make_folders(path: Path, created: list[Path]) -> None:
    """Make the missing folders above ``path``, outermost first, appending each to ``created``."""
    missing = []
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if folder.is_dir():  # made meanwhile by another process: not ours to remove
                continue
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is a file, not a folder", str(path)) from None
        except OSError as error:
            raise type(error)(error.errno, error.strerror, str(path)) from None
        created.append(folder)


def new_temporary(path: Path) -> Path:
    """Create an empty temporary file to be renamed onto ``path`` later; return its path.

    It is ``<repo>/.tmp/<name>.<pid>.<random>.tmp`` (beside the target, hidden, when the target is
    outside a DVC repository or on another filesystem), and the leftovers of killed writers there
    are removed first. The target's folder must exist (``made_folders``). Raises OSError (its
    ``filename`` the target) when the target is a folder or its folder cannot be written.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        directory = temporary_dir(path)
        remove_leftovers(directory)
        temporary = directory / f"{_own_start(directory, path)}{secrets.token_hex(4)}.tmp"
        # os.open with 0o666 honours the umask, so the output gets ordinary file permissions
        # (tempfile.mkstemp would leave it readable by its owner only).
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:  # named by the target, not by a temporary the user never asked for
        raise type(error)(error.errno, error.strerror, str(path)) from None
    return temporary


def remove_own_temporaries(path: Path) -> None:
    """Remove the temporaries this process made for ``path`` (``new_temporary``) that are still there.

    Found by name (target name, this pid), not by a caller's note of them: a Ctrl-C or SIGTERM can
    land after ``new_temporary`` created a file and before its caller noted the path. Any error is
    ignored: this runs while another error or an interrupt is under way.
    """
    path = Path(path)
    with suppress(OSError):
        directory = temporary_dir(path)
        start = _own_start(directory, path)
        for candidate in directory.iterdir():
            if candidate.name.startswith(start) and _TOKEN.fullmatch(candidate.name.removeprefix(start)):
                candidate.unlink(missing_ok=True)


def _own_start(directory: Path, path: Path) -> str:
    """How the names of this process's temporaries for ``path`` in ``directory`` begin.

    ``<name>.<pid>.`` in the repository's TEMP_DIR; hidden beside the target: ``.<name>.<pid>.``.
    """
    prefix = "" if directory.name == TEMP_DIR else "."
    return f"{prefix}{path.name}.{os.getpid()}."


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
    """Write ``frame`` without its index, atomically (noted by ``rentprice.logs.record_written``)."""
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)
    record_written(path)


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
    """Write pretty, stable JSON (``json_text``), atomically (noted as ``write_parquet`` notes it)."""
    with atomic_path(path) as temporary:
        temporary.write_text(json_text(data), encoding="utf-8")
    record_written(path)


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
