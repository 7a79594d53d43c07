"""The web page ``/``: a form with every listing field that shows the predicted rent (no JavaScript)."""

from __future__ import annotations

from http import HTTPStatus

from flask import Blueprint, abort, render_template, request

from rentprice.schema import GARDEN_M2, LISTING, YES_NO_COLUMNS
from rentprice.scoring import FIELD, PREDICTION, REASON, ranges_of
from rentprice.service.drift import record_scored
from rentprice.service.listings import FORM_FIELDS, RANGE_HIGH, RANGE_LOW, Verdict, form_listing, judge
from rentprice.service.models import ServedModel, served

web = Blueprint("web", __name__)

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
DEFAULTS = {**dict.fromkeys(FORM_FIELDS, ""), **dict.fromkeys(YES_NO_COLUMNS, "no"), GARDEN_M2: "0"}


@web.get("/")
def index() -> str:
    """The empty form."""
    return page(served(), DEFAULTS)


@web.post("/")
def submit() -> tuple[str, int]:
    """Score the submitted form: the form again with the predicted rent or the server's messages."""
    if request.mimetype not in FORM_TYPES:
        abort(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "submit the form as application/x-www-form-urlencoded")
    model = served()
    values = {name: request.form.get(name, "") for name in FORM_FIELDS}
    repeated = [name for name in FORM_FIELDS if len(request.form.getlist(name)) > 1]
    if repeated:  # as the API and the batch refuse a field given twice: which one is meant is a guess
        field = "garden" if repeated[0] == GARDEN_M2 else repeated[0]
        verdict = Verdict([], [{FIELD: field, REASON: "given more than once; keep one"}], {})
        return page(model, values, verdict), HTTPStatus.UNPROCESSABLE_ENTITY
    listings = [form_listing(values)]
    verdict = judge(listings, model.bundle)
    record_scored(listings, verdict.predictions)
    status = HTTPStatus.OK if verdict.predictions else HTTPStatus.UNPROCESSABLE_ENTITY
    return page(model, values, verdict), status


def percent(level: float) -> str:
    """A share as the page shows it in percent, without rounding away a level: 0.8 → 80, 0.995 → 99.5."""
    return f"{round(level * 100, 6):g}"


def page(model: ServedModel, values: dict[str, str], verdict: Verdict | None = None) -> str:
    """The page with the form filled with ``values`` and, after a submit, its outcome."""
    return render_template(
        "index.html",
        values=values,
        model_version=model.version,
        neighborhoods=model.neighborhoods,
        fields=LISTING,
        ranges=ranges_of(model.bundle),
        rent=verdict.predictions[0][PREDICTION] if verdict and verdict.predictions else None,
        low=verdict.predictions[0][RANGE_LOW] if verdict and verdict.predictions else None,
        high=verdict.predictions[0][RANGE_HIGH] if verdict and verdict.predictions else None,
        range_percent=percent(model.bundle["range"]["level"]),
        errors={error[FIELD]: error[REASON] for error in verdict.errors} if verdict else {},
        unknown=sorted(verdict.treated_as_unknown) if verdict else [],
    )
