"""A tiny fitted model of this project, shared by the scoring and predict stage tests."""

from pathlib import Path

from rentprice.drift import training_profile
from rentprice.model import build_model, calibrate_range, fit_model, save_model
from rentprice.scoring import RANGES, trained_ranges
from tests.support import listings, small_train

TRAIN = small_train()
PLACES = [("1071 HN", "Cornelis Schuytbuurt"), ("1011 AB", "Oosterdokseiland")]


def training_rows():
    """Thirty valid listings in two places, rent growing with area; the other numbers vary too.

    Trained ranges: area 20 to 185 m², construction year 1900 to 2016, rooms 1 to 6, bedrooms 0 to 4,
    bathrooms 1 to 3, garden 0 to 145 m² (VALID_LISTING lies inside all of them).
    """
    return listings(
        {"area": 20.0, "rent": 700.0, "garden": "Not present"},
        *(
            {
                "area": 40.0 + 5 * i,
                "rent": 900.0 + 60 * i,
                "construction_year": 1900.0 + 4 * i,
                "rooms": 1.0 + i % 6,
                "bedrooms": float(i % 5),
                "bathrooms": 1.0 + i % 3,
                "garden": f"Present ({5 * i} m²)",
                "zip": PLACES[i % 2][0],
                "neighborhood": PLACES[i % 2][1],
            }
            for i in range(30)
        ),
    )


def save_tiny_model(path: Path, family: str = "random_forest") -> Path:
    """Fit the tiny model of ``family`` and save it as a model file at ``path``.

    Its range is calibrated on its in-sample residuals: too narrow for real use, enough for the tests.
    Like the train stage's, it carries the drift profile of its training rows.
    """
    frame = training_rows()
    train = {**TRAIN, "model": family}
    plausible = {"construction_year": [1500, 2030]}
    model = fit_model(build_model(train, plausible), frame, frame["rent"], "tiny")
    calibration = calibrate_range(frame["rent"], model.predict(frame), train["range_level"])
    metadata = {"params": train, "range": calibration, RANGES: trained_ranges(model, frame)}
    save_model(model, path, metadata | {"drift_profile": training_profile(frame, plausible)})
    return path
