"""The web page in headless Chromium: fill the form, submit, read the rent; see validation messages."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import make_server

from rentprice.schema import postcode_digits
from rentprice.service.app import create_app
from rentprice.service.probe import HOST, call
from tests.support.service import LISTING, service_config

#: Debian's Chromium and its driver (apt-get install chromium chromium-driver): nothing is downloaded.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
#: A quiet, isolated headless browser that contacts nothing but the page it is sent to.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WAIT_SECONDS = 30

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Chromium or its driver is not installed: apt-get install chromium chromium-driver (.ci/run does)",
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
    """Headless Chromium driven by Debian's chromedriver; Selenium Manager stays offline."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def fill(browser: WebDriver, values: dict[str, str]) -> None:
    """Type into the form's controls as a user would, then mark the page, so a reload shows."""
    form = browser.find_element(By.TAG_NAME, "form")
    for name, value in values.items():
        control = form.find_element(By.NAME, name)
        if control.tag_name == "select":  # the option whose value (its text when it has none) matches
            next(
                option for option in Select(control).options if option.get_property("value") == value
            ).click()
        else:
            control.clear()
            control.send_keys(value)
    browser.execute_script("window.notReloaded = true")


def submit(browser: WebDriver) -> None:
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def text_of(browser: WebDriver, element_id: str) -> str:
    """The text of the element ``element_id``, once the page shows it."""
    element = WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.find_elements(By.ID, element_id)
    )
    return element[0].get_property("textContent")


def test_fill_the_form_submit_and_read_the_predicted_rent(browser, live_server):
    browser.get(f"http://{HOST}:{live_server}/")
    fill(browser, TYPED)
    submit(browser)
    shown = text_of(browser, "predicted-rent")
    status, body = call(live_server, "POST", "/api/v1/predict", LISTING)
    assert status == 200
    assert shown == f"€ {body['predictions'][0]['predicted_rent']:,.2f}"
    assert text_of(browser, "model-version") == body["model_version"]
    assert browser.find_element(By.NAME, "area").get_property("value") == "80"


def test_the_browser_explains_an_empty_required_field_without_submitting(browser, live_server):
    browser.get(f"http://{HOST}:{live_server}/")
    fill(browser, {**TYPED, "area": ""})
    submit(browser)
    area = browser.find_element(By.NAME, "area")
    assert browser.execute_script("return arguments[0].validity.valueMissing", area) is True
    assert area.get_property("validationMessage")  # the browser's own wording, shown to the user
    first_invalid = browser.find_element(By.CSS_SELECTOR, "form :is(input, select):invalid")
    assert first_invalid.get_attribute("name") == "area"
    assert browser.execute_script("return window.notReloaded === true && !document.getElementById('outcome')")


def test_the_servers_message_is_shown_next_to_the_field(browser, live_server):
    browser.get(f"http://{HOST}:{live_server}/")
    fill(browser, {**TYPED, "area": "-5"})
    browser.execute_script("document.querySelector('form').noValidate = true")  # as a browser without checks
    submit(browser)
    assert text_of(browser, "area-error") == "must be positive, got -5"
    assert browser.find_element(By.ID, "outcome").get_attribute("role") == "alert"
    assert browser.find_elements(By.ID, "predicted-rent") == []


#: Postcodes as a user types them into the form (no invisible characters: no pattern can drop them).
TYPED_POSTCODES = (
    *("1071 HN", "1071hn", " 1071  HN ", "1071\u00a0HN", "NL-1071 HN", "nl 1071hn", "NL - 1071 HN"),
    *("1071", "1000 AA", "9999 ZZ", "10111", "0123 AB", "999", "abc", "1071 HN extra", "1071 H"),
    *("HN 1071", "NL--1071", "BE-1071 HN", "1071 \u00df", "\uff11\uff10\uff17\uff11 HN", "1071.5"),
)


def test_the_forms_and_the_json_schemas_postcode_pattern_agree_with_the_server(browser, live_server):
    """The published patterns, run by Chromium's own regular expressions, accept what the server does."""
    browser.get(f"http://{HOST}:{live_server}/")
    zipcode = browser.find_element(By.NAME, "zip")
    _, schema = call(live_server, "GET", "/api/v1/schema")
    pattern = schema["properties"]["zip"]["pattern"]
    for value in TYPED_POSTCODES:
        in_form = browser.execute_script(
            "arguments[0].value = arguments[1]; return !arguments[0].validity.patternMismatch", zipcode, value
        )
        # JSON Schema: an ECMA-262 regular expression, unanchored, with Unicode semantics
        search = "return new RegExp(arguments[0], 'u').test(arguments[1])"
        in_schema = browser.execute_script(search, pattern, value)
        assert in_form == in_schema == (postcode_digits(value) is not None), value
    assert zipcode.get_attribute("maxlength") is None, "spacing and an NL- prefix make any length too short"
