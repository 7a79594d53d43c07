"""Listings as the service receives them (JSON objects, form fields), judged by rentprice.scoring.

The listing contract (``rentprice.schema.LISTING``) gives the API's request model ``ListingRequest``
(pydantic: the shape of each field, per-field errors, the JSON Schema of ``GET /api/v1/schema``)
and the web form's inputs. A key that is no listing field is refused, never ignored: a listing
scored without the field the client meant gets a rent the client did not ask for. The rules of
what can be scored live in ``rentprice.scoring.validate_listings``, shared with the batch stage:
this module only turns request data into a one-row-per-listing frame for it and maps its verdicts
back to the request.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, ValidationError, create_model
from pydantic import Field as PydanticField

from rentprice.features import GARDEN_ABSENT
from rentprice.schema import (
    ALIASES,
    FEATURE_COLUMNS,
    GARDEN_M2,
    LISTING,
    NUMBER,
    TARGET,
    YES_NO,
    ListingField,
    header_key,
    repeated_name,
)
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
#: How alike (difflib's ratio) a word of an unknown key and a word of a field's name are to be
#: suggested: ``enrgy`` for ``energy``, ``neighbourhood`` for ``neighborhood``, not ``garage`` for ``garden``.
MISSPELLING_SIMILARITY = 0.8
#: Names for a field that share no word with it, suggested (never accepted) for an unknown key;
#: keyed by ``header_key``. Keys sharing a word with a field (``energy_label``, ``year_built``) need none.
OTHER_NAMES: dict[str, str] = {
    "postcode": "zip",
    "postal_code": "zip",
    "zipcode": "zip",
    "size": "area",
    "sqm": "area",
    "m2": "area",
    "surface": "area",
}
#: Where a client finds the listing fields (``api.listing_schema``).
SCHEMA_ENDPOINT = "GET /api/v1/schema"
#: Pydantic's error type for a key that is not a field of the model (``extra="forbid"``).
NOT_A_FIELD = "extra_forbidden"
#: JSON integers with more digits than this do not fit a float: they are read as infinity.
MAX_INT_DIGITS = 308
NUMBER_TYPES = StrictInt | StrictFloat


@dataclass(frozen=True)
class Verdict:
    """The outcome for a request's listings, each entry tagged with the listing's position.

    ``predictions``: ``{"index", "predicted_rent", "low", "high"}`` per scored listing (the rent and
    its price range at the model's calibrated level, in €); ``errors``: ``{"index",
    "field", "reason"}`` per rejected listing (its first bad field, as in the batch rejects file);
    ``treated_as_unknown``: per field, how many scored listings had a value the model treats as unknown.
    """

    predictions: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    treated_as_unknown: dict[str, int]


def _json_type(spec: ListingField) -> Any:
    """The JSON values a field accepts; validation judges their content (``validate_listings``)."""
    if spec.kind == NUMBER:
        return NUMBER_TYPES | str | None
    if spec.kind == YES_NO:
        return StrictBool | str | None
    return str | NUMBER_TYPES | None


def _schema_extra(spec: ListingField) -> dict[str, Any]:
    extra: dict[str, Any] = {"examples": [spec.example]}
    if spec.unit:
        extra["unit"] = spec.unit
    if spec.aliases:
        extra["aliases"] = list(spec.aliases)
    if spec.minimum is not None:
        extra["minimum"] = spec.minimum
    if spec.exclusive_minimum is not None:
        extra["exclusiveMinimum"] = spec.exclusive_minimum
    if spec.options:
        extra["enum"] = [*spec.options, None] if not spec.required else list(spec.options)
    if spec.pattern:
        extra["pattern"] = spec.pattern
    if spec.number_range:  # JSON Schema applies these to numbers only, the pattern to strings only
        extra |= {"minimum": spec.number_range[0], "maximum": spec.number_range[1], "multipleOf": 1}
    if spec.max_length:
        extra["maxLength"] = spec.max_length
    extra["x-required"] = spec.required
    extra["x-treated-as-unknown-when-unrecognised"] = spec.may_be_unknown
    return extra


#: One listing of a request: the contract's fields and no other key (its JSON Schema says
#: ``additionalProperties: false``); keys are made canonical first (``request_listing``).
ListingRequest: type[BaseModel] = create_model(
    "Listing",
    __config__=ConfigDict(extra="forbid", title="Listing"),
    **{
        spec.name: (
            Annotated[
                _json_type(spec),
                PydanticField(
                    default=None,
                    description=f"{spec.description}" + (f" ({spec.unit})" if spec.unit else ""),
                    json_schema_extra=_schema_extra(spec),
                ),
            ],
            None,
        )
        for spec in LISTING
    },
)


def listing_json_schema(ranges: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The JSON Schema of one listing, with the served model's trained ranges as minimum/maximum.

    Field names are matched as batch headers are (``schema.header_key``); ``aliases`` are other spellings.
    """
    schema = ListingRequest.model_json_schema()
    for name, (low, high) in ranges.items():
        if name in schema["properties"]:
            schema["properties"][name] |= {"minimum": low, "maximum": high}
    if GARDEN_M2 in ranges:
        low, high = ranges[GARDEN_M2]
        schema["properties"]["garden"]["description"] += f"; garden size within {low:g}–{high:g} m²"  # noqa: RUF001
    return schema


class JsonObject(dict):
    """A JSON object as parsed (``json_object``), with ``given``: its keys as sent, repeats included."""

    given: list[str]


def json_object(pairs: list[tuple[str, Any]]) -> JsonObject:
    """``object_pairs_hook`` for json.loads: keeps a key sent twice, which a dict keeps only once."""
    parsed = JsonObject(pairs)
    parsed.given = [key for key, _ in pairs]
    return parsed


def json_int(text: str) -> int | float:
    """``parse_int`` for json.loads: a JSON integer too large for a float becomes infinity (then rejected)."""
    return float(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def request_listing(listing: object) -> dict[str, Any] | tuple[str | None, str]:
    """A JSON value as a listing with canonical field names, or why it cannot be one: (field, reason).

    Keys are matched like batch headers (case, spacing, aliases); a field given twice is refused,
    also under one spelling (``{"area": 80, "area": 90}``, when parsed by ``json_object``). A key
    that is no listing field is refused (``unknown_key_reason``), before any bad value.
    """
    if not isinstance(listing, Mapping):
        return None, "a listing must be a JSON object"
    repeated = repeated_name(getattr(listing, "given", None) or list(listing))
    if repeated:
        name, spellings = repeated
        return name, f"given more than once ({', '.join(spellings)}); keep one"
    canonical = {ALIASES.get(header_key(key), key): value for key, value in listing.items()}
    try:
        ListingRequest.model_validate(canonical)
    except ValidationError as error:
        problems = error.errors(include_url=False)
        unknown = [problem["loc"][0] for problem in problems if problem["type"] == NOT_A_FIELD]
        if unknown:
            return str(unknown[0]), unknown_key_reason(str(unknown[0]), canonical)
        return str(problems[0]["loc"][0]), _shape_reason(problems[0]["loc"][0])
    return canonical


def unknown_key_reason(key: str, listing: Mapping[str, Any]) -> str:
    """Why ``key`` of ``listing`` (canonical names) is refused, with the field it may stand for.

    The rent is the target, not an input. Otherwise the suggestion is a field the listing lacks:
    the one OTHER_NAMES gives for the key, else the one sharing a word (after ``header_key``) with
    the key, or a word at least MISSPELLING_SIMILARITY alike (difflib's ratio); without one, the
    reason points to the schema endpoint.
    """
    if key == TARGET:
        return "not a listing field: the rent is what the service predicts; remove it"
    suggestion = suggested_field(key, [spec.name for spec in LISTING if spec.name not in listing])
    if suggestion:
        return f"not a listing field; did you mean {suggestion!r}?"
    return f"not a listing field; the fields are listed by {SCHEMA_ENDPOINT}"


def suggested_field(key: str, fields: Sequence[str]) -> str | None:
    """The field of ``fields`` an unknown ``key`` most likely stands for, or None (see unknown_key_reason)."""
    normalised = header_key(key)
    if OTHER_NAMES.get(normalised) in fields:
        return OTHER_NAMES[normalised]
    words = [word for word in normalised.split("_") if word]
    likeness = {
        name: max(
            (difflib.SequenceMatcher(None, word, part).ratio() for word in words for part in name.split("_")),
            default=0.0,
        )
        for name in fields
    }
    best = max(fields, key=likeness.__getitem__, default=None)  # the first of equals, in LISTING order
    return best if best is not None and likeness[best] >= MISSPELLING_SIMILARITY else None


def _shape_reason(name: object) -> str:
    kind = next((spec.kind for spec in LISTING if spec.name == name), None)
    if kind == NUMBER:
        return "must be a number, a text or null"
    if kind == YES_NO:
        return "must be yes, no, true, false or null"
    return "must be a string, a number or null"


def judge(listings: Sequence[object], model: Model) -> Verdict:
    """Validate and score ``listings`` (JSON values) with the model; see ``Verdict``."""
    errors, rows, positions = [], [], []
    for index, listing in enumerate(listings):
        parsed = request_listing(listing)
        if isinstance(parsed, dict):
            rows.append(parsed)
            positions.append(index)
        else:
            errors.append({INDEX: index, FIELD: parsed[0], REASON: parsed[1]})
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
        treated_as_unknown={name: count for name, count in result.treated_as_unknown.items() if count},
    )


def listings_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per listing, a column per feature field, values as sent (dtype object, not inferred).

    Built from per-column object arrays, with the column labels as an object Index (FEATURE_LABELS):
    pandas looks a label up faster there than in its default arrow-backed str Index, and validation
    and scoring look up columns dozens of times per request.
    """
    return pd.DataFrame(
        {name: np.array([row.get(name) for row in rows], dtype=object) for name in FEATURE_COLUMNS},
        columns=FEATURE_LABELS,
        dtype=object,
    )


#: The web form's fields: every listing field, the garden as its size in m² (GARDEN_M2).
FORM_FIELDS: tuple[str, ...] = tuple(GARDEN_M2 if spec.name == "garden" else spec.name for spec in LISTING)


def form_listing(form: Mapping[str, str]) -> dict[str, str | None]:
    """The listing a web-page form describes: listing fields as typed, the garden from its m².

    Blank fields are missing; garden m² 0 means no garden, any other text becomes the source's
    ``Present (<m²> m²)``, which validation then judges.
    """
    listing = {name: form.get(name, "").strip() or None for name in FORM_FIELDS if name != GARDEN_M2}
    garden = form.get(GARDEN_M2, "").strip()
    listing["garden"] = (GARDEN_ABSENT if _is_zero(garden) else f"Present ({garden} m²)") if garden else None
    return listing


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False
