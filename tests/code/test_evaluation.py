import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from rentprice.errors import ParamsError
from rentprice.evaluation import (
    cv_mae,
    fit_with_cv,
    gain,
    grouped_folds,
    out_of_fold_predictions,
    range_metrics,
)
from rentprice.model import build_model, calibrate_range, conformity_scores, range_factor
from tests.code.scoring_fixtures import TRAIN, training_rows

CV = {"folds": 3, "repeats": 2, "seed": 7}


def test_grouped_folds_keep_each_address_on_one_side_and_differ_between_repeats():
    groups = pd.Series([f"address {i % 10}" for i in range(40)])
    folds = grouped_folds(groups, CV)
    assert len(folds) == CV["repeats"] and all(len(pairs) == CV["folds"] for pairs in folds)
    for pairs in folds:
        held_out = np.concatenate([validation for _, validation in pairs])
        assert sorted(held_out) == list(range(40))
        for fit_rows, validation in pairs:
            assert not set(groups.iloc[fit_rows]) & set(groups.iloc[validation])
    assert [v.tolist() for _, v in folds[0]] != [v.tolist() for _, v in folds[1]]


@pytest.mark.parametrize("family", ["random_forest", "catboost"])
def test_cross_validation_figures_are_reproducible(family):
    frame = training_rows()
    frame = frame.assign(address=[f"a{i % 12}" for i in range(len(frame))])
    train = {**TRAIN, "model": family}

    def figures():
        folds = grouped_folds(frame["address"], CV)
        build = lambda: build_model(train, {})  # noqa: E731
        return out_of_fold_predictions(build, frame, frame["rent"], folds)

    first, second = figures(), figures()
    assert first.shape == (CV["repeats"], len(frame)) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert cv_mae(frame["rent"], first) == cv_mae(frame["rent"], second)


def test_a_parallel_forest_predicts_its_out_of_fold_rents_on_one_thread(monkeypatch):
    """On threads it sums its trees in completion order: now and then a rent rounds to another cent."""
    frame = training_rows().assign(address=lambda rows: [f"a{i % 12}" for i in range(len(rows))])
    threads = []
    predict = RandomForestRegressor.predict

    def recording(forest, features):
        threads.append(forest.n_jobs)
        return predict(forest, features)

    monkeypatch.setattr(RandomForestRegressor, "predict", recording)
    build = lambda: build_model({**TRAIN, "model": "random_forest", "n_jobs": 2}, {})  # noqa: E731
    out_of_fold_predictions(build, frame, frame["rent"], grouped_folds(frame["address"], CV))
    assert threads and set(threads) == {1}


def test_cv_mae_is_the_mean_and_spread_of_the_per_repeat_maes():
    actual = pd.Series([100.0, 200.0])
    assert cv_mae(actual, np.array([[110.0, 190.0], [130.0, 170.0]])) == {"mae": 20.0, "mae_std": 14.1421}
    assert gain(75.0, 100.0) == 0.25


def test_the_range_factor_is_the_conformal_quantile_of_the_scores():
    scores = conformity_scores(np.full(9, 100.0), 100.0 * np.exp(np.arange(1, 10) / 10))
    np.testing.assert_allclose(scores, np.arange(1, 10) / 10)
    # n = 9, level 0.8: the ceil(10 * 0.8) = 8th smallest score
    assert range_factor(scores, 0.8) == pytest.approx(np.exp(0.8))
    assert range_factor(scores, 0.5) == pytest.approx(np.exp(0.5))
    assert range_factor(scores, 0.95) == float("inf")
    with pytest.raises(ValueError, match="between 0 and 1"):
        range_factor(scores, 1.0)


def test_calibration_pools_the_repeats_and_range_metrics_count_coverage_and_width():
    calibration = calibrate_range(np.array([100.0, 200.0]), np.array([[100.0, 100.0], [200.0, 400.0]]), 0.5)
    assert calibration["level"] == 0.5 and len(calibration["scores"]) == 4
    metrics = range_metrics(pd.Series([100.0, 300.0]), np.array([90.0, 100.0]), np.array([110.0, 200.0]))
    assert metrics == {"range_coverage": 0.5, "range_median_width": 60.0}


ADDRESSES = pd.Series([f"address {i % 4}" for i in range(12)])


@pytest.mark.parametrize("folds", [5, 20], ids=["more than addresses", "more than rows"])
def test_more_folds_than_addresses_is_one_params_line(folds):
    cv = {"folds": folds, "repeats": 1, "seed": 0}
    message = rf"^p\.yaml: cv\.folds: {folds} folds need at least {folds} addresses; the train split has 4$"
    with pytest.raises(ParamsError, match=message):
        grouped_folds(ADDRESSES, cv, "p.yaml")


def test_the_largest_cv_seed_shuffles_every_repeat_and_smaller_seeds_keep_their_folds():
    last = grouped_folds(ADDRESSES, {"folds": 2, "repeats": 3, "seed": 2**32 - 1})
    assert len(last) == 3
    # the seed of repeat r is seed + r, as before (the committed folds do not move)
    kept = grouped_folds(ADDRESSES, {"folds": 2, "repeats": 2, "seed": 41})[1]
    again = grouped_folds(ADDRESSES, {"folds": 2, "repeats": 1, "seed": 42})[0]
    assert [v.tolist() for _, v in kept] == [v.tolist() for _, v in again]


def test_a_range_level_too_high_for_the_out_of_fold_rents_is_one_params_line():
    frame = training_rows().assign(address=lambda rows: [f"a{i % 12}" for i in range(len(rows))])
    # 31 rows x 1 repeat = 31 scores; a finite range at level 0.99 needs ceil(0.99 / 0.01) = 99
    params = {
        "train": {**TRAIN, "range_level": 0.99},
        "cv": {"folds": 3, "repeats": 1, "seed": 0},
        "prepare": {"plausible": {}},
    }
    message = (
        r"^p\.yaml: train\.range_level: 0\.99 needs at least 99 out-of-fold rents for a finite range; "
        r"the grouped CV gives 31 \(31 rows x 1 repeats\): lower it or raise cv\.repeats$"
    )
    with pytest.raises(ParamsError, match=message):
        fit_with_cv(params, frame, "p.yaml")
    params["train"]["range_level"] = 0.95  # needs 19
    _, fitted = fit_with_cv(params, frame, "p.yaml")
    assert np.isfinite(range_factor(fitted["range"]["scores"], 0.95))
