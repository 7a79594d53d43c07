"""Judging and scoring new listings: one set of rules for the batch stage and the prediction service.

``validate_listings`` splits a frame into rows the model can score and rejected rows (first bad
field and the reason); ``score`` predicts rents and their ranges for the scorable rows. Both are
pure and work on a frame of any size, so a listing is judged identically in a 10M-row batch and
in a one-row request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ruamel.yaml import YAMLError
from sklearn.pipeline import Pipeline

from rentprice.errors import ModelError
from rentprice.features import (
    ENERGY_UNKNOWN,
    district_key,
    energy_rank,
    factorize,
    garden_area,
    map_distinct,
    neighborhood_key,
    yes_no,
)
from rentprice.io import file_md5, read_yaml
from rentprice.model import load_model, price_range
from rentprice.schema import (
    ALIASES,
    FEATURE_COLUMNS,
    FIELDS,
    GARDEN_M2,
    MAY_BE_UNKNOWN,
    NUMERIC_COLUMNS,
    RANGED_FEATURES,
    YES_NO_COLUMNS,
    canonical_columns,
    header_key,
    mask_implausible,
    postcode_digits,
    postcode_text,
    require_columns,
    text_key,
)

ROW, FIELD, REASON = "row", "field", "reason"
PREDICTION = "predicted_rent"
#: The bounds of the price range around PREDICTION (``score``).
LOW, HIGH = "predicted_rent_low", "predicted_rent_high"
#: Rents are rounded to cents: finer digits are noise.
PRICE_DECIMALS = 2
SHOWN_CHARS = 40
DVC_LOCK = Path("dvc.lock")
#: FEATURE_COLUMNS as an object Index: selecting columns with it skips pandas' inference of a str
#: Index from a label list, and a frame whose labels are an object Index (the service's) keeps them.
FEATURE_LABELS = pd.Index(FEATURE_COLUMNS, dtype=object)
#: The model-file key of the trained ranges (``trained_ranges``).
RANGES = "ranges"

Model = Mapping[str, Any] | Pipeline


@dataclass(frozen=True)
class ValidationResult:
    """What ``validate_listings`` found.

    ``scorable``: the feature columns of the rows that can be scored, numbers as float64 and
    unknown values as NaN, indexed by input row number. ``rejects``: one row per rejected input
    row with columns ``row``, ``field`` (the first bad field in schema order) and ``reason``.
    ``treated_as_unknown``: per field in MAY_BE_UNKNOWN, how many scorable rows have a value the
    model treats as unknown.
    """

    scorable: pd.DataFrame
    rejects: pd.DataFrame
    treated_as_unknown: dict[str, int]


def pipeline_of(model: Model) -> Pipeline:
    """The fitted pipeline of a model bundle (``load_model``'s dict) or the pipeline itself."""
    return model["pipeline"] if isinstance(model, Mapping) else model


def ranges_of(model: Model) -> Mapping[str, list[float]]:
    """The ``[min, max]`` per numeric feature the model was trained on; a ModelError if not recorded."""
    ranges = model.get(RANGES) if isinstance(model, Mapping) else None
    if ranges is None:
        raise ModelError(
            "the model file records no trained ranges, so it cannot tell which listings it can judge; "
            "retrain it with `dvc repro train`"
        )
    return ranges


def trained_ranges(pipeline: Pipeline, frame: pd.DataFrame) -> dict[str, list[float]]:
    """``[min, max]`` of each RANGED_FEATURES value over the training rows ``frame``, missing ignored.

    Values are taken as the model learns them: after the pipeline's ``clean`` step (placeholders
    such as year 1005 become missing), the garden as its m². Stored in the model file (``ranges``):
    a forest predicts the same rent for every value beyond the largest (or smallest) it has seen,
    so a listing outside these ranges is one it cannot judge. A column without values has no range.
    """
    clean = canonical_columns(frame, "training rows")
    clean = mask_implausible(clean[list(NUMERIC_COLUMNS)], _plausible(pipeline))
    values = {name: clean[name].to_numpy(dtype="float64") for name in NUMERIC_COLUMNS}
    values[GARDEN_M2] = map_distinct(frame["garden"], garden_area)
    ranges = {}
    for name in RANGED_FEATURES:
        present = values[name][~np.isnan(values[name])]
        if len(present):
            ranges[name] = [float(present.min()), float(present.max())]
    return ranges


def validate_listings(frame: pd.DataFrame, model: Model, first_row: int = 0) -> ValidationResult:
    """Judge every row of ``frame``: scorable, or rejected with its first bad field and the reason.

    Column names are made canonical (``schema.canonical_columns``: spacing, case, aliases). Row
    numbers are ``first_row`` plus the position in ``frame`` (pass the offset of a chunk).
    ``model`` (a model file's bundle) supplies what is learned: placeholder bounds, known
    locations and the trained ranges; a number below its placeholder bounds is unknown, a number
    or garden size otherwise outside its trained range is rejected. Raises DataError when a
    feature column is missing altogether or repeated, and ModelError when the model file records
    no ranges.
    """
    pipeline = pipeline_of(model)
    ranges = ranges_of(model)
    scorable, rejects = _judge(frame, ranges, _plausible(pipeline), first_row)
    return ValidationResult(scorable, rejects, _count_unknown(scorable, pipeline))


def contract_rejects(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` that break the listing contract's fixed rules, as ROW, FIELD, REASON.

    The rules of ``validate_listings`` that need no model: a required field missing, a number that
    is not one or is below its minimum, a yes/no, garden, energy or postcode value that is not one. Rows are
    numbered by position. The prepare stage drops these rows, so the model is trained only on
    listings it could score.
    """
    return _judge(frame, {}, {}, 0)[1]


def _judge(
    frame: pd.DataFrame,
    ranges: Mapping[str, list[float]],
    plausible: Mapping[str, list[float]],
    first_row: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scorable rows (numbers parsed) and the rejects of ``frame`` (see ``validate_listings``)."""
    frame = canonical_columns(frame, "listings")
    require_columns(frame, "listings", FEATURE_COLUMNS)
    rows = np.arange(first_row, first_row + len(frame), dtype="int64")
    listings = frame[FEATURE_LABELS]
    numbers, reasons = {}, {}
    plausible = {ALIASES.get(header_key(name), name): bounds for name, bounds in plausible.items()}
    for name in NUMERIC_COLUMNS:
        numbers[name], not_a_number = _numbers(listings[name])
        as_given = _number_rule(name)(numbers[name])  # year 17.9999 is a typo, not a placeholder
        if name in plausible:  # a placeholder such as year 1005 is unknown, not out of range
            # only below the plausible range: sources write unknown as a small number (0, 1005), while a
            # number above it (year 2205, 1e308) is a typo or a wrong column, judged by the trained range
            low = plausible[name][0]
            numbers[name] = np.where(numbers[name] < low, np.nan, numbers[name])
        reasons[name] = _first_reason(
            not_a_number,
            as_given,
            _number_rule(name)(numbers[name]),
            _range_rule(name, ranges)(numbers[name]),
        )
    for name in YES_NO_COLUMNS:
        reasons[name] = map_distinct(listings[name], _judge_yes_no, object)
    reasons["garden"] = map_distinct(
        listings["garden"], partial(_judge_garden, ranges.get(GARDEN_M2)), object
    )
    reasons["energy"] = map_distinct(listings["energy"], _judge_energy, object)
    reasons["zip"] = map_distinct(listings["zip"], _judge_zip, object)

    field = np.full(len(frame), None, dtype=object)
    reason = np.full(len(frame), None, dtype=object)
    for name in FEATURE_COLUMNS:
        if name in reasons:
            new = pd.notna(reasons[name]) & pd.isna(field)
            field[new], reason[new] = name, reasons[name][new]
    keep = pd.isna(field)
    scorable = (
        listings.take(np.flatnonzero(keep))
        .set_axis(rows[keep])
        .assign(**{name: values[keep] for name, values in numbers.items()})
    )
    rejects = pd.DataFrame(
        {
            ROW: rows[~keep],
            FIELD: pd.array(field[~keep], dtype="str"),
            REASON: pd.array(reason[~keep], dtype="str"),
        }
    )
    return scorable, rejects


def score(model: Mapping[str, Any], scorable: pd.DataFrame, level: float | None = None) -> pd.DataFrame:
    """Predicted monthly rent and its range in € (rounded to cents) for each row of ``scorable``.

    ``model``: a model file's bundle (``load_model``); ``scorable``: ``ValidationResult.scorable``
    or any frame with the FEATURE_COLUMNS. Returns a frame on ``scorable``'s index with columns
    PREDICTION, LOW and HIGH: the pipeline's own ``predict``, and the split-conformal range at
    ``level`` (default: the level the model was calibrated for, params ``train.range_level``).
    The one inference path of batch scoring, the service and the evaluate stage.
    """
    if scorable.empty:
        rent = np.empty(0)
    else:
        rent = np.asarray(model["pipeline"].predict(scorable[FEATURE_LABELS]), dtype=float)
    low, high = price_range(rent, model["range"], level)
    return pd.DataFrame(
        {
            name: np.round(values, PRICE_DECIMALS)
            for name, values in ((PREDICTION, rent), (LOW, low), (HIGH, high))
        },
        index=scorable.index,
    )


def load_scoring_model(path: Path, lock: Path = DVC_LOCK) -> dict[str, Any]:
    """Load a model file for scoring: the pipeline's own model must match its md5 in ``lock``.

    A model file is a pickle, i.e. code: the md5 is checked before unpickling, and other model
    files must come from a trusted remote. Any problem is a one-line ModelError.
    """
    path = Path(path)
    expected = locked_md5(path, lock) if path.is_file() else None
    if expected is not None and file_md5(path) != expected:
        raise ModelError(
            f"{path}: md5 differs from {lock} (a stale or edited model); "
            f"run `dvc checkout {path}` or `dvc repro train`"
        )
    return load_model(path)


def lock_stages(lock: Path) -> dict[str, Any]:
    """The ``stages`` of dvc.lock ``lock``; empty when the file does not exist.

    A file that is not a readable dvc.lock is a ModelError.
    """
    if not lock.is_file():
        return {}
    try:
        stages = (read_yaml(lock) or {}).get("stages") or {}
    except (OSError, UnicodeDecodeError, YAMLError, AttributeError):
        raise ModelError(f"{lock}: not a readable dvc.lock") from None
    if not isinstance(stages, dict):
        raise ModelError(f"{lock}: not a readable dvc.lock")
    return stages


def locked_md5(path: Path, lock: Path) -> str | None:
    """The md5 ``lock`` records for ``path`` as a stage output, or None when it does not list it."""
    stages = lock_stages(lock)
    target = Path(path).resolve()
    for stage in stages.values():
        for out in stage.get("outs", []):
            if (lock.parent / out["path"]).resolve() == target:
                return out.get("md5")
    return None


def _shown(value: object) -> str:
    """A value as quoted in a reason, cut to SHOWN_CHARS."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"


def _is_blank(value: object) -> bool:
    return (isinstance(value, str) and not value.strip()) or (not isinstance(value, str) and pd.isna(value))


def _as_numbers(uniques: Sequence[Any]) -> np.ndarray:
    """Distinct values as float64: numbers and number texts (spaces ignored); NaN for anything else.

    Booleans are not numbers here (pandas would read True as 1). Vectorised: a chunk of a batch
    has tens of thousands of distinct values.
    """
    values = np.asarray(uniques, dtype=object if not isinstance(uniques, np.ndarray) else None)
    if values.dtype != object:
        return values.astype("float64") if values.dtype.kind in "iuf" else np.full(len(values), np.nan)
    values = np.array(
        [
            np.nan
            if isinstance(value, bool | np.bool_)
            else "".join(value.split())
            if isinstance(value, str)
            else value
            for value in values
        ],
        dtype=object,
    )
    with np.errstate(all="ignore"):
        return pd.to_numeric(values, errors="coerce").astype("float64")


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (blank → NaN) and, per row, why a present value is not a finite number."""
    codes, uniques = factorize(values)
    numbers = _as_numbers(uniques)
    bad = ~np.isfinite(numbers) & np.array([not _is_blank(value) for value in uniques], dtype=bool)
    reasons = [
        f"{_shown(value)} is not a number" if wrong else None
        for value, wrong in zip(uniques, bad, strict=True)
    ]
    # code -1 (missing) picks the appended last entry
    numbers = np.append(np.where(bad, np.nan, numbers), np.nan)
    return numbers[codes], np.array([*reasons, None], dtype=object)[codes]


def _number_rule(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The per-row reasons a parsed number of column ``name`` breaks the contract's fixed rules."""
    spec = FIELDS[name]

    def rule(numbers: np.ndarray) -> np.ndarray:
        reasons = np.full(len(numbers), None, dtype=object)
        if spec.required:
            reasons[np.isnan(numbers)] = "missing"
        if spec.whole:  # a count or a year: 2.5 rooms is a typo, not a listing to price
            bad = np.isfinite(numbers) & (numbers != np.floor(numbers))
            reasons[bad] = [f"must be a whole number, got {number:g}" for number in numbers[bad]]
        if spec.exclusive_minimum is not None:
            bad, wanted = numbers <= spec.exclusive_minimum, _above(spec.exclusive_minimum, "positive")
        elif spec.minimum is not None:
            bad, wanted = numbers < spec.minimum, _above(spec.minimum, "not negative", "at least")
        else:
            return reasons
        reasons[bad] = [f"{wanted}, got {number:g}" for number in numbers[bad]]
        return reasons

    return rule


def _above(bound: float, at_zero: str, verb: str = "above") -> str:
    """``must be positive`` / ``must not be negative`` for a bound of 0, else ``must be above 5``."""
    if bound == 0:
        return f"must {'not be negative' if at_zero == 'not negative' else 'be positive'}"
    return f"must be {verb} {bound:g}"


def _outside(value: float, name: str, low: float, high: float) -> str:
    unit = FIELDS[name].unit if name in FIELDS else "m²"
    unit = f" {unit}" if unit and unit != "year" else ""
    return f"{value:g}{unit} is outside the range the model was trained on ({low:g}–{high:g}{unit})"  # noqa: RUF001


def _range_rule(name: str, ranges: Mapping[str, list[float]]) -> Callable[[np.ndarray], np.ndarray]:
    """The per-row reasons a parsed number of column ``name`` is outside its trained range."""

    def rule(numbers: np.ndarray) -> np.ndarray:
        reasons = np.full(len(numbers), None, dtype=object)
        if name in ranges:
            low, high = ranges[name]
            bad = (numbers < low) | (numbers > high)
            reasons[bad] = [_outside(number, name, low, high) for number in numbers[bad]]
        return reasons

    return rule


def _first_reason(*candidates: np.ndarray) -> np.ndarray:
    """Per row, the first reason among ``candidates`` that is not None."""
    first = candidates[0]
    for other in candidates[1:]:
        first = np.where(pd.notna(first), first, other)
    return first


def _judge_yes_no(value: object) -> str | None:
    if _is_blank(value):
        return "missing"
    return f"{_shown(value)} is not yes or no" if np.isnan(yes_no(value)) else None


def _judge_garden(trained: list[float] | None, value: object) -> str | None:
    if _is_blank(value):
        return "missing"
    size = garden_area(value)
    if np.isnan(size):
        return f"{_shown(value)} is not a garden text like 'Not present' or 'Present (47 m²)'"
    if trained is not None and not trained[0] <= size <= trained[1]:
        return f"garden {_outside(size, GARDEN_M2, *trained)}"
    return None


def _energy_unknown(value: object) -> bool:
    return _is_blank(value) or (isinstance(value, str) and text_key(value) in ENERGY_UNKNOWN)


def _judge_energy(value: object) -> str | None:
    if _energy_unknown(value) or not np.isnan(energy_rank(value)):
        return None
    return f"{_shown(value)} is not an energy label (G to A+++++, or None)"


def _judge_zip(value: object) -> str | None:
    """None for a postcode or a blank (scored as unknown); else why ``value`` is not a postcode."""
    blank = _is_blank(value) or (isinstance(value, str) and not text_key(value))
    if blank or postcode_digits(value) is not None:
        return None
    shown = _shown(postcode_text(value) or value)  # a number as read: 10111 in JSON and in a CSV alike
    return f"{shown} is not a Dutch postcode (1234 AB or 1234, 1000 to 9999)"


def _plausible(pipeline: Pipeline) -> Mapping[str, list[float]]:
    """The bounds outside which the model treats a number as a placeholder for unknown."""
    clean = pipeline.named_steps.get("clean")
    return getattr(clean, "bounds", None) or {}


def known_locations(pipeline: Pipeline) -> tuple[set[str], set[str]] | None:
    """Postcode districts and neighborhoods the model's target encoding learned, if it has one."""
    location = getattr(pipeline.named_steps.get("features"), "location_", None)
    if location is None:
        return None
    districts, neighborhoods = location.categories_
    return set(districts), set(neighborhoods)


def _count_unknown(scorable: pd.DataFrame, pipeline: Pipeline) -> dict[str, int]:
    """Per MAY_BE_UNKNOWN field, the scorable rows whose value the model treats as unknown."""
    counts = dict.fromkeys(MAY_BE_UNKNOWN, 0)
    counts["construction_year"] = int(scorable["construction_year"].isna().sum())
    counts["energy"] = int(map_distinct(scorable["energy"], _energy_unknown, bool).sum())
    known = known_locations(pipeline)
    if known is not None:
        districts, neighborhoods = known
        unseen_zip = map_distinct(scorable["zip"], lambda value: district_key(value) not in districts, bool)
        unseen_neighborhood = map_distinct(
            scorable["neighborhood"], lambda value: neighborhood_key(value) not in neighborhoods, bool
        )
        counts["zip"], counts["neighborhood"] = int(unseen_zip.sum()), int(unseen_neighborhood.sum())
    return counts
