"""Data drift: whether the listings being scored are like the ones the model was trained on.

At training, ``training_profile`` summarises the training features in a few kilobytes stored in
the model file: per number, the decile edges and the share of training rows in each bin between
them; per category, the share of each frequent category. At scoring, ``count_bins`` puts the
listings of each chunk into the same bins (counts add up, so a stream of chunks costs no more
memory than one), and ``drift_summary`` compares the scored shares with the training shares.

The statistic is the population stability index (PSI) of each feature,
``PSI = Σ (a_i - e_i) * ln(a_i / e_i)`` over bins with actual shares ``a`` and expected
(training) shares ``e``: the symmetric Kullback-Leibler (Jeffreys) divergence of the two binned
distributions (Siddiqi, *Credit Risk Scorecards*, 2006; Yurdakul, *Statistical properties of
the population stability index*, 2018). The usual reading is < 0.1 stable, 0.1 to 0.25 some shift,
> 0.25 a major shift; the thresholds are params ``drift.psi_warn`` and ``drift.psi_alert``. A
missing value is a bin of its own, and so is a category never seen in training ("unseen").

Small batches: both sides' shares are smoothed by half a count per bin (``smoothed_shares``), so an
empty bin stays finite without dominating the sum, and a feature is judged only above its sampling
noise: Yurdakul shows that for a batch of ``n`` rows drawn from the ``N`` training rows, PSI is
distributed about as ``χ²(B - 1) · (1/n + 1/N)`` over ``B`` bins, so a PSI under the
NOISE_QUANTILE of that distribution (``noise_floor``) is no evidence of drift. The district profile
of the 1,543 source listings has 33 bins holding training rows: its noise floor is a PSI of 0.30 at
200 rows, 0.09 at 1,000 and 0.05 at 5,000.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import rel_entr
from scipy.stats import chi2

from rentprice.features import (
    LOCATION_UNKNOWN,
    district_key,
    energy_rank,
    map_distinct,
    neighborhood_key,
    yes_no,
)
from rentprice.schema import ENERGY_LABELS, NUMERIC_COLUMNS, YES_NO_COLUMNS, mask_implausible

#: Quantiles whose values bound the bins of a number: deciles.
QUANTILES = tuple(np.linspace(0.1, 0.9, 9).round(2))
#: A category with a smaller training share shares the bin "other" with the other rare ones.
RARE_SHARE = 0.01
#: Counts added to every bin before shares are taken: the Jeffreys (Krichevsky-Trofimov) estimate.
SMOOTHING = 0.5
#: A feature's PSI counts as drift only above this quantile of its distribution under no drift.
NOISE_QUANTILE = 0.99
MISSING, OTHER, UNSEEN = "missing", "other", "unseen"
#: Digits kept in the summary: enough to compare batches, stable across platforms.
DIGITS = 4
VERDICTS = ("no drift", "drift warning", "drift alert")
NO_PROFILE = "no training profile in the model file (retrain it with `dvc repro train`)"
#: Thresholds when none are given (params ``drift`` overrides them): the usual PSI reading, and
#: a batch size at which the PSI of a resampled training set stays well under ``psi_warn``.
DEFAULT_THRESHOLDS = {"psi_warn": 0.1, "psi_alert": 0.25, "min_rows": 200}
#: The listing columns the profile reads.
PROFILED_COLUMNS: tuple[str, ...] = (*NUMERIC_COLUMNS, *YES_NO_COLUMNS, "energy", "zip", "neighborhood")


def _yes_no_key(value: object) -> str | None:
    return {1.0: "yes", 0.0: "no"}.get(yes_no(value))


def _energy_key(value: object) -> str:
    """The label as ENERGY_LABELS spells it (``a +`` is ``A+``), ``unknown`` for none."""
    rank = energy_rank(value)
    return "unknown" if np.isnan(rank) else ENERGY_LABELS[int(rank)]


def _location(key: Callable[[object], str]) -> Callable[[object], str | None]:
    """A location key with the model's LOCATION_UNKNOWN (a missing or unreadable value) as missing."""

    def category(value: object) -> str | None:
        found = key(value)
        return None if found == LOCATION_UNKNOWN else found

    return category


#: Per categorical feature, the listing column it reads and the category of a value (None: missing).
#: The categories are the ones the model sees: yes/no, the energy label (``unknown`` for none), the
#: postcode district (``1071``) and the neighborhood; a listing without a readable postcode or
#: neighborhood counts as missing, not as a category never seen in training.
CATEGORIES: dict[str, tuple[str, Callable[[object], str | None]]] = {
    **{name: (name, _yes_no_key) for name in YES_NO_COLUMNS},
    "energy": ("energy", _energy_key),
    "district": ("zip", _location(district_key)),
    "neighborhood": ("neighborhood", _location(neighborhood_key)),
}


def _number(value: object) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan
    return number if np.isfinite(number) else np.nan


def numbers(frame: pd.DataFrame, plausible: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Each numeric feature as float64, anything not a finite number or implausible as NaN."""
    parsed = pd.DataFrame({name: map_distinct(frame[name], _number) for name in NUMERIC_COLUMNS})
    masked = mask_implausible(parsed, plausible)
    return {name: masked[name].to_numpy(dtype="float64", na_value=np.nan) for name in NUMERIC_COLUMNS}


def training_profile(frame: pd.DataFrame, plausible: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The compact profile of the training listings that ``drift_summary`` compares batches with.

    ``frame``: listings with the feature columns; ``plausible``: the bounds outside which a number
    is treated as missing (params ``prepare.plausible``), applied at scoring too. Plain lists and
    dicts, so it pickles in the model file and prints as JSON.
    """
    features: dict[str, Any] = {}
    for name, values in numbers(frame, plausible).items():
        present = values[~np.isnan(values)]
        edges = np.unique(np.quantile(present, QUANTILES)) if len(present) else np.empty(0)
        features[name] = {"kind": "number", "edges": edges.tolist()}
    for name, (column, key) in CATEGORIES.items():
        keys = map_distinct(frame[column], key, object)
        shares = pd.Series(keys[pd.notna(keys)]).value_counts(sort=False) / max(len(keys), 1)
        frequent = sorted(shares.index[shares >= RARE_SHARE])
        features[name] = {
            "kind": "category",
            "frequent": frequent,
            "rare": sorted(set(shares.index) - set(frequent)),
        }
    profile = {
        "rows": len(frame),
        "plausible": {k: list(v) for k, v in plausible.items()},
        "features": features,
    }
    counts = count_bins(frame, profile)
    for name, feature in features.items():
        feature["shares"] = (counts[name] / max(len(frame), 1)).round(6).tolist()
    return profile


def count_bins(frame: pd.DataFrame, profile: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per profiled feature, how many listings of ``frame`` fall in each bin.

    Bins of a number: ``(-inf, edge_0], (edge_0, edge_1], …, (edge_last, inf)``, then missing. Bins of
    a category: each frequent one, ``other`` (rare in training), ``unseen``, then ``missing``.

    Counts of consecutive chunks add up to the counts of the whole batch.
    """
    features = profile["features"]
    counts = {}
    for name, values in numbers(frame, profile["plausible"]).items():
        edges = np.asarray(features[name]["edges"], dtype="float64")
        missing = np.isnan(values)
        bins = np.bincount(np.searchsorted(edges, values[~missing], side="left"), minlength=len(edges) + 1)
        counts[name] = np.append(bins, missing.sum()).astype("int64")
    for name, (column, key) in CATEGORIES.items():
        feature = features[name]
        index = {category: position for position, category in enumerate(feature["frequent"])}
        # bins after the frequent categories: other (rare in training), unseen, missing
        other, rare = len(index), frozenset(feature["rare"])

        def position(value: object, key=key, index=index, other=other, rare=rare) -> int:
            category = key(value)
            if category is None:
                return other + 2
            return index.get(category, other if category in rare else other + 1)

        # each distinct value is looked up once: a chunk has few (yes/no, labels, districts)
        counts[name] = np.bincount(map_distinct(frame[column], position, np.int64), minlength=other + 3)
    return counts


def add_counts(
    total: Mapping[str, np.ndarray] | None, chunk: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The bin counts of two parts of a batch together (``total`` None for the first part)."""
    return {name: chunk[name] + (total[name] if total else 0) for name in chunk}


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins (module docstring).

    Both must be positive where the other is (``smoothed_shares`` makes them so).
    """
    return float(np.sum(rel_entr(actual, expected) + rel_entr(expected, actual)))


def smoothed_shares(counts: np.ndarray) -> np.ndarray:
    """Shares of ``counts`` with SMOOTHING added to every bin, so that none is zero."""
    counts = np.asarray(counts, dtype="float64")
    return (counts + SMOOTHING) / (counts.sum() + SMOOTHING * len(counts))


def noise_floor(bins: int, rows: int, training_rows: int) -> float:
    """The PSI that a batch of ``rows`` drawn from the training data stays under, at NOISE_QUANTILE.

    Yurdakul (2018): over ``bins`` bins, PSI ≈ χ²(bins - 1) · (1/rows + 1/training_rows).
    """
    return float(chi2.ppf(NOISE_QUANTILE, max(bins - 1, 1)) * (1 / rows + 1 / max(training_rows, 1)))


def drift_summary(
    profile: Mapping[str, Any], counts: Mapping[str, np.ndarray] | None, thresholds: Mapping[str, float]
) -> dict[str, Any]:
    """The drift of a scored batch from the training profile, as JSON-ready numbers.

    ``counts``: ``count_bins`` of the batch (summed over chunks; None for no rows). ``thresholds``:
    params ``drift`` (``psi_warn``, ``psi_alert``, ``min_rows``). Per feature: PSI (of smoothed
    shares), its noise floor at this batch size (``noise_floor``, over the bins not empty on both
    sides), the share of missing values and,
    for categories, of categories never seen in training. The verdict is ``drift alert`` when any
    feature's PSI reaches both ``psi_alert`` and its noise floor, ``drift warning`` when any reaches
    ``psi_warn`` and its noise floor, ``no drift`` otherwise; ``no rows`` for an empty batch and
    ``too few rows`` below ``min_rows`` rows (though the PSI is still reported). ``max_psi`` and
    ``max_psi_feature`` name the largest PSI above its noise floor (of all, when none is).
    """
    features = profile["features"]
    rows = int(next(iter(counts.values())).sum()) if counts else 0
    summary: dict[str, Any] = {"rows": rows, "training_rows": profile["rows"]}
    per_feature, levels = {}, [0]
    for name, feature in features.items():
        values: dict[str, float | None] = {"psi": None, "psi_noise": None, "missing_share": None}
        if feature["kind"] == "category":
            values["unseen_share"] = None
        if rows:
            expected = np.asarray(feature["shares"]) * profile["rows"]
            score = psi(smoothed_shares(counts[name]), smoothed_shares(expected))
            bins = int(np.count_nonzero((expected > 0) | (counts[name] > 0)))  # empty on both sides: none
            noise = noise_floor(bins, rows, profile["rows"])
            values["psi"], values["psi_noise"] = round(score, DIGITS), round(noise, DIGITS)
            values["missing_share"] = round(float(counts[name][-1] / rows), DIGITS)
            if feature["kind"] == "category":
                values["unseen_share"] = round(float(counts[name][-2] / rows), DIGITS)
            levels.append(sum(score >= max(thresholds[key], noise) for key in ("psi_warn", "psi_alert")))
        per_feature[name] = values
    scores = {name: values["psi"] for name, values in per_feature.items() if values["psi"] is not None}
    # the worst feature among those above their noise floor, which the verdict reads; else of all
    above = {name: score for name, score in scores.items() if score >= per_feature[name]["psi_noise"]}
    worst = max(above or scores, key=(above or scores).get) if scores else None
    summary["max_psi"] = scores[worst] if worst else None
    summary["max_psi_feature"] = worst
    if not rows:
        summary["verdict"] = "no rows"
    elif rows < thresholds["min_rows"]:
        summary["verdict"] = "too few rows"
    else:
        summary["verdict"] = VERDICTS[max(levels)]
    summary["features"] = per_feature
    return summary


def describe(summary: Mapping[str, Any]) -> str:
    """One log line: the verdict, the worst feature and the largest unseen share."""
    if "features" not in summary:
        return f"drift: {summary['verdict']}"
    if not summary["rows"]:
        return f"drift: {summary['verdict']} (no rows scored)"
    unseen = {
        name: values["unseen_share"]
        for name, values in summary["features"].items()
        if values.get("unseen_share")
    }
    most_unseen = max(unseen, key=unseen.get) if unseen else None
    return (
        f"drift: {summary['verdict']} over {summary['rows']} rows, max PSI {summary['max_psi']:.3f} "
        f"({summary['max_psi_feature']})"
        + (f", unseen {most_unseen} {unseen[most_unseen]:.1%}" if most_unseen else ", no unseen categories")
    )


@dataclass
class DriftMonitor:
    """Accumulates the bin counts of a batch chunk by chunk: ``update`` each chunk, then ``summary``.

    ``profile``: the model file's ``drift_profile`` (None for a model trained without one).
    """

    profile: Mapping[str, Any] | None
    counts: dict[str, np.ndarray] | None = None

    def update(self, listings: pd.DataFrame | Any) -> None:
        """Add the listings of one chunk: a frame or a pyarrow Table with at least PROFILED_COLUMNS.

        (pyarrow is not imported here: the service, which imports this module, runs without it.)
        """
        if self.profile is None or not len(listings):
            return
        if not isinstance(listings, pd.DataFrame):
            listings = listings.select(list(PROFILED_COLUMNS)).to_pandas()
        self.counts = add_counts(self.counts, count_bins(listings, self.profile))

    def merge(self, other: DriftMonitor) -> None:
        """Add the counts of another monitor of the same profile (a part scored elsewhere)."""
        if other.counts is not None:
            self.counts = add_counts(self.counts, other.counts)

    def summary(self, thresholds: Mapping[str, float]) -> dict[str, Any]:
        """``drift_summary`` of every listing added so far; only a verdict when there is no profile."""
        if self.profile is None:
            return {"verdict": NO_PROFILE}
        return drift_summary(self.profile, self.counts, thresholds)
