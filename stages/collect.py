"""Stage collect: read the listings table from SQL and write the raw Parquet snapshot."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rentprice.io import read_sql_table, write_parquet
from rentprice.logs import run_stage, step
from rentprice.params import load_params
from rentprice.schema import SOURCE_TABLE_COLUMNS, coerce_types

DB_URL_VARIABLE = "RENTPRICE_DB_URL"


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
    params = load_params(params_path)["collect"]
    db_url = os.environ.get(DB_URL_VARIABLE) or params["db_url"]
    with step("read listings") as facts:
        frame = read_sql_table(db_url, params["table"], SOURCE_TABLE_COLUMNS)
        facts["rows"] = len(frame)
    with step("check types and write snapshot") as facts:
        write_parquet(coerce_types(frame, f"table {params['table']}"), output)
        facts["output"] = output


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/collect.py`."""
    args = parse_args(argv)
    return run_stage("collect", lambda: collect(args.params, args.output))


if __name__ == "__main__":
    sys.exit(main())
