"""The web page through Flask's test client: the form, its outcome, escaping and limits."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from werkzeug.datastructures import MultiDict

from rentprice.features import ENERGY_LABELS
from rentprice.io import file_md5
from rentprice.model import load_model
from rentprice.scoring import known_locations
from rentprice.service import web
from rentprice.service.web import FORM_FIELDS
from tests.support.service import LISTING, MAX_REQUEST_BYTES

#: The form as a user fills it in for LISTING (garden "Present (47 m², ...)" → 47 m²).
FORM = {
    **{name: str(LISTING[name]) for name in FORM_FIELDS if name in LISTING},
    "area": "80",
    "construction_year": "1930",
    "rooms": "3",
    "bedrooms": "2",
    "bathrooms": "1",
    "garden_m2": "47",
}


class Controls(HTMLParser):
    """The form controls of a page: name → (tag, attributes), and the datalist options."""

    def __init__(self, page: str):
        super().__init__()
        self.controls: dict[str, tuple[str, dict]] = {}
        self.options: dict[str, list[str]] = {}
        self._datalist = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select") and "name" in attributes:
            self.controls[attributes["name"]] = (tag, attributes)
        elif tag == "datalist":
            self._datalist = attributes["id"]
            self.options[self._datalist] = []
        elif tag == "option" and self._datalist:
            self.options[self._datalist].append(attributes["value"])

    def handle_endtag(self, tag):
        if tag == "datalist":
            self._datalist = None


def page_text(response) -> str:
    return response.get_data(as_text=True)


def test_the_form_has_every_listing_field_with_sensible_inputs(client, service_dir):
    response = client.get("/")
    assert response.status_code == 200
    controls = Controls(page_text(response)).controls
    assert set(controls) == set(FORM_FIELDS)
    for name in ("area", "rooms", "bedrooms", "bathrooms", "construction_year", "garden_m2"):
        assert controls[name][0] == "input"
        assert controls[name][1]["type"] == "number"
    for name in ("area", "rooms", "bedrooms", "bathrooms", "garden_m2"):
        assert "required" in controls[name][1]
    assert "required" not in controls["construction_year"][1]
    for name in ("balcony", "storage", "parking", "furnished", "garage", "energy"):
        assert controls[name][0] == "select"
    options = re.findall(r"<option(?: selected)?>([^<]+)</option>", page_text(response))
    assert set(ENERGY_LABELS) <= set(options)
    assert controls["neighborhood"][1]["list"] == "neighborhoods"
    assert file_md5(service_dir / "model.joblib") in page_text(response)


def test_neighborhood_suggestions_are_the_ones_the_model_learned(client, service_dir):
    suggested = Controls(page_text(client.get("/"))).options["neighborhoods"]
    learned = known_locations(load_model(service_dir / "model.joblib")["pipeline"])[1]
    assert suggested == sorted(learned - {"unknown"})
    assert len(suggested) > 20


def test_submitting_the_form_shows_the_rent_and_its_range_the_api_predicts(client, service_dir):
    response = client.post("/", data=FORM)
    assert response.status_code == 200
    prediction = client.post("/api/v1/predict", json=LISTING).json["predictions"][0]
    rent, low, high = prediction["predicted_rent"], prediction["low"], prediction["high"]
    assert f'<strong id="predicted-rent">€ {rent:,.2f}</strong>' in page_text(response)
    level = load_model(service_dir / "model.joblib")["range"]["level"]
    shown = f"{round(level * 100, 6):g}"
    assert f'<p id="rent-range">€ {low:,.0f} – {high:,.0f} ({shown}% range)</p>' in page_text(response)  # noqa: RUF001
    controls = Controls(page_text(response)).controls
    assert controls["area"][1]["value"] == "80"


def test_no_garden_and_unknown_values_are_explained(client):
    response = client.post("/", data={**FORM, "garden_m2": "0", "energy": "", "neighborhood": "Atlantis"})
    assert response.status_code == 200
    assert "treated as unknown to the model: energy, neighborhood, zip." in page_text(response)


def test_server_side_messages_name_the_field(client):
    response = client.post("/", data={**FORM, "area": "-5", "garden_m2": "lots"})
    assert response.status_code == 422
    text = page_text(response)
    assert 'id="predicted-rent"' not in text
    assert "<li>area: must be positive, got -5</li>" in text
    assert '<span class="error" id="area-error">must be positive, got -5</span>' in text
    assert 'aria-describedby="area-error"' in text


def test_a_field_given_twice_is_refused_as_the_api_refuses_it(client):
    form = MultiDict([*FORM.items(), ("area", "9000")])
    response = client.post("/", data=form)
    assert response.status_code == 422
    text = page_text(response)
    assert 'id="predicted-rent"' not in text and "<li>area: given more than once; keep one</li>" in text


def test_user_input_is_escaped(client):
    attack = '"><script>alert(1)</script>'
    response = client.post("/", data={**FORM, "neighborhood": attack, "address": attack, "area": attack})
    text = page_text(response)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert Controls(text).controls["neighborhood"][1]["value"] == attack


def test_the_page_refuses_other_content_types_and_oversize_forms(client):
    wrong = client.post("/", json=LISTING)
    assert wrong.status_code == 415
    assert wrong.mimetype == "text/plain"
    huge = client.post("/", data={**FORM, "address": "x" * MAX_REQUEST_BYTES})
    assert huge.status_code == 413
    assert (
        page_text(huge)
        == f"413 Request Entity Too Large: the request is larger than {MAX_REQUEST_BYTES} bytes\n"
    )


def test_the_stylesheet_is_served(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"


def test_number_inputs_are_bounded_by_the_ranges_the_model_was_trained_on(client, service_dir):
    ranges = load_model(service_dir / "model.joblib")["ranges"]
    controls = Controls(page_text(client.get("/"))).controls
    for name in ("area", "rooms", "bedrooms", "bathrooms", "construction_year", "garden_m2"):
        attributes = controls[name][1]
        assert [float(attributes["min"]), float(attributes["max"])] == ranges[name], name


@pytest.mark.parametrize(("level", "shown"), [(0.8, "80"), (0.875, "87.5"), (0.995, "99.5"), (0.999, "99.9")])
def test_the_range_level_is_shown_as_set_not_rounded_to_a_whole_percent(level, shown):
    assert web.percent(level) == shown
