"""Drift of scored listings from the training profile: PSI per feature, unseen categories, verdict."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from rentprice.drift import (
    DEFAULT_THRESHOLDS,
    NO_PROFILE,
    DriftMonitor,
    add_counts,
    count_bins,
    describe,
    drift_summary,
    psi,
    training_profile,
)
from rentprice.io import read_sql_table, read_yaml
from rentprice.model import build_model, calibrate_range, save_model
from rentprice.schema import SOURCE_TABLE_COLUMNS, coerce_types
from rentprice.scoring import RANGES, trained_ranges
from tests.code.scoring_fixtures import TRAIN, training_rows
from tests.code.test_predict_cli import load_stage
from tests.support import REPO_ROOT, SOURCE_DB, listings

PARAMS = read_yaml(REPO_ROOT / "params.yaml")
THRESHOLDS = PARAMS["drift"]
PLAUSIBLE = PARAMS["prepare"]["plausible"]


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    """The real listings, typed as collect writes them (the source snapshot that `make setup` pulls)."""
    raw = read_sql_table(f"sqlite:///{SOURCE_DB}", PARAMS["collect"]["table"], SOURCE_TABLE_COLUMNS)
    return coerce_types(raw, "source")


@pytest.fixture(scope="module")
def profile(source) -> dict:
    return training_profile(source, PLAUSIBLE)


def summarise(profile: dict, batch: pd.DataFrame, chunks: int = 4) -> dict:
    monitor = DriftMonitor(profile)
    for part in np.array_split(np.arange(len(batch)), chunks):
        monitor.update(batch.iloc[part])
    return monitor.summary(THRESHOLDS)


def test_psi_of_hand_computed_shares():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75)
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(0.25 * math.log(3))


def test_profile_is_compact_json_with_training_shares_summing_to_one(profile, source):
    assert profile["rows"] == len(source)
    assert len(json.dumps(profile)) < 20_000
    for name, feature in profile["features"].items():
        assert sum(feature["shares"]) == pytest.approx(1, abs=1e-5), name
    assert len(profile["features"]["area"]["edges"]) == 9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_resample_of_the_training_data_shows_no_drift(profile, source, seed):
    summary = summarise(profile, source.sample(len(source), replace=True, random_state=seed))
    assert summary["verdict"] == "no drift", describe(summary)
    assert summary["max_psi"] < THRESHOLDS["psi_warn"]
    assert all(values.get("unseen_share", 0) == 0 for values in summary["features"].values())


@pytest.mark.parametrize("rows", [200, 300, 500])
def test_small_resamples_of_the_training_data_show_no_drift(profile, source, rows):
    """A batch of a few hundred rows has a noisy PSI (a district profile has 33 bins): noise is no drift."""
    thresholds = {**THRESHOLDS, "min_rows": 50}
    for seed in range(10):
        monitor = DriftMonitor(profile)
        monitor.update(source.sample(rows, replace=True, random_state=seed))
        summary = monitor.summary(thresholds)
        assert summary["verdict"] == "no drift", (seed, describe(summary))


@pytest.mark.parametrize("rows", [100, 200, 300])
def test_a_clear_shift_of_a_small_batch_still_alerts(profile, source, rows):
    batch = source.sample(rows, replace=True, random_state=0)
    monitor = DriftMonitor(profile)
    monitor.update(batch.assign(area=batch["area"] * 1.5))
    assert monitor.summary({**THRESHOLDS, "min_rows": 50})["verdict"] == "drift alert"


@pytest.mark.parametrize(("column", "feature"), [("neighborhood", "neighborhood"), ("zip", "district")])
def test_missing_locations_count_as_missing_not_unseen(profile, source, column, feature):
    batch = source.copy()
    batch.loc[batch.index[::2], column] = None
    batch.loc[batch.index[1::4], column] = "  "
    values = summarise(profile, batch)["features"][feature]
    assert values["unseen_share"] == 0
    assert values["missing_share"] == pytest.approx(0.75, abs=0.01)


def test_larger_areas_are_a_drift_alert_on_area(profile, source):
    summary = summarise(profile, source.assign(area=source["area"] * 1.5))
    assert summary["verdict"] == "drift alert"
    assert summary["max_psi_feature"] == "area" and summary["max_psi"] >= THRESHOLDS["psi_alert"]
    assert summary["features"]["rooms"]["psi"] == 0


def test_an_unseen_district_is_counted_and_alerts(profile, source):
    shifted = source.copy()
    shifted.loc[shifted.index[: len(source) // 5], "zip"] = "9999 ZZ"
    summary = summarise(profile, shifted)
    district = summary["features"]["district"]
    assert district["unseen_share"] == pytest.approx((len(source) // 5) / len(source), abs=1e-4)
    assert district["psi"] >= THRESHOLDS["psi_alert"] and summary["verdict"] == "drift alert"
    assert summary["features"]["area"]["psi"] == 0
    assert "unseen district 20.0%" in describe(summary)


def test_an_empty_batch_has_a_summary_without_statistics(profile):
    summary = summarise(profile, listings().iloc[:0])
    assert (summary["rows"], summary["verdict"], summary["max_psi"]) == (0, "no rows", None)
    assert all(values["psi"] is None for values in summary["features"].values())
    assert json.loads(json.dumps(summary)) == summary
    assert describe(summary) == "drift: no rows (no rows scored)"


def test_a_small_batch_gets_no_verdict(profile, source):
    summary = summarise(profile, source.head(THRESHOLDS["min_rows"] - 1), chunks=1)
    assert summary["verdict"] == "too few rows" and summary["max_psi"] is not None


def test_counts_of_chunks_add_up_to_the_counts_of_the_batch(profile, source):
    whole = count_bins(source, profile)
    parts = None
    for part in np.array_split(np.arange(len(source)), 7):
        parts = add_counts(parts, count_bins(source.iloc[part], profile))
    assert parts.keys() == whole.keys()
    assert all((parts[name] == whole[name]).all() for name in whole)


def test_raw_text_values_bin_as_their_numbers_and_bad_ones_as_missing(profile):
    typed = listings({"area": 80.0, "construction_year": 1005.0}, {"area": None})
    text = listings({"area": "80", "construction_year": "1005"}, {"area": "12a"})
    assert {k: v.tolist() for k, v in count_bins(text, profile).items()} == {
        k: v.tolist() for k, v in count_bins(typed, profile).items()
    }
    counts = count_bins(typed, profile)
    assert counts["area"][-1] == 1 and counts["construction_year"][-1] == 1  # 1005: implausible


def test_a_model_without_a_profile_says_so():
    monitor = DriftMonitor(None)
    monitor.update(listings())
    assert monitor.summary(THRESHOLDS) == {"verdict": NO_PROFILE}
    assert describe(monitor.summary(THRESHOLDS)) == f"drift: {NO_PROFILE}"


def test_summary_thresholds_come_from_the_arguments(profile, source):
    counts = count_bins(source.assign(area=source["area"] * 1.1), profile)
    low = drift_summary(profile, counts, {**THRESHOLDS, "psi_warn": 0.0, "psi_alert": 1e9})
    high = drift_summary(profile, counts, {**THRESHOLDS, "psi_warn": 1e9, "psi_alert": 1e9})
    assert (low["verdict"], high["verdict"]) == ("drift warning", "no drift")


def test_predict_writes_the_summary_of_the_scored_rows_beside_its_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    frame = training_rows()
    plausible = {"construction_year": [1500, 2030]}
    model = build_model(TRAIN, plausible).fit(frame, frame["rent"])
    metadata = {
        "drift_profile": training_profile(frame, plausible),
        "range": calibrate_range(frame["rent"], model.predict(frame), 0.8),
        RANGES: trained_ranges(model, frame),
    }
    save_model(model, tmp_path / "model.joblib", metadata)
    # the larger half of the training flats, ten times: shifted, yet inside the ranges the model can
    # judge, and enough rows for the shift to stand above the sampling noise of so small a profile
    batch = pd.concat([frame.nlargest(15, "area")] * 10, ignore_index=True)
    batch.loc[0, "balcony"] = "maybe"  # rejected: not part of what is scored
    batch.to_csv(tmp_path / "in.csv", index=False)
    argv = ["--model", "model.joblib", "--input", "in.csv", "--output", "out.parquet", "--min-rows", "10"]
    assert load_stage().main(argv) == 0
    summary = json.loads((tmp_path / "out.parquet.drift.json").read_text(encoding="utf-8"))
    assert (summary["rows"], summary["verdict"]) == (149, "drift alert")
    area = summary["features"]["area"]
    assert area["psi"] >= max(DEFAULT_THRESHOLDS["psi_alert"], area["psi_noise"])
    balcony = summary["features"]["balcony"]
    assert balcony["psi"] < max(DEFAULT_THRESHOLDS["psi_warn"], balcony["psi_noise"])
    assert describe(summary) in capsys.readouterr().err


def test_monitors_of_parts_merged_equal_one_monitor_of_the_whole(profile, source):
    batch = source.sample(600, random_state=3)
    parts = [DriftMonitor(profile) for _ in range(3)]
    parts[0].update(batch.iloc[:250])
    parts[1].update(batch.iloc[250:])  # parts[2] scored nothing
    merged = DriftMonitor(profile)
    for part in parts:
        merged.merge(part)
    assert merged.summary(THRESHOLDS) == summarise(profile, batch, chunks=1)
    empty = DriftMonitor(profile)
    empty.merge(DriftMonitor(profile))
    assert empty.summary(THRESHOLDS)["verdict"] == "no rows"
    without = DriftMonitor(None)
    without.merge(DriftMonitor(None))
    assert without.summary(THRESHOLDS) == {"verdict": NO_PROFILE}


def test_the_worst_feature_named_is_one_above_its_noise_floor(profile, source):
    """In a small batch a many-binned feature can have the largest PSI and still be noise."""
    monitor = DriftMonitor(profile)
    monitor.update(source.sample(200, replace=True, random_state=0).assign(balcony="Yes"))
    summary = monitor.summary({**THRESHOLDS, "min_rows": 50})
    worst = summary["features"][summary["max_psi_feature"]]
    assert summary["verdict"] == "drift alert" and summary["max_psi_feature"] == "balcony"
    assert worst["psi"] >= worst["psi_noise"] and summary["max_psi"] == worst["psi"]


def test_spellings_of_one_energy_label_or_postcode_fall_in_one_bin():
    """``a +`` is the label ``A+`` and ``NL-1071 hn`` the district 1071 for drift as for the model."""
    frame = listings(*({"energy": "A+", "zip": "1071 HN"} for _ in range(10)))
    profile = training_profile(frame, {})
    spelled = listings({"energy": "a +", "zip": "NL-1071 hn"}, {"energy": "A\u200b+", "zip": "1071"})
    counts = count_bins(spelled, profile)
    assert counts["energy"].tolist() == count_bins(frame.head(2), profile)["energy"].tolist()
    assert counts["district"].tolist() == count_bins(frame.head(2), profile)["district"].tolist()
