"""Benchmark collect from PostgreSQL: time and peak memory on a large generated table, streamed or not.

Starts a PostgreSQL server from Debian's packages (``apt-get install postgresql``) on 127.0.0.1 in
a temporary directory (as ``nobody`` when run as root: the server refuses root), loads the real
listings from the SQLite source snapshot and grows them on the server to ``--rows`` rows (default
1M; each copy of the listings gets its area shifted by a multiple of 0.01 m², so rows differ). Then,
each in a child process whose peak RSS is read with ``wait4``:

- ``stage``: ``stages/collect.py`` end to end with ``RENTPRICE_DB_URL`` set (chunks of
  ``SQL_CHUNK_ROWS``);
- ``chunk N``: the same read and write with chunks of N rows; N at least ``--rows`` reads the whole
  table in one fetch, as collect did before it streamed.

Prints rows/s and peak RSS per run. Run from the repository root: ``python bench/collect.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rentprice.io import SQL_CHUNK_ROWS, read_sql_chunks  # noqa: E402
from rentprice.schema import SOURCE_TABLE_COLUMNS  # noqa: E402

SOURCE_DB = REPO_ROOT / "data" / "source" / "rent_apartments.sqlite"
TABLE = "rent_apartments"
PASSWORD = "bench-password"
CHUNKS = (10_000, SQL_CHUNK_ROWS, 200_000)


def start_server(home: Path) -> tuple[int, list[str]]:
    """Run initdb and start a server in ``home``; returns its port, the user prefix and pg_ctl."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not binaries:
        sys.exit("PostgreSQL server binaries not found: apt-get install postgresql")
    bin_dir = binaries[-1].parent
    as_user = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("nobody")
        os.chown(home, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    (home / "password").write_text(PASSWORD)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = [*as_user, str(bin_dir / "initdb"), "-D", str(home / "data"), "-U", "bench"]
    subprocess.run(
        [*run, f"--pwfile={home / 'password'}", "--auth=scram-sha-256"], check=True, capture_output=True
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={home} -c fsync=off"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(home / "data")]
    subprocess.run(
        [*pg_ctl, "-l", str(home / "log"), "-o", options, "-w", "start"], check=True, capture_output=True
    )
    return port, pg_ctl


def load(url: str, rows: int) -> None:
    """The source listings, copied on the server until the table has ``rows`` rows."""
    sqlite = sa.create_engine(f"sqlite:///{SOURCE_DB}")
    with sqlite.connect() as connection:
        source = sa.Table(TABLE, sa.MetaData(), autoload_with=connection)
        records = [dict(row._mapping) for row in connection.execute(sa.select(source))]
    sqlite.dispose()
    kinds = {sa.REAL: "DOUBLE PRECISION", sa.INTEGER: "INTEGER"}
    columns = ", ".join(f"{c.name} {kinds.get(type(c.type), 'TEXT')}" for c in source.columns)
    names = ", ".join(c.name for c in source.columns)
    shifted = names.replace("area", "area + copy * 0.01 AS area", 1)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE seed ({columns})")
        connection.execute(sa.Table("seed", sa.MetaData(), autoload_with=connection).insert(), records)
        copies = -(-rows // len(records))
        connection.exec_driver_sql(
            f"CREATE TABLE {TABLE} AS SELECT {shifted} FROM seed, generate_series(0, {copies - 1}) AS copy "
            f"LIMIT {rows}"
        )
    engine.dispose()


def child(url: str, chunk_rows: int, output: Path) -> None:
    """In a child process: read the table in chunks of ``chunk_rows`` and write the snapshot."""
    spec_path = REPO_ROOT / "stages" / "collect.py"
    namespace: dict = {"__name__": "bench_collect_stage"}
    exec(compile(spec_path.read_text(encoding="utf-8"), str(spec_path), "exec"), namespace)
    chunks = read_sql_chunks(url, TABLE, SOURCE_TABLE_COLUMNS, namespace["COLUMN_KINDS"], chunk_rows)
    namespace["write_snapshot"](chunks, output, TABLE)


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    started = perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command}: failed\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    """Run the benchmark and print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=3, metavar=("URL", "CHUNK_ROWS", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), Path(args.child[2]))
        return
    home = Path(tempfile.mkdtemp(prefix="rentprice-bench-pg-"))
    port, pg_ctl = start_server(home)
    work = Path(tempfile.mkdtemp(prefix="rentprice-bench-collect-"))
    try:
        url = f"postgresql+psycopg://bench:{PASSWORD}@127.0.0.1:{port}/postgres"
        started = perf_counter()
        load(url, args.rows)
        print(f"loaded {args.rows} rows into PostgreSQL in {perf_counter() - started:.1f} s")
        print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RENTPRICE_DB_URL": url}
        stage = [sys.executable, "stages/collect.py", "--output", str(work / "stage.parquet")]
        runs = [(f"stage (chunks of {SQL_CHUNK_ROWS})", stage)]
        for chunk_rows in (*CHUNKS, args.rows):
            command = [sys.executable, __file__, "--child", url, str(chunk_rows), str(work / "chunk.parquet")]
            label = "whole table in one fetch" if chunk_rows >= args.rows else f"chunks of {chunk_rows}"
            runs.append((label, command))
        for label, command in runs:
            seconds, peak = measure(command, env)
            rate = args.rows / seconds
            print(f"{label:>28}: {seconds:6.1f} s, {rate:9,.0f} rows/s, peak RSS {peak:7,.0f} MiB")
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
