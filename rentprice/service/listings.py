"""Listings as the service receives them (JSON objects, form fields), judged by rentprice.scoring.

The rules of what can be scored live in ``rentprice.scoring.validate_listings``; this module only
turns request data into a one-row-per-listing frame for it and maps its verdicts back to the
request's listings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rentprice.features import GARDEN_ABSENT
from rentprice.schema import FEATURE_COLUMNS
from rentprice.scoring import (
    FEATURE_LABELS,
    FIELD,
    HIGH,
    LOW,
    PREDICTION,
    REASON,
    ROW,
    Model,
    score,
    validate_listings,
)

INDEX = "index"
#: The bounds of a prediction's price range in the service's answers.
RANGE_LOW, RANGE_HIGH = "low", "high"
#: JSON integers with more digits than this do not fit a float: they are read as infinity.
MAX_INT_DIGITS = 308
#: Form fields of the web page that are not listing fields.
GARDEN_M2 = "garden_m2"


@dataclass(frozen=True)
class Verdict:
    """The outcome for a request's listings, each entry tagged with the listing's position.

    ``predictions``: ``{"index", "predicted_rent", "low", "high"}`` per scored listing (the rent and
    its price range at the model's calibrated level, in €); ``errors``: ``{"index",
    "field", "reason"}`` per rejected listing (its first bad field, as in the batch rejects file);
    ``recovered``: per field, how many scored listings had a value the model treats as unknown.
    """

    predictions: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    recovered: dict[str, int]


def json_int(text: str) -> int | float:
    """``parse_int`` for json.loads: a JSON integer too large for a float becomes infinity (then rejected)."""
    return float(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def shape_problem(listing: object) -> tuple[str | None, str] | None:
    """Why a JSON value cannot be a listing, as (field, reason), or None.

    A listing is an object whose listing fields hold strings, numbers or null; other keys are ignored.
    """
    if not isinstance(listing, Mapping):
        return None, "a listing must be a JSON object"
    for name in FEATURE_COLUMNS:
        value = listing.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            return name, "must be a string, a number or null"
    return None


def judge(listings: Sequence[object], model: Model) -> Verdict:
    """Validate and score ``listings`` (JSON values) with the model; see ``Verdict``."""
    errors, rows, positions = [], [], []
    for index, listing in enumerate(listings):
        problem = shape_problem(listing)
        if problem is None:
            rows.append({name: listing.get(name) for name in FEATURE_COLUMNS})
            positions.append(index)
        else:
            errors.append({INDEX: index, FIELD: problem[0], REASON: problem[1]})
    result = validate_listings(listings_frame(rows), model)
    rejects = result.rejects
    errors += [
        {INDEX: positions[row], FIELD: field, REASON: reason}
        for row, field, reason in zip(
            rejects[ROW].tolist(), rejects[FIELD].tolist(), rejects[REASON].tolist(), strict=True
        )
    ]
    prices = score(model, result.scorable)
    predictions = [
        {INDEX: positions[row], PREDICTION: rent, RANGE_LOW: low, RANGE_HIGH: high}
        for row, rent, low, high in zip(
            prices.index.tolist(),
            prices[PREDICTION].tolist(),
            prices[LOW].tolist(),
            prices[HIGH].tolist(),
            strict=True,
        )
    ]
    return Verdict(
        predictions=predictions,
        errors=sorted(errors, key=lambda error: error[INDEX]),
        recovered={name: count for name, count in result.recovered.items() if count},
    )


def listings_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per listing, a column per feature field, values as sent (dtype object, not inferred).

    Built from per-column object arrays, with the column labels as an object Index (FEATURE_LABELS):
    pandas looks a label up faster there than in its default arrow-backed str Index, and validation
    and scoring look up columns dozens of times per request.
    """
    return pd.DataFrame(
        {name: np.array([row[name] for row in rows], dtype=object) for name in FEATURE_COLUMNS},
        columns=FEATURE_LABELS,
        dtype=object,
    )


def form_listing(form: Mapping[str, str]) -> dict[str, str | None]:
    """The listing a web-page form describes: listing fields as typed, the garden from its m².

    Blank fields are missing; garden m² 0 means no garden, any other text becomes the source's
    ``Present (<m²> m²)``, which validation then judges.
    """
    listing = {name: form.get(name, "").strip() or None for name in FEATURE_COLUMNS if name != "garden"}
    garden = form.get(GARDEN_M2, "").strip()
    listing["garden"] = (GARDEN_ABSENT if _is_zero(garden) else f"Present ({garden} m²)") if garden else None
    return listing


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False
