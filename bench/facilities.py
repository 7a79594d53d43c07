"""Benchmark the facilities encoding: rentprice's FacilitiesEncoder against scikit-learn's CountVectorizer.

Both are fitted on the train split (``data/prepared/train.parquet``) with the same minimum count, then
transform the facilities texts of the raw snapshot resampled to ``--rows`` listings (the shape of a
batch chunk, whose listings repeat few distinct texts). CountVectorizer is configured as the design
review proposed (``analyzer=facility_list``, ``binary=True``, ``min_df`` = the minimum count), and
its sparse output made dense as the model needs it; and the same CountVectorizer on each distinct
text once, as FacilitiesEncoder does. Prints, best of ``--repeats``, the seconds of each, the
ratios, whether the matrices are equal, and what each does when no facility reaches the minimum
count. Exits 1 when the matrices differ. Needs ``dvc repro prepare``.
Run from the repository root: ``python bench/facilities.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rentprice.features import FacilitiesEncoder, facility_list  # noqa: E402
from rentprice.params import load_params  # noqa: E402


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    """The best wall-clock seconds of ``repeats`` calls of ``work``."""
    times = []
    for _ in range(repeats):
        started = perf_counter()
        work()
        times.append(perf_counter() - started)
    return min(times)


def documents(texts: pd.Series) -> list[object]:
    """The texts as CountVectorizer takes them: a missing text as None (it refuses NaN)."""
    return [text if isinstance(text, str) else None for text in texts]


def main() -> int:
    """Print the comparison; 1 when the two encodings differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    min_count = load_params(REPO_ROOT / "params.yaml").train.facilities_min_count
    train = pd.read_parquet(REPO_ROOT / "data" / "prepared" / "train.parquet")["facilities"]
    raw = pd.read_parquet(REPO_ROOT / "data" / "raw" / "listings.parquet")["facilities"]
    texts = raw.sample(args.rows, replace=True, random_state=0).reset_index(drop=True)

    encoder = FacilitiesEncoder(min_count).fit(train.to_frame())
    vectorizer = CountVectorizer(analyzer=facility_list, binary=True, min_df=min_count, dtype=np.float64).fit(
        documents(train)
    )
    docs = documents(texts)
    ours = encoder.transform(texts)
    theirs = vectorizer.transform(docs).toarray()
    same = ours.shape == theirs.shape and bool(np.array_equal(ours, theirs))
    codes, distinct = pd.factorize(texts)
    distinct_docs = [*documents(pd.Series(distinct)), None]  # code -1 (missing) picks the last row
    by_text = vectorizer.transform(distinct_docs).toarray()[codes]
    same_by_text = ours.shape == by_text.shape and bool(np.array_equal(ours, by_text))
    ours_seconds = best_seconds(lambda: encoder.transform(texts), args.repeats)
    theirs_seconds = best_seconds(lambda: vectorizer.transform(docs).toarray(), args.repeats)
    distinct_seconds = best_seconds(
        lambda: vectorizer.transform(distinct_docs).toarray()[pd.factorize(texts)[0]], args.repeats
    )
    counts = CountVectorizer(analyzer=facility_list, binary=True).fit_transform(documents(train))
    unreached = int(counts.sum(axis=0).max()) + 1  # a minimum count that no facility reaches
    try:
        fitted = CountVectorizer(analyzer=facility_list, min_df=unreached).fit(documents(train))
        empty = f"a vocabulary of {len(fitted.vocabulary_)}"
    except ValueError as error:
        empty = f"ValueError: {error}"

    print(f"{args.rows:,} listings, {texts.nunique():,} distinct facilities texts, min count {min_count}")
    print(f"vocabulary: {len(encoder.vocabulary_)} facilities")
    print(f"FacilitiesEncoder.transform: {ours_seconds:.3f} s")
    ratio = theirs_seconds / ours_seconds
    print(f"CountVectorizer.transform + toarray: {theirs_seconds:.3f} s ({ratio:.1f}x)")
    print(f"  same matrix: {same}")
    ratio = distinct_seconds / ours_seconds
    print(f"CountVectorizer on the distinct texts: {distinct_seconds:.3f} s ({ratio:.1f}x)")
    print(f"  same matrix: {same_by_text}")
    print(f"with a minimum count of {unreached}, which no facility reaches:")
    print(f"  CountVectorizer: {empty}")
    print(f"  FacilitiesEncoder: {FacilitiesEncoder(unreached).fit(train.to_frame()).vocabulary_}")
    return 0 if same and same_by_text else 1


if __name__ == "__main__":
    sys.exit(main())
