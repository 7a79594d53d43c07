"""Reading and writing: the SQL source, Parquet and JSON files, always written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from rentprice.errors import DataError


def read_sql_table(db_url: str, table: str, columns: Sequence[str]) -> pd.DataFrame:
    """Read ``columns`` of ``table`` ordered by every column, so the row order never depends on storage.

    A bad URL, an unreachable database, a missing table or a missing column is a one-line DataError.
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
            query = sa.select(*selected).order_by(*selected)
            return pd.read_sql(query, connection)
    except sa.exc.OperationalError as error:
        reason = str(error.orig).splitlines()[0] if error.orig else "cannot connect"
        raise DataError(f"{where}: cannot read the database ({reason})") from None
    finally:
        engine.dispose()


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

    The temporary file is ``<repo>/.tmp/<name>.<pid>.<random>.tmp`` (beside the target, hidden, when
    the target is outside a DVC repository or on another filesystem). It is removed when the block
    fails or the process is interrupted; a file a killed process left (its pid no longer runs) is
    removed by the next atomic write into the same directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = temporary_dir(path)
    remove_leftovers(directory)
    prefix = "" if directory.name == TEMP_DIR else "."
    temporary = directory / f"{prefix}{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 honours the umask, so the output gets ordinary file permissions
    # (tempfile.mkstemp would leave it readable by its owner only).
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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


def write_json(data: Any, path: Path) -> None:
    """Write pretty, stable JSON with a trailing newline, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def file_md5(path: Path) -> str:
    """Hex md5 of a file's bytes (the hash DVC records in ``dvc.lock``)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
