"""Benchmark the drift check of batch scoring: seconds to count 100,000 listings into the profile's bins.

Resamples the raw snapshot (``data/raw/listings.parquet``) to 100,000 listings and times
``DriftMonitor.update`` on them as an Arrow table, as ``stages/predict.py`` calls it per chunk:
typed as Parquet gives them, and as text as CSV gives them. Best of ``--repeats`` runs. Needs the
model (``dvc repro train``). Run from the repository root: ``python bench/drift.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from time import perf_counter

import pandas as pd
import pyarrow as pa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rentprice.drift import DriftMonitor  # noqa: E402
from rentprice.model import load_model  # noqa: E402
from rentprice.schema import FEATURE_COLUMNS  # noqa: E402

ROWS = 100_000


def main() -> None:
    """Print the best time per input kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    profile = load_model(REPO_ROOT / "models" / "model.joblib")["drift_profile"]
    raw = pd.read_parquet(REPO_ROOT / "data" / "raw" / "listings.parquet")
    listings = raw.sample(ROWS, replace=True, random_state=0)[list(FEATURE_COLUMNS)]
    for label, frame in (("typed (Parquet)", listings), ("text (CSV)", listings.astype(str))):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        times = []
        for _ in range(args.repeats):
            monitor = DriftMonitor(profile)
            started = perf_counter()
            monitor.update(table)
            times.append(perf_counter() - started)
        print(f"{label}: {min(times):.3f} s per {ROWS:,} rows, {ROWS / min(times):,.0f} rows/s")


if __name__ == "__main__":
    main()
