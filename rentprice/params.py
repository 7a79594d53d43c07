"""``params.yaml``, the single source of every tunable value, and its schema.

Every stage and script that reads params calls :func:`load_params` before any work; it returns the
validated :class:`Params` (attribute access: ``params.train.n_estimators``). The schema is strict:
an unknown key (a typo), a missing key, a value of the wrong type or out of range is one
:class:`~rentprice.errors.ParamsError` line naming the key, what was expected and what was given.
Strings are never coerced: ``log_target: "false"`` is an error, not ``True``. The file is read as
DVC reads it (``rentprice.io.read_yaml``, YAML 1.2), so ``log_target: yes`` is the string ``yes``
(an error) for the stages as for ``dvc params diff``.

To add a key, add one annotated field (with its ``description``) to its group below; to add a group,
add a ``Group`` subclass and one field of that type to :class:`Params`. ``docs/params.md`` is generated
from this schema (``python -m rentprice.params --markdown``; a test checks that it is current).
``python -m rentprice.params [FILE]`` checks a params file: exit 0, or the error line and exit 2.
"""

from __future__ import annotations

import argparse
import io
import sys
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML, YAMLError

from rentprice.errors import ParamsError
from rentprice.io import atomic_path, read_yaml
from rentprice.schema import NUMERIC_COLUMNS, TARGET

DEFAULT_PARAMS = Path("params.yaml")

#: ``int`` or ``float``; in strict mode an int stays an int (as written) and booleans and strings fail.
Number = int | float
Share = Annotated[float, Field(ge=0, le=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
PositiveInt = Annotated[int, Field(ge=1)]
#: Processes for scikit-learn: a positive number, or -1 for all cores.
NJobs = Literal[-1] | PositiveInt
NumericColumn = Literal[NUMERIC_COLUMNS]
BoundedColumn = Literal[(*NUMERIC_COLUMNS, TARGET)]


def _ordered(bounds: list[Number]) -> list[Number]:
    if bounds[0] > bounds[1]:
        raise ValueError(f"expected [low, high] with low <= high, given {bounds}")
    return bounds


def _distinct(items: list[Any]) -> list[Any]:
    if len(set(items)) != len(items):
        raise ValueError(f"expected distinct items, given {items}")
    return items


#: ``[low, high]``: two numbers, low first.
Bounds = Annotated[list[Number], Field(min_length=2, max_length=2), AfterValidator(_ordered)]


class Group(BaseModel):
    """A params group: every key required, no unknown key, no coercion, no NaN or infinity, read-only."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Collect(Group):
    """Group ``collect``: where the listings come from."""

    db_url: str = Field(
        min_length=1,
        description="SQLAlchemy URL of the listings database; RENTPRICE_DB_URL overrides it",
    )
    table: str = Field(
        pattern=r"^\w+(\.\w+)?$",
        description="table (or view) of the listings in that database, optionally schema.table",
    )


class Prepare(Group):
    """Group ``prepare``: the train/test split and the values treated as placeholders."""

    test_size: float = Field(gt=0, lt=1, description="share of addresses held out for the test split")
    seed: Seed = Field(description="seed of the split")
    plausible: dict[NumericColumn, Bounds] = Field(
        description="[low, high] (low <= high) per numeric column; values outside become missing"
    )


class Checks(Group):
    """Group ``checks``: hard expectations on the data; the run fails when they do not hold."""

    bounds: dict[BoundedColumn, Bounds] = Field(
        description="[low, high] (low <= high) per column; rows outside are dropped"
    )
    max_out_of_bounds_share: Share = Field(description="fail when more rows than this are out of bounds")
    max_dropped_share: Share = Field(description="fail when more rows than this are dropped in all")
    min_rows: PositiveInt = Field(description="fail when fewer usable rows remain")


class FeatureGroups(Group):
    """Group ``train.features``: the feature groups the model uses (true) or leaves out (false)."""

    amenities: bool = Field(description="balcony, storage, parking, furnished, garage (yes/no)")
    garden: bool = Field(description="garden area in m²")
    energy: bool = Field(description="energy label as a rank")
    facilities: bool = Field(description="one column per facility named often enough")
    location: bool = Field(description="postcode number, target-encoded district and neighborhood")


class RandomForest(Group):
    """Group ``train.random_forest``: the hyperparameters of the random_forest family."""

    max_depth: PositiveInt | None = Field(description="depth limit of each tree; null for none")
    min_samples_leaf: PositiveInt = Field(description="smallest number of rows in a leaf")
    max_features: PositiveInt | Annotated[float, Field(gt=0, le=1)] | Literal["sqrt", "log2"] | None = Field(
        description="features tried per split: a count, a share of all, sqrt, log2 or null (all)"
    )


class CatBoost(Group):
    """Group ``train.catboost``: the hyperparameters of the catboost family."""

    learning_rate: Annotated[float, Field(gt=0, le=1)] = Field(description="step size of each boosting round")
    # CatBoost's own limit on symmetric trees.
    depth: Annotated[int, Field(ge=1, le=16)] = Field(description="depth of each (symmetric) tree")
    max_ctr_complexity: Annotated[int, Field(ge=1, le=4)] = Field(
        description="most categorical features CatBoost combines into one"
    )
    targets: Annotated[
        list[Literal["rent", "rent_per_m2"]], Field(min_length=1, max_length=2), AfterValidator(_distinct)
    ] = Field(description="one model per target, their predictions averaged")


class Train(Group):
    """Group ``train``: the rent model, its family and the features it reads."""

    model: Literal["catboost", "random_forest"] = Field(
        description="model family; its hyperparameters are the group of that name"
    )
    seed: Seed = Field(description="seed of the model and of the target encoding")
    n_estimators: PositiveInt = Field(
        description="trees of the random forest, or boosting iterations of catboost"
    )
    log_target: bool = Field(description="learn log(rent) and predict exp of it")
    n_jobs: NJobs = Field(description="threads that fit and score; -1 for all cores")
    facilities_min_count: PositiveInt = Field(description="listings a facility needs to get a column")
    features: FeatureGroups = Field(description="feature groups switched on or off")
    range_level: Annotated[float, Field(gt=0, lt=1)] = Field(
        description="share of actual rents the price range is calibrated to hold (split-conformal)"
    )
    random_forest: RandomForest = Field(description="hyperparameters of the random_forest family")
    catboost: CatBoost = Field(description="hyperparameters of the catboost family")


class Cv(Group):
    """Group ``cv``: the grouped cross-validation on the train split (GroupKFold by address)."""

    folds: Annotated[int, Field(ge=2)] = Field(description="folds of each repeat")
    # cv_mae_std is the spread of the MAE over repeats: one repeat has none to measure.
    repeats: Annotated[int, Field(ge=2)] = Field(
        description="repeats, each with another shuffle of the addresses (2 or more: the std is over them)"
    )
    seed: Seed = Field(description="seed of the address shuffles")


class Baseline(Group):
    """Group ``baseline``: the original project's RandomForest, refit for comparison."""

    n_estimators: PositiveInt = Field(description="trees in the baseline forest")
    seed: Seed = Field(description="seed of the baseline forest")
    n_jobs: NJobs = Field(description="processes that fit the trees; -1 for all cores")


#: The files batch scoring reads (``rentprice.batch.file_format``: by extension, any case).
INPUT_SUFFIXES = (".csv", ".parquet")


class Predict(Group):
    """Group ``predict``: the file `dvc repro predict` scores."""

    # Before input: input's check reads it.
    scheduler: Annotated[str, Field(pattern=r"^(local(:[1-9][0-9]*)?|tcp://\S+)$")] | None = Field(
        description="Dask scheduler (tcp://host:8786) or local[:N] workers; null scores here, streaming"
    )
    # stages/predict.py reads it from this file (dvc.yaml pastes `${...}` into commands unquoted), so
    # any path works: spaces, quotes, `$`, `#`, a leading `-`.
    input: str = Field(
        min_length=1,
        description="listings file to score (.csv or .parquet, any case; any path but a leading ~), "
        "or with predict.scheduler set a directory",
    )
    max_reject_rate: Share = Field(description="fail, writing nothing, above this share of rejected rows")

    @field_validator("input")
    @classmethod
    def _scorable_path(cls, path: str, info: ValidationInfo) -> str:
        if path.startswith("~"):
            # the stage's dvc.yaml dependency ${predict.input} is a path DVC never expands
            raise ValueError(
                f"'~' is not expanded (DVC and the stage read {path!r} as written); give the full path"
            )
        if info.data.get("scheduler") is None and Path(path).suffix.lower() not in INPUT_SUFFIXES:
            wanted = "a .csv or .parquet file (any case; a directory needs predict.scheduler)"
            raise ValueError(f"expected {wanted}, given {path!r}")
        return path


class Drift(Group):
    """Group ``drift``: when scored listings count as unlike the training data (docs/drift.md)."""

    psi_warn: Annotated[float, Field(gt=0)] = Field(description="PSI from which a feature is a drift warning")
    psi_alert: Annotated[float, Field(gt=0)] = Field(description="PSI from which a feature is a drift alert")
    min_rows: PositiveInt = Field(description="scored rows below which no verdict is given (PSI too noisy)")

    @model_validator(mode="after")
    def _warn_before_alert(self) -> Drift:
        if self.psi_warn > self.psi_alert:
            given = f"psi_warn {self.psi_warn} and psi_alert {self.psi_alert}"
            raise ValueError(f"expected psi_warn <= psi_alert, given {given}")
        return self


class Params(Group):
    """The whole of ``params.yaml``."""

    collect: Collect
    prepare: Prepare
    checks: Checks
    train: Train
    cv: Cv
    baseline: Baseline
    predict: Predict
    drift: Drift


def load_params(path: Path = DEFAULT_PARAMS) -> Params:
    """Read and validate the params file; any problem is a one-line ParamsError naming the file."""
    return validate_params(_read(path), str(path))


def load_group(path: Path, name: str) -> Group | None:
    """Group ``name`` (e.g. ``drift``) of the params file ``path``, validated; None without it.

    For readers of one group in a file that may hold only that group (the service's drift
    thresholds); the other groups are not read. Errors as for ``load_params``, keys named from the
    file's root (``drift.min_rows``).
    """
    raw = _read(path)
    if isinstance(raw, dict) and name not in raw:
        return None
    return validate_group(name, raw.get(name) if isinstance(raw, dict) else None, str(path))


def validate_group(name: str, values: Any, source: str) -> Group:
    """``values`` as params group ``name``, or a ParamsError: ``source: name.key: expected …, given …``.

    Also for values that come from elsewhere than a params file (command-line flags).
    """
    try:
        return Params.model_fields[name].annotation.model_validate(values)
    except ValidationError as error:
        raise ParamsError(f"{source}: {'; '.join(describe_errors(error, {name: values}, (name,)))}") from None


def _read(path: Path) -> Any:
    try:
        return read_yaml(path)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found (run from the repository root)") from None
    except UnicodeDecodeError as error:
        raise ParamsError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise ParamsError(f"{path}: cannot read ({error.strerror or error})") from None
    except YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error.__class__.__name__})") from None


def validate_params(raw: Any, source: str) -> Params:
    """``raw`` (parsed YAML) as Params, or a ParamsError: ``source: key: expected …, given …; …``."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(f"{source}: {'; '.join(describe_errors(error, raw))}") from None


def describe_errors(error: ValidationError, raw: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    """One ``key: expected …, given …`` phrase per wrong key (the dotted key as ``dvc exp run -S`` takes it).

    ``raw``: the whole parsed file; ``prefix``: the keys of the validated group in it (``("drift",)``),
    none when the whole file was validated. The alternatives of a union (``int | None``) and the items
    of a list make one phrase about their key.
    """
    phrases: dict[tuple[Any, ...], str] = {}
    for detail in error.errors(include_url=False):
        loc, kind = (*prefix, *detail["loc"]), detail["type"]
        if kind == "extra_forbidden" or loc[-1:] == ("[key]",):
            parent = loc[:-1] if kind == "extra_forbidden" else loc[:-2]
            where = loc if kind == "extra_forbidden" else loc[:-1]
            phrases.setdefault(where, f"unknown key (expected one of: {', '.join(_known_keys(parent))})")
            continue
        where = _field_loc(loc)
        if kind == "missing":
            phrases.setdefault(where, f"missing (expected {expected(where)})")
        elif kind == "value_error":  # the schema's own validators say "expected …, given …"
            phrases.setdefault(where, detail["msg"].removeprefix("Value error, "))
        else:
            phrases.setdefault(where, f"expected {expected(where)}, given {_given(_value_at(raw, where))}")
    return [f"{'.'.join(map(str, where)) or '(the whole file)'}: {text}" for where, text in phrases.items()]


def _field_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The longest start of ``loc`` that names a key of the schema (a union's alternative tags dropped)."""
    for end in range(len(loc), -1, -1):
        if _schema_at(loc[:end]) is not None:
            return loc[:end]
    return ()


def _value_at(raw: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _given(value: Any) -> str:
    """A given value and its YAML type: ``'false' (a string)``."""
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    if value is None:
        return "null"
    kind = kinds.get(type(value), "a mapping" if isinstance(value, dict) else "a list")
    return f"{value!r} ({kind})"


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema of params.yaml (pydantic's), which messages and docs/params.md describe."""
    return Params.model_json_schema()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return json_schema()["$defs"][schema["$ref"].rsplit("/", 1)[-1]] | {
            key: value for key, value in schema.items() if key != "$ref"
        }
    return schema


def _schema_at(loc: tuple[Any, ...]) -> dict[str, Any] | None:
    """The JSON Schema of the value at a key path; None where the path names no key of the schema."""
    schema = json_schema()
    for part in loc:
        schema = _resolve(schema)
        if part in schema.get("properties", {}):
            schema = schema["properties"][part]
        elif isinstance(schema.get("additionalProperties"), dict) and part in (
            schema.get("propertyNames", {}).get("enum", ())
        ):
            schema = schema["additionalProperties"]
        else:
            return None
    return _resolve(schema)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    schema = _schema_at(loc) or {}
    return list(schema.get("properties") or schema.get("propertyNames", {}).get("enum", ()))


def expected(loc: tuple[Any, ...]) -> str:
    """What the schema allows at a key path, in words: ``an integer >= 1 or null``."""
    schema = _schema_at(loc)
    return describe_schema(schema) if schema is not None else "nothing here"


def describe_schema(schema: dict[str, Any]) -> str:
    """A JSON Schema fragment in words, as messages and docs/params.md print it."""
    options = _options(schema)
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def _options(schema: dict[str, Any]) -> list[str]:
    schema = _resolve(schema)
    if "anyOf" in schema:
        options = [text for option in schema["anyOf"] for text in _options(option)]
        return options[1:] if options[:2] == ["an integer", "a number"] else options  # int | float
    if "const" in schema or "enum" in schema:
        return [_yaml(value) for value in schema.get("enum", [schema.get("const")])]
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return [f"a mapping with the keys {', '.join(schema['properties'])}"]
    if kind == "object":
        keys = ", ".join(schema.get("propertyNames", {}).get("enum", ())) or "any key"
        return [f"a mapping from some of {keys} to {describe_schema(schema['additionalProperties'])}"]
    if kind == "array":
        low, high = schema.get("minItems"), schema.get("maxItems")
        size = {
            (True, True): f"{low}" if low == high else f"{low} to {high}",
            (True, False): f"at least {low}",
            (False, True): f"at most {high}",
            (False, False): "any number of",
        }[(low is not None, high is not None)]
        return [f"a list of {size} items, each {describe_schema(schema['items'])}"]
    words = {"boolean": "true or false", "null": "null", "integer": "an integer", "number": "a number"}
    text = words.get(kind, "a non-empty string" if schema.get("minLength") else "a string")
    limits = [f"{sign} {schema[name]}" for name, sign in _LIMITS if name in schema]
    if "pattern" in schema:
        limits.append(f"matching {schema['pattern']}")
    return [" ".join([text, " and ".join(limits)]).strip()]


_LIMITS = [("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")]


def _yaml(value: Any) -> str:
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = True
    text = io.StringIO()
    dumper.dump(value, text)
    return text.getvalue().removesuffix("\n...\n").strip()


def markdown() -> str:
    """The reference of every params key, as docs/params.md holds it."""
    lines = [
        "# params.yaml reference",
        "",
        "<!-- Generated from rentprice/params.py:",
        "     `python -m rentprice.params --markdown > docs/params.md`;",
        "     tests/code/test_params.py fails when this page and the schema differ. -->",
        "",
        "Every key is required and no other key is allowed. Values are never converted: `true`/`false`",
        "for booleans, numbers without quotes. The file is read as DVC reads it (YAML 1.2), so `yes`,",
        "`no`, `on` and `off` are strings, as `dvc params diff` shows them, not booleans. Every stage",
        "checks the whole file before any work, so a bad value (in the file or from",
        "`dvc exp run -S key=value`) stops the run with one line naming the key, what was expected and",
        "what was given, and exit code 2, e.g.",
        "",
        "```text",
        "params.yaml: train.log_target: expected true or false, given 'false' (a string)",
        "```",
        "",
        "Check a file without running anything: `python -m rentprice.params params.yaml`.",
        "To add a key, add one field to its group in `rentprice/params.py` and regenerate this page.",
    ]
    for group in Params.model_fields:
        lines += _section((group,), "##")
    return "\n".join(lines) + "\n"


def _section(loc: tuple[str, ...], heading: str) -> list[str]:
    schema = _schema_at(loc) or {}
    key = ".".join(loc)
    summary = schema.get("description", "").split(": ", 1)[-1].capitalize()
    lines = ["", f"{heading} `{key}`", "", summary, "", "| key | allowed values | meaning |", "|---|---|---|"]
    nested = []
    for name, field in schema.get("properties", {}).items():
        field = _resolve(field)
        if "properties" in field:
            nested.append((*loc, name))
            lines.append(f"| `{key}.{name}` | a mapping (below) | {field['description']} |")
        else:
            allowed = describe_schema(field).replace("|", "\\|")
            lines.append(f"| `{key}.{name}` | {allowed} | {field['description']} |")
    for inner in nested:
        lines += _section(inner, heading + "#")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m rentprice.params [FILE]``: check a params file; ``--markdown`` prints the reference."""
    parser = argparse.ArgumentParser(description="Check params.yaml against its schema.")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--markdown", action="store_true", help="print docs/params.md and exit")
    parser.add_argument(
        "--stamp",
        type=Path,
        help="when the file is valid, write this file (always the same bytes): the check_params "
        "stage's output, which collect depends on, so every pipeline run checks params first",
    )
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    try:
        load_params(args.path)
    except ParamsError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    if args.stamp is not None:
        with atomic_path(args.stamp) as temporary:
            temporary.write_text("params.yaml: valid\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
