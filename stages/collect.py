"""Stage collect: stream the listings table from SQL into the raw Parquet snapshot."""

from __future__ import annotations

# First: its signal set-up (rentprice/__init__.py) must precede the seconds of the other imports.
import rentprice  # noqa: F401

# isort: split

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rentprice.io import atomic_path, read_sql_chunks
from rentprice.logs import run_stage, step
from rentprice.params import load_params
from rentprice.schema import ALIASES, SOURCE_TABLE_COLUMNS, TEXT_COLUMNS, coerce_types, header_key

DB_URL_VARIABLE = "RENTPRICE_DB_URL"
#: The SQL type each source column must have: text columns text, every other one a number.
COLUMN_KINDS = {
    name: "text" if ALIASES[header_key(name)] in TEXT_COLUMNS else "number" for name in SOURCE_TABLE_COLUMNS
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the params file and the output path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--output", type=Path, required=True, help="raw listings Parquet file")
    return parser.parse_args(argv)


def collect(params_path: Path, output: Path) -> None:
    """Read the table named in params (URL from the environment if set) and write it typed.

    The snapshot spells columns as the listing contract does (``constraction_year`` → ``construction_year``).
    """
    params = load_params(params_path).collect
    db_url = os.environ.get(DB_URL_VARIABLE) or params.db_url
    with step("read listings and write snapshot") as facts:
        chunks = read_sql_chunks(db_url, params.table, SOURCE_TABLE_COLUMNS, COLUMN_KINDS)
        facts["rows"] = write_snapshot(chunks, output, f"table {params.table}")
        facts["output"] = output


def write_snapshot(chunks: Iterable[pd.DataFrame], output: Path, source: str) -> int:
    """Type-check each chunk and append it to ``output``, which appears only when all are written.

    Memory holds one chunk at a time. Returns the number of rows; a value that is not a number is a
    DataError naming its row in the whole table.
    """
    rows = 0
    with atomic_path(output) as temporary:
        writer = None
        try:
            for chunk in chunks:
                table = pa.Table.from_pandas(coerce_types(chunk, source, rows), preserve_index=False)
                writer = writer or pq.ParquetWriter(temporary, table.schema)
                writer.write_table(table)
                rows += len(chunk)
        finally:
            if writer is not None:
                writer.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/collect.py`."""
    args = parse_args(argv)
    return run_stage("collect", lambda: collect(args.params, args.output))


if __name__ == "__main__":
    sys.exit(main())
