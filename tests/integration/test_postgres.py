"""collect against a real PostgreSQL server on loopback, started from Debian's packages for this module.

The server runs as an unprivileged user (it refuses root) in a temporary directory, with password
authentication and an ICU collation whose text order differs from SQLite's. Where the server
binaries are missing the tests skip, except on CI (CI=true), where they fail: .ci/run installs them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from rentprice.io import read_sql_chunks, read_yaml
from rentprice.schema import SOURCE_TABLE_COLUMNS
from tests.support import REPO_ROOT, SOURCE_DB

pytestmark = pytest.mark.slow

TABLE = "rent_apartments"
PASSWORD = "s3cret-Pa55word"
UNPRIVILEGED = "nobody"
#: Rows the server's en-US collation orders otherwise than code points do ('B' < 'a' < 'b').
ORDERING_ROWS = [("b", 1.0), ("B", 2.0), ("a", 3.0), ("_a", 4.0), ("a", None), ("é", 5.0), ("e", 6.0)]
MISSING_SERVER = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"


@dataclass(frozen=True)
class Server:
    port: int

    def url(self, user: str = "rentprice", password: str = PASSWORD, database: str = "listings") -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"


def server_binaries() -> Path | None:
    """The newest Debian PostgreSQL bin directory, or the one on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{MISSING_SERVER} (.ci/run must install it)")
        pytest.skip(MISSING_SERVER)
    home = Path(tempfile.mkdtemp(prefix="rentprice-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        account = pwd.getpwnam(UNPRIVILEGED)
        os.chown(home, account.pw_uid, account.pw_gid)  # a 0700 directory only it can read
        as_user = ["runuser", "-u", UNPRIVILEGED, "--"]
    (home / "password").write_text(PASSWORD)
    port = free_port()
    data = home / "data"

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, cwd=home)

    run(
        str(binaries / "initdb"), "-D", str(data), "-U", "rentprice", f"--pwfile={home / 'password'}",
        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
        "--locale-provider=icu", "--icu-locale=en-US",
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={home} -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-o", options, "-w", "start")
    try:
        load_source(Server(port))
        yield Server(port)
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=home,
        )
        shutil.rmtree(home, ignore_errors=True)


def load_source(server: Server) -> None:
    """Copy the SQLite source table into a new database, plus the bad tables the tests read."""
    admin = sa.create_engine(server.url(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("CREATE DATABASE listings")
        connection.exec_driver_sql(f"CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'")
    admin.dispose()
    sqlite = sa.create_engine(f"sqlite:///{SOURCE_DB}")
    with sqlite.connect() as connection:
        source = sa.Table(TABLE, sa.MetaData(), autoload_with=connection)
        rows = [dict(row._mapping) for row in connection.execute(sa.select(source))]
    sqlite.dispose()
    metadata = sa.MetaData()
    # SQLite's REAL is 8 bytes: PostgreSQL's REAL is 4, so DOUBLE PRECISION keeps every value
    postgres_type = {sa.REAL: sa.Double}
    tables = {
        name: sa.Table(
            name,
            metadata,
            *[
                sa.Column(column.name, postgres_type.get(type(column.type), type(column.type))())
                if not isinstance(column.type, sa.String)
                else sa.Column(column.name, sa.Text)  # SQLite ignores VARCHAR lengths; the data exceeds some
                for column in source.columns
            ],
        )
        for name in (TABLE, "empty", "secret")
    }
    wrong = [sa.Column(c.name, sa.Text if c.name == "area" else c.type) for c in tables[TABLE].columns]
    tables["wrong_type"] = sa.Table("wrong_type", metadata, *wrong)
    engine = sa.create_engine(server.url())
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(tables[TABLE].insert(), rows)
        connection.execute(tables["secret"].insert(), rows[:10])
        connection.execute(tables["wrong_type"].insert(), [{**row, "area": str(row["area"])} for row in rows])
        connection.exec_driver_sql("GRANT SELECT ON rent_apartments, empty, wrong_type TO reader")
        connection.exec_driver_sql("CREATE TABLE ordering (name TEXT, area DOUBLE PRECISION)")
        connection.exec_driver_sql("INSERT INTO ordering VALUES (%s, %s)", ORDERING_ROWS)
        # valid sources of other declared types: domains over numbers and text, an enum of labels
        connection.exec_driver_sql("CREATE SCHEMA elsewhere")
        connection.exec_driver_sql(f"CREATE TABLE elsewhere.{TABLE} AS SELECT * FROM {TABLE}")
        connection.exec_driver_sql(f"CREATE VIEW listings_view AS SELECT * FROM {TABLE}")
        for name in ("domain_typed", "enum_typed", "point_typed"):
            connection.exec_driver_sql(f"CREATE TABLE {name} AS SELECT * FROM {TABLE}")
        connection.exec_driver_sql("CREATE DOMAIN square_metres AS DOUBLE PRECISION CHECK (VALUE > 0)")
        connection.exec_driver_sql("CREATE DOMAIN postcode AS TEXT")
        connection.exec_driver_sql("ALTER TABLE domain_typed ALTER area TYPE square_metres")
        connection.exec_driver_sql("ALTER TABLE domain_typed ALTER zip TYPE postcode")
        labels = sorted({row["energy"] for row in rows if row["energy"] is not None}, reverse=True)
        quoted = ", ".join("'" + label.replace("'", "''") + "'" for label in labels)
        connection.exec_driver_sql(f"CREATE TYPE energy_label AS ENUM ({quoted})")
        connection.exec_driver_sql(
            "ALTER TABLE enum_typed ALTER energy TYPE energy_label USING energy::energy_label"
        )
        connection.exec_driver_sql("ALTER TABLE point_typed ALTER area TYPE point USING point(area, 0)")
    engine.dispose()


def collect(workdir: Path, db_url: str | None, table: str = TABLE) -> subprocess.CompletedProcess:
    """Run the collect stage in ``workdir``: SQLite source from params, ``db_url`` from the environment."""
    workdir.mkdir(parents=True, exist_ok=True)
    params = read_yaml(REPO_ROOT / "params.yaml")
    params["collect"] |= {"db_url": f"sqlite:///{SOURCE_DB}", "table": table}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RENTPRICE_DB_URL", None)
    if db_url is not None:
        env["RENTPRICE_DB_URL"] = db_url
    command = [sys.executable, str(REPO_ROOT / "stages" / "collect.py"), "--output", "raw.parquet"]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    "table", [TABLE, "domain_typed", "enum_typed", f"elsewhere.{TABLE}", "listings_view"]
)
def test_postgres_snapshot_is_identical_to_the_sqlite_one(server, tmp_path, table):
    """Also from domains over numbers and text, an enum (in an order unlike the text's), another
    schema and a view."""
    from_sqlite = collect(tmp_path / "sqlite", None)
    from_postgres = collect(tmp_path / "postgres", server.url(), table)
    assert from_sqlite.returncode == 0, from_sqlite.stderr
    assert from_postgres.returncode == 0, from_postgres.stderr
    expected = pq.read_table(tmp_path / "sqlite" / "raw.parquet")
    actual = pq.read_table(tmp_path / "postgres" / "raw.parquet")
    assert actual.schema.equals(expected.schema)
    pd.testing.assert_frame_equal(actual.to_pandas(), expected.to_pandas(), check_exact=True)
    assert PASSWORD not in from_postgres.stderr
    assert f"rows={expected.num_rows}" in from_postgres.stderr


def test_postgres_streams_in_chunks_in_the_sqlite_order(server):
    chunks = list(read_sql_chunks(server.url(), TABLE, SOURCE_TABLE_COLUMNS, chunk_rows=100))
    expected = pd.concat(
        read_sql_chunks(f"sqlite:///{SOURCE_DB}", TABLE, SOURCE_TABLE_COLUMNS), ignore_index=True
    )
    assert len(chunks) == -(-len(expected) // 100) and all(len(chunk) <= 100 for chunk in chunks)
    actual = pd.concat(chunks, ignore_index=True)
    # the driver's own types differ (e.g. NULL integers); collect's coerce_types makes them equal
    for name in SOURCE_TABLE_COLUMNS:
        assert actual[name].astype(str).tolist() == expected[name].astype(str).tolist(), name


def test_postgres_orders_text_by_code_point_and_missing_first_as_sqlite_does(server):
    frame = pd.concat(read_sql_chunks(server.url(), "ordering", ["name", "area"]), ignore_index=True)
    expected = sorted(ORDERING_ROWS, key=lambda row: (row[0], row[1] is not None, row[1] or 0))
    assert frame["name"].tolist() == [name for name, _ in expected]
    assert frame["area"].isna().tolist() == [area is None for _, area in expected]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("unreachable", "cannot read the database (connection failed"),
        ("wrong password", "cannot read the database (connection failed"),
        ("unknown user", "cannot read the database (connection failed"),
        ("missing table", "table 'flats' not found"),
        ("wrong type", "table 'wrong_type': column area is TEXT, expected number"),
        ("unknown type", "table 'point_typed': column area is point, expected number"),
        ("password in the query", "cannot read the database (connection failed"),
        ("empty table", "table 'empty' has no rows"),
        ("no permission", "cannot read the database (permission denied for table secret)"),
    ],
)
def test_bad_postgres_source_is_one_line_exit_2_and_no_snapshot(server, tmp_path, source, message):
    wrong_password = "Wr0ng-Pa55word"
    url, table = {
        "unreachable": (Server(free_port()).url(), TABLE),
        "wrong password": (server.url(password=wrong_password), TABLE),
        "unknown user": (server.url(user="nobody_here", password=wrong_password), TABLE),
        "missing table": (server.url(), "flats"),
        "wrong type": (server.url(), "wrong_type"),
        "unknown type": (server.url(), "point_typed"),
        "password in the query": (
            server.url(password="").replace("rentprice:@", "rentprice@") + f"?password={wrong_password}",
            TABLE,
        ),
        "empty table": (server.url(), "empty"),
        "no permission": (server.url(user="reader"), "secret"),
    }[source]
    result = collect(tmp_path, url, table)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    log = (tmp_path / "logs" / "collect.log").read_text(encoding="utf-8")
    for secret in (PASSWORD, wrong_password):
        assert secret not in result.stderr and secret not in log
    assert not [path for path in tmp_path.rglob("*") if "parquet" in path.name]
