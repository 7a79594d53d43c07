"""Cleaning, data checks (bounds from params, the listing contract) and the group-aware train/test split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from rentprice.errors import DataError
from rentprice.schema import (
    GROUP,
    SOURCE_COLUMNS,
    coerce_types,
    count_implausible,
    mask_implausible,
    require_columns,
)
from rentprice.scoring import FIELD, REASON, ROW, contract_rejects

EXAMPLES_SHOWN = 3


@dataclass(frozen=True)
class CheckFailure:
    """A broken expectation: which check, how many rows, and a few example values."""

    check: str
    rows: int
    examples: list

    def describe(self) -> str:
        """One readable line for the failure report."""
        return f"{self.check}: {self.rows} row(s), e.g. {self.examples}"


def drop_exact_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop rows identical in every column, keeping the first; relistings that differ stay."""
    return frame.drop_duplicates(keep="first").reset_index(drop=True)


def out_of_bounds(frame: pd.DataFrame, bounds: Mapping[str, Sequence[float]]) -> pd.Series:
    """Mask of rows whose bounded values are missing or outside ``[low, high]``."""
    mask = pd.Series(False, index=frame.index)
    for name, (low, high) in bounds.items():
        mask |= ~frame[name].between(low, high)
    return mask


def bound_failures(frame: pd.DataFrame, bounds: Mapping[str, Sequence[float]]) -> list[CheckFailure]:
    """One CheckFailure per bounded column with missing or out-of-range values."""
    failures = []
    for name, (low, high) in bounds.items():
        bad = frame.loc[~frame[name].between(low, high), name]
        if len(bad):
            examples = bad.head(EXAMPLES_SHOWN).tolist()
            failures.append(CheckFailure(f"{name} within [{low}, {high}]", len(bad), examples))
    return failures


def share_failure(check: str, rows: int, total: int, limit: float) -> list[CheckFailure]:
    """A failure when ``rows`` is more than ``limit`` of ``total``."""
    if total and rows / total > limit:
        return [CheckFailure(f"{check} at most {limit:.0%} of {total} rows", rows, [f"{rows / total:.1%}"])]
    return []


def raise_on_failures(failures: Sequence[CheckFailure], source: str) -> None:
    """Raise a DataError listing every failed check."""
    if failures:
        report = "; ".join(failure.describe() for failure in failures)
        raise DataError(f"{source}: {len(failures)} data check(s) failed: {report}")


def group_split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split so that every row of one address lands on the same side; row order is kept."""
    if frame[GROUP].nunique() < 2:
        raise DataError(f"need at least two distinct {GROUP} values to split, got {frame[GROUP].nunique()}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_index, test_index = next(splitter.split(frame, groups=frame[GROUP]))
    return (
        frame.iloc[sorted(train_index)].reset_index(drop=True),
        frame.iloc[sorted(test_index)].reset_index(drop=True),
    )


def clean_listings(
    raw: pd.DataFrame, checks: Mapping[str, Any], plausible: Mapping[str, Sequence[float]], source: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Type, deduplicate, check and mask placeholders; return the clean rows and a report of what changed.

    Columns are named and typed by the listing contract (``schema.coerce_types``: aliases such as
    ``constraction_year`` accepted, a repeated column refused). Rows outside ``checks.bounds`` are
    dropped, then rows that break the contract's fixed rules (``scoring.contract_rejects``: what
    batch scoring and the service would reject whatever the model), so the model is trained only
    on listings it could score; the report counts both, the latter per field.

    Raises DataError with a readable report when a hard expectation breaks.
    """
    typed = coerce_types(raw, source)
    require_columns(typed, source)
    deduplicated = drop_exact_duplicates(typed)
    invalid = out_of_bounds(deduplicated, checks["bounds"])
    in_bounds = deduplicated[~invalid].reset_index(drop=True)
    broken = contract_rejects(in_bounds)
    kept = in_bounds.drop(index=broken[ROW]).reset_index(drop=True)
    dropped = len(typed) - len(kept)
    failures = share_failure(
        "rows outside bounds", int(invalid.sum()), len(deduplicated), checks["max_out_of_bounds_share"]
    )
    if failures:
        failures += bound_failures(deduplicated, checks["bounds"])
    failures += share_failure("dropped rows", dropped, len(typed), checks["max_dropped_share"])
    if failures and len(broken):
        examples = [f"{field}: {reason}" for field, reason in zip(broken[FIELD], broken[REASON], strict=True)]
        failures.append(CheckFailure("the listing contract", len(broken), examples[:EXAMPLES_SHOWN]))
    if len(kept) < checks["min_rows"]:
        failures.append(CheckFailure(f"at least {checks['min_rows']} usable rows", len(kept), []))
    raise_on_failures(failures, source)
    report = {
        "rows_in": len(typed),
        "duplicates_dropped": len(typed) - len(deduplicated),
        "out_of_bounds_dropped": int(invalid.sum()),
        "contract_dropped": len(broken),
        "contract_dropped_by_field": dict(sorted(broken[FIELD].value_counts().items())),
        "rows_kept": len(kept),
        "addresses": int(kept[GROUP].nunique()),
        "treated_as_missing": count_implausible(kept, plausible),
    }
    return mask_implausible(kept, plausible)[list(SOURCE_COLUMNS)], report
