"""The listing contract: every field of a listing, declared once, and the column rules derived from it.

``LISTING`` says, per field, its kind, unit, whether a listing without it can be scored, whether an
unrecognised value is scored as unknown, its fixed bounds and its other spellings. Batch validation
(``rentprice.scoring``), the API's request model and JSON Schema and the web form
(``rentprice.service.listings``), and the prepare stage's type checks (``coerce_types``) all read it.

``construction_year``: the source table spells it ``constraction_year``. That spelling is kept as an
alias (read by collect, accepted in every input) so no one "fixes" it and breaks collect; every
output, message and document uses ``construction_year``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rentprice.errors import DataError

TARGET = "rent"
GROUP = "address"

#: Field kinds: how a value is written and judged.
NUMBER, YES_NO, GARDEN, ENERGY, TEXT = "number", "yes/no", "garden", "energy", "text"
#: The model's name for the garden's size in m², a numeric feature with a learned range.
GARDEN_M2 = "garden_m2"


@dataclass(frozen=True)
class ListingField:
    """One field of a listing.

    ``required``: a blank value rejects the listing (else it is scored as unknown).
    ``may_be_unknown``: an unrecognised value is scored as unknown instead of rejected (counted in
    ``treated_as_unknown``). ``minimum``/``exclusive_minimum``: fixed bounds, whatever the model;
    the range learned in training is checked on top (``trained_ranges``). ``aliases``: other
    spellings accepted in input headers and JSON keys. ``model_input``: False for a field the
    model never reads (passed through untouched). ``example``: a typical value, for docs and forms.
    ``whole``: a count or a year; a value with a fraction is rejected (and the form steps by 1).
    ``pattern``: a text value's whole form, a regular expression anchored with ``^…$`` in the syntax
    Python, JSON Schema and HTML share (published as is in the JSON Schema and the form).
    ``number_range``: for a text field that may also come as a number (a JSON number, a Parquet
    integer column), the whole numbers it accepts, published as the JSON Schema's bounds.
    """

    name: str
    kind: str
    description: str
    unit: str | None = None
    required: bool = True
    may_be_unknown: bool = False
    minimum: float | None = None
    exclusive_minimum: float | None = None
    aliases: tuple[str, ...] = ()
    model_input: bool = True
    example: object = None
    pattern: str | None = None
    max_length: int | None = None
    whole: bool = False
    options: tuple[str, ...] = field(default=())
    number_range: tuple[int, int] | None = None


#: Energy labels from worst to best; the position is the ordinal value.
ENERGY_LABELS: tuple[str, ...] = (
    "G", "F", "E", "D", "C", "B", "A", "A+", "A++", "A+++", "A++++", "A+++++",
)  # fmt: skip
YES_NO_OPTIONS: tuple[str, ...] = ("yes", "no")
#: A Dutch postcode (PostNL): four digits 1000 to 9999, then two letters; the letters may be left out
#: (the postcode area, PC4, as Statistics Netherlands publishes it: the model reads only the digits,
#: so a PC4 is scored exactly as any full postcode in it). Spacing anywhere between the parts, any
#: case and an ``NL``/``NL-``/``NL `` country prefix are tolerated: ``1071 HN``, ``1071hn``,
#: `` 1071  HN ``, ``NL-1071 HN`` and ``1071`` are postcodes; ``10111``, ``0123 AB``, ``abc`` and
#: ``1071 HN extra`` are not. One regular expression in the syntax Python, ECMAScript and so JSON
#: Schema and HTML share (no flags, no lookbehind, ASCII classes; ``-`` outside brackets, valid
#: under the ``v`` flag browsers compile ``pattern`` with), anchored as JSON Schema needs it.
#: ``postcode_digits`` matches it after dropping INVISIBLE characters, which no pattern can express.
POSTCODE_PATTERN = r"^\s*(?:[Nn][Ll]\s*-?\s*)?([1-9][0-9]{3})\s*(?:[A-Za-z]{2})?\s*$"
POSTCODE = re.compile(POSTCODE_PATTERN)
#: The postcodes given as a number (``1071``): POSTCODE_PATTERN's four digits, as whole numbers.
POSTCODE_NUMBERS = (1000, 9999)


def _yes_no(name: str, what: str) -> ListingField:
    return ListingField(
        name, YES_NO, f"whether the apartment has {what}", options=YES_NO_OPTIONS, example="no"
    )


#: The listing, in source-table order.
LISTING: tuple[ListingField, ...] = (
    ListingField(
        "address", TEXT, "street address; passed through, not read by the model", required=False,
        model_input=False, max_length=200, example="1071 HN Amsterdam (Cornelis Schuytbuurt)",
    ),
    ListingField("area", NUMBER, "living area", unit="m²", exclusive_minimum=0, example=80),
    ListingField(
        "construction_year", NUMBER, "year of construction; blank or a placeholder such as 1005 is unknown",
        unit="year", required=False, may_be_unknown=True, aliases=("constraction_year",), whole=True,
        example=1930,
    ),
    ListingField("rooms", NUMBER, "number of rooms", minimum=0, whole=True, example=3),
    ListingField("bedrooms", NUMBER, "number of bedrooms", minimum=0, whole=True, example=2),
    ListingField("bathrooms", NUMBER, "number of bathrooms", minimum=0, whole=True, example=1),
    _yes_no("balcony", "a balcony"),
    _yes_no("storage", "storage"),
    _yes_no("parking", "parking"),
    _yes_no("furnished", "furniture"),
    _yes_no("garage", "a garage"),
    ListingField(
        "garden", GARDEN,
        "'Not present' or 'Present (<m²> m²[, located on the <side>])'; the unit also m2 or m^2",
        example="Present (47 m², located on the north)",
    ),
    ListingField(
        "energy", ENERGY, "energy label G to A+++++; 'None' or blank is unknown", required=False,
        may_be_unknown=True, options=ENERGY_LABELS, example="A",
    ),
    ListingField(
        "facilities", TEXT, "comma-separated facilities; 'None' for none; unseen ones are ignored",
        required=False, max_length=500, example="Shower, Toilet, Lift",
    ),
    ListingField(
        "zip", TEXT,
        "Dutch postcode: 1234 AB, or its four digits (1000 to 9999) alone, also as a number; spacing, "
        "case and an NL- prefix do not matter; a blank or unseen district is unknown, anything else is "
        "rejected",
        required=False, may_be_unknown=True, pattern=POSTCODE_PATTERN, number_range=POSTCODE_NUMBERS,
        example="1071 HN",
    ),
    ListingField(
        "neighborhood", TEXT, "neighborhood; an unseen or blank one is unknown", required=False,
        may_be_unknown=True, max_length=100, example="Cornelis Schuytbuurt",
    ),
)  # fmt: skip
FIELDS: dict[str, ListingField] = {spec.name: spec for spec in LISTING}

#: The columns the model reads, in source-table order.
FEATURE_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LISTING if spec.model_input)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LISTING if spec.kind == NUMBER)
YES_NO_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LISTING if spec.kind == YES_NO)
TEXT_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LISTING if spec.kind != NUMBER)
#: Fields scored as unknown instead of rejected when unrecognised (the API's ``treated_as_unknown``).
MAY_BE_UNKNOWN: tuple[str, ...] = tuple(spec.name for spec in LISTING if spec.may_be_unknown)
#: Every column of a training listing, in source-table order.
SOURCE_COLUMNS: tuple[str, ...] = (*(spec.name for spec in LISTING), TARGET)
#: Numeric features whose training range the model file records: the numbers and the garden's m².
RANGED_FEATURES: tuple[str, ...] = (*NUMERIC_COLUMNS, GARDEN_M2)

#: Other spellings → field name, keyed by ``header_key``.
ALIASES: dict[str, str] = {
    **{alias: spec.name for spec in LISTING for alias in spec.aliases},
    **{spec.name: spec.name for spec in LISTING},
    TARGET: TARGET,
}
#: The source table's own column names (collect reads these), in source-table order.
SOURCE_TABLE_COLUMNS: tuple[str, ...] = (*(next(iter(spec.aliases), spec.name) for spec in LISTING), TARGET)


#: Characters a copy from a spreadsheet or web page leaves invisibly in a name: a byte-order mark
#: (a UTF-8 file's BOM on a later column, a Parquet column name), zero-width spaces and joiners.
INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"))
#: Word boundaries in a name: spaces (also non-breaking), underscores, hyphens, and camelCase.
WORD_BREAK = re.compile(r"[\s_-]+|(?<=[a-z0-9])(?=[A-Z])")


def header_key(name: object) -> str:
    """A column name as compared: case, invisible characters and how the words are joined ignored.

    ``" Construction Year "``, ``construction-year``, ``constructionYear`` and ``construction_year``
    are one key, ``construction_year``: names that differ only in spelling name one column.
    """
    words = WORD_BREAK.split(str(name).translate(INVISIBLE))
    return "_".join(word for word in words if word).casefold()


def text_key(value: str) -> str:
    """A categorical text as compared: spaces trimmed and collapsed, INVISIBLE dropped, case folded.

    The one normalisation of yes/no, garden, energy, facilities, postcode and neighborhood texts, in
    training and in scoring alike: ``" Oud\u00a0West "``, ``"Oud West\u200b"`` and ``"oud west"`` are
    the same neighborhood.
    """
    return " ".join(value.translate(INVISIBLE).split()).casefold()


def postcode_text(value: object) -> str | None:
    """A zip value as the text it is read as; None for a value of another kind (a boolean, None).

    A number (a spreadsheet's or Parquet's integer column, a JSON number) is the digits it shows:
    1071 and 1071.0 are ``1071``, so a CSV and a JSON request with the same number read alike.
    """
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_):
        return f"{value:g}" if np.isfinite(value) else None
    return value if isinstance(value, str) else None


def postcode_digits(value: object) -> int | None:
    """The four digits of a Dutch postcode (POSTCODE_PATTERN): ``NL-1071 hn`` → 1071; else None.

    ``value`` is read as ``postcode_text``, INVISIBLE characters dropped (as ``text_key`` does):
    1071 is 1071; 1071.5, 10111 and 999 are not postcodes. None also for a blank or missing value:
    callers that must tell blank (unknown) from wrong (rejected) check blankness first.
    """
    text = postcode_text(value)
    match = POSTCODE.match(text.translate(INVISIBLE)) if text is not None else None
    return int(match.group(1)) if match else None


def repeated_name(names: Sequence[object]) -> tuple[str, list[str]] | None:
    """The first field or column named more than once after normalisation, with its spellings as given.

    ``area`` twice, ``Area`` and `` area ``, or ``construction_year`` with ``constraction_year``:
    which one is meant is a guess, so callers refuse them.
    """
    canonical = [ALIASES.get(header_key(name), str(name)) for name in names]
    for name, count in Counter(canonical).items():
        if count > 1:
            return name, [repr(str(g)) for g, c in zip(names, canonical, strict=True) if c == name]
    return None


def canonical_names(columns: Iterable[object], source: str) -> list[str]:
    """Input column names with listing fields spelled as in LISTING; other names kept as given.

    A name repeated after normalisation (``repeated_name``) is a one-line DataError naming ``source``.
    """
    given = [str(name) for name in columns]
    repeated = repeated_name(given)
    if repeated and not header_key(repeated[0]):
        raise DataError(
            f"{source}: {len(repeated[1])} columns have no name (empty header cells, e.g. a spreadsheet's "
            "trailing commas); name or remove them"
        )
    if repeated:
        name, spellings = repeated
        raise DataError(
            f"{source}: column {name!r} appears more than once ({', '.join(spellings)}); keep one"
        )
    return [ALIASES.get(header_key(name), name) for name in given]


def canonical_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` with its columns renamed by ``canonical_names`` (the same frame when nothing changes)."""
    names = canonical_names(frame.columns, source)
    return frame if names == list(frame.columns) else frame.set_axis(names, axis=1)


def missing_columns(columns: Sequence[str], required: Sequence[str] = SOURCE_COLUMNS) -> list[str]:
    """Return the required columns absent from ``columns``, in schema order."""
    present = set(columns)
    return [name for name in required if name not in present]


def require_columns(frame: pd.DataFrame, source: str, required: Sequence[str] = SOURCE_COLUMNS) -> None:
    """Raise a one-line DataError naming ``source`` when a required column is missing."""
    absent = missing_columns(list(frame.columns), required)
    if absent:
        raise DataError(f"{source}: missing column(s) {', '.join(absent)}")


def coerce_types(frame: pd.DataFrame, source: str, first_row: int = 0) -> pd.DataFrame:
    """Return the schema columns present, numeric kinds as float64 and text as strings.

    Column names are made canonical first (``canonical_columns``). Raises DataError naming the
    first row (``first_row`` plus the position, for a chunk of a larger table) and field whose
    value is not a number.
    """
    frame = canonical_columns(frame, source)
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns.intersection(SOURCE_COLUMNS, sort=False):
        if name in TEXT_COLUMNS:
            out[name] = frame[name].astype("str")
        else:
            numbers = pd.to_numeric(frame[name], errors="coerce")
            bad = numbers.isna() & frame[name].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                value = frame[name].iloc[row]
                raise DataError(f"{source}: row {first_row + row}, field {name}: {value!r} is not a number")
            out[name] = numbers.astype("float64")
    return out[[c for c in SOURCE_COLUMNS if c in out.columns]]


def mask_implausible(frame: pd.DataFrame, bounds: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Return a copy where numeric values outside their ``[low, high]`` bounds are missing.

    Sources use placeholders such as construction year 1005 for "unknown"; treating them as
    data would teach the model nonsense. Bounded columns come back as float64 with NaN for missing.
    Bounds may name a field by an alias (params written before the rename).
    """
    masked = {}
    for name, (low, high) in bounds.items():
        name = ALIASES.get(header_key(name), name)
        if name in frame.columns:
            values = frame[name].to_numpy(dtype="float64", na_value=np.nan, copy=True)
            values[(values < low) | (values > high)] = np.nan
            masked[name] = values
    return frame.assign(**masked)


def count_implausible(frame: pd.DataFrame, bounds: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """Count, per bounded column, the present values that fall outside their bounds."""
    counts = {}
    for name, (low, high) in bounds.items():
        values = frame[ALIASES.get(header_key(name), name)]
        counts[name] = int((values.notna() & ~values.between(low, high)).sum())
    return counts
