"""The web page in headless Chromium: fill the form, submit, read the rent; see validation messages."""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from rentprice.service import create_app
from tests.service.chromium_support import Chromium, chromium_binary
from tests.service.conftest import LISTING, service_config
from tests.service.server_support import HOST, call

pytestmark = pytest.mark.skipif(
    chromium_binary() is None,
    reason="Chromium is not installed: apt-get install chromium (.ci/run installs it for CI)",
)

#: What a user types into the form for LISTING.
TYPED = {
    "area": "80",
    "rooms": "3",
    "bedrooms": "2",
    "bathrooms": "1",
    "construction_year": "1930",
    "energy": "A",
    "garden_m2": "47",
    "balcony": "yes",
    "furnished": "yes",
    "facilities": LISTING["facilities"],
    "zip": LISTING["zip"],
    "neighborhood": LISTING["neighborhood"],
    "address": LISTING["address"],
}


@pytest.fixture
def live_server(service_dir):
    """The app served on a free loopback port by werkzeug in a thread; yields the port."""
    server = make_server(HOST, 0, create_app(service_config(service_dir)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Chromium(chromium_binary(), tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


def fill(browser: Chromium, values: dict[str, str]) -> None:
    """Set form controls as a user would and mark the page, so a reload or navigation shows."""
    browser.evaluate(
        f"""(() => {{
            const form = document.querySelector("form");
            for (const [name, value] of Object.entries({json.dumps(values)})) {{
                const control = form.elements[name];
                control.value = value;
                control.dispatchEvent(new Event("input", {{bubbles: true}}));
            }}
            window.notReloaded = true;
        }})()"""
    )


def test_fill_the_form_submit_and_read_the_predicted_rent(browser, live_server):
    browser.open(f"http://{HOST}:{live_server}/")
    fill(browser, TYPED)
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    shown = browser.wait_for("document.getElementById('predicted-rent')?.textContent")
    status, body = call(live_server, "POST", "/api/v1/predict", LISTING)
    assert status == 200
    assert shown == f"€ {body['predictions'][0]['predicted_rent']:,.2f}"
    assert browser.evaluate("document.getElementById('model-version').textContent") == body["model_version"]
    assert browser.evaluate("document.querySelector('form').elements.area.value") == "80"


def test_the_browser_explains_an_empty_required_field_without_submitting(browser, live_server):
    browser.open(f"http://{HOST}:{live_server}/")
    fill(browser, {**TYPED, "area": ""})
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    message = browser.evaluate("document.querySelector('form').elements.area.validationMessage")
    assert message  # the browser's own wording, e.g. "Please fill out this field."
    assert browser.evaluate("document.querySelector('form :is(input, select):invalid').name") == "area"
    assert browser.evaluate("window.notReloaded === true && !document.getElementById('outcome')")


def test_the_servers_message_is_shown_next_to_the_field(browser, live_server):
    browser.open(f"http://{HOST}:{live_server}/")
    fill(browser, {**TYPED, "area": "-5"})
    browser.evaluate("document.querySelector('form').noValidate = true")  # as a browser without checks
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    shown = browser.wait_for("document.getElementById('area-error')?.textContent")
    assert shown == "must be positive, got -5"
    assert browser.evaluate("document.getElementById('outcome').getAttribute('role')") == "alert"
    assert browser.evaluate("document.getElementById('predicted-rent')") is None
