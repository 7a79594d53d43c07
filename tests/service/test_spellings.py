"""Spellings of one value: one verdict and one rent from the batch script, the API and the web page.

Each case is a listing and the listing it means (spelled as the source does): the batch CLI
(``stages/predict.py`` in its own process), the JSON API and the page must all give the case the
verdict and rent the meant listing gets. A value that is present but not a postcode is rejected by
all three with the same reason; a blank postcode or an unseen district is scored as unknown.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys

import pandas as pd
import pytest

from rentprice.features import GARDEN_ABSENT, garden_area
from rentprice.schema import POSTCODE_NUMBERS, POSTCODE_PATTERN
from rentprice.service.listings import FORM_FIELDS
from tests.support import REPO_ROOT
from tests.support.service import LISTING

PREDICT = "/api/v1/predict"
NOT_A_POSTCODE = "is not a Dutch postcode (1234 AB or 1234, 1000 to 9999)"

#: (listing as given, listing it means), ``{d}``/``{L}``/``{l}`` in a zip standing for the digits and
#: the letters (upper or lower case) of a postcode the model learned; None: no other listing means the
#: same, the verdict is checked by itself.
SAME_AS: list[tuple[dict, dict | None]] = [
    ({"zip": "{d}{l}"}, {}),
    ({"zip": " {d}  {L} "}, {}),
    ({"zip": "NL-{d} {L}"}, {}),
    ({"zip": "nl {d}{l}"}, {}),
    ({"zip": "{d}\u200b{L}"}, {}),
    ({"zip": "{d}"}, {}),  # the postcode area (PC4): the model reads only the four digits
    ({"zip": int}, {}),  # the digits as a number
    ({"garden": "Present (47 m2, located on the north)"}, {}),
    ({"garden": "Present (47 m^2, located on the north)"}, {}),
    ({"garden": "present (47M2)"}, {}),
    ({"energy": "a +"}, {"energy": "A+"}),
    ({"facilities": "Shower; Toilet; Lift"}, {}),
    ({"zip": "10111"}, None),
    ({"zip": 10111}, None),
    ({"zip": "0123 AB"}, None),
    ({"zip": "abc"}, None),
    ({"zip": "1071 HN extra"}, None),
    ({"garden": "Present (47 sq m)"}, None),
    ({"zip": None}, None),
    ({"zip": "9999 ZZ"}, None),
]


def spelled(override: dict, base: dict) -> dict:
    """``base`` with ``override``, a zip template filled with the digits and letters of ``base``'s zip."""
    digits, letters = base["zip"].split()
    zipcode = override.get("zip", base["zip"])
    if zipcode is int:
        zipcode = int(digits)
    elif isinstance(zipcode, str):
        zipcode = zipcode.format(d=digits, L=letters.upper(), l=letters.lower())
    return {**base, **override, "zip": zipcode}


def api_verdicts(client, listings: list[dict]) -> list:
    """Per listing, its rent or (field, reason), and the fields the API treated as unknown."""
    verdicts = []
    for listing in listings:  # one per request: the service's test config allows few per request
        body = client.post(PREDICT, json=listing).json
        if body["predictions"]:
            verdicts.append((body["predictions"][0]["predicted_rent"], sorted(body["treated_as_unknown"])))
        else:
            verdicts.append((body["errors"][0]["field"], body["errors"][0]["reason"]))
    return verdicts


def batch_verdicts(model, listings: list[dict], directory) -> list:
    """Per listing, its rent or (field, reason) from the batch CLI run on a CSV of the listings."""
    pd.DataFrame(listings).to_csv(directory / "in.csv", index=False)
    command = [sys.executable, str(REPO_ROOT / "stages" / "predict.py"), "--model", str(model)]
    command += ["--input", "in.csv", "--output", "out.csv", "--rejects", "rejects.csv"]
    command += ["--max-reject-rate", "1", "--lock", "none.lock"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(command, cwd=directory, env=environment, check=True, capture_output=True)
    scored = pd.read_csv(directory / "out.csv")
    rejects = pd.read_csv(directory / "rejects.csv", keep_default_na=False)
    verdicts = dict(zip(scored["row"], scored["predicted_rent"], strict=True))
    verdicts |= {row: (field, reason) for row, field, reason in rejects[["row", "field", "reason"]].values}
    return [verdicts[row] for row in range(len(listings))]


def page_verdict(client, listing: dict) -> tuple[int, str]:
    """The page's status and text after submitting the form filled with ``listing``."""
    form = {name: "" if listing.get(name) is None else str(listing[name]) for name in FORM_FIELDS}
    form["garden_m2"] = "0" if listing["garden"] == GARDEN_ABSENT else f"{garden_area(listing['garden']):g}"
    response = client.post("/", data=form)
    return response.status_code, html.unescape(response.get_data(as_text=True))


@pytest.fixture(scope="module")
def verdicts(model_files, training_rows, tmp_path_factory):
    """The listings given and meant, and the API's and the batch CLI's verdicts on them, on one model.

    The base listing is in a postcode district and neighborhood the model learned: an unseen one
    would be scored as unknown however it is spelled, and hide a misread postcode.
    """
    from rentprice.service.app import create_app
    from tests.support.service import service_config

    place = training_rows.iloc[0]
    base = {**LISTING, "zip": place["zip"], "neighborhood": place["neighborhood"]}
    given = [spelled(override, base) for override, _ in SAME_AS]
    meant = [spelled(means, base) for _, means in SAME_AS if means is not None]
    directory = tmp_path_factory.mktemp("spellings")
    (directory / "model.joblib").write_bytes(model_files["first"].read_bytes())
    client = create_app(service_config(directory)).test_client()
    return {
        "client": client,
        "given": given,
        "api": api_verdicts(client, given + meant),
        "batch": batch_verdicts(directory / "model.joblib", given + meant, directory),
    }


def verdict_of(verdicts, **override) -> tuple:
    """The API's verdict on the case of SAME_AS given as ``override``."""
    return verdicts["api"][[given for given, _ in SAME_AS].index(override)]


def test_the_batch_cli_and_the_api_give_each_spelling_the_same_verdict_and_rent(verdicts):
    api = [verdict[0] if isinstance(verdict[0], float) else verdict for verdict in verdicts["api"]]
    assert verdicts["batch"] == api


def test_a_spelling_gets_the_verdict_of_the_value_it_means(verdicts):
    count = len(SAME_AS)
    given, meant = verdicts["api"][:count], iter(verdicts["api"][count:])
    for (override, means), verdict in zip(SAME_AS, given, strict=True):
        if means is not None:
            assert verdict == next(meant), override
            assert isinstance(verdict[0], float) and verdict[1] == [], f"{override}: nothing unknown"


@pytest.mark.parametrize("value", ["10111", 10111, "0123 AB", "abc", "1071 HN extra"])
def test_a_value_that_is_not_a_postcode_is_rejected_naming_it_as_read(verdicts, value):
    assert verdict_of(verdicts, zip=value) == ("zip", f"{str(value)!r} {NOT_A_POSTCODE}")


def test_other_spellings_of_square_metres_are_rejected_with_the_reason(verdicts):
    field, reason = verdict_of(verdicts, garden="Present (47 sq m)")
    assert field == "garden" and reason.startswith("'Present (47 sq m)' is not a garden text like")


@pytest.mark.parametrize("value", [None, "9999 ZZ"])
def test_a_blank_postcode_or_an_unseen_district_is_scored_as_unknown(verdicts, value):
    rent, unknown = verdict_of(verdicts, zip=value)
    assert isinstance(rent, float) and unknown == ["zip"]


@pytest.mark.parametrize("index", [i for i, (given, _) in enumerate(SAME_AS) if "garden" not in given])
def test_the_page_gives_the_apis_verdict(verdicts, index):
    """The page types the garden as m² (it cannot take a garden text): garden spellings are the API's."""
    status, page = page_verdict(verdicts["client"], verdicts["given"][index])
    verdict = verdicts["api"][index]
    if isinstance(verdict[0], float):
        assert status == 200 and f"€ {verdict[0]:,.2f}" in page
    else:
        assert status == 422 and verdict[1] in page


def test_the_json_schema_publishes_the_one_postcode_definition(verdicts):
    zipcode = verdicts["client"].get("/api/v1/schema").json["properties"]["zip"]
    assert zipcode["pattern"] == POSTCODE_PATTERN
    assert (zipcode["minimum"], zipcode["maximum"], zipcode["multipleOf"]) == (*POSTCODE_NUMBERS, 1)
    assert "maxLength" not in zipcode, "spacing and an NL- prefix are allowed: no length fits"
