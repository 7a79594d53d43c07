import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import TargetEncoder
from sklearn.utils import estimator_checks

from rentprice.features import (
    FacilitiesEncoder,
    ImplausibleToMissing,
    ListingFeatures,
    categorical_columns,
    energy_rank,
    facility_list,
    factorize,
    feature_columns,
    garden_area,
    location_keys,
    map_distinct,
    postcode_number,
    switched_on,
    target_encoded,
    yes_no,
)
from tests.support import listings

ALL_GROUPS = {"amenities": True, "garden": True, "energy": True, "facilities": True, "location": True}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Present (47 m², located on the north)", 47.0),
        ("Present (26 m², located on the south-east)", 26.0),
        ("Present (60 m²)", 60.0),
        ("Present (500 m², located on the west)", 500.0),
        ("Not present", 0.0),
        ("  Not present ", 0.0),
        # square metres as people write them: m², m2, m^2, with or without a space, any case
        ("Present (47 m2)", 47.0),
        ("Present (47 m^2)", 47.0),
        ("Present (47m²)", 47.0),
        ("Present (47m2)", 47.0),
        ("present (47 M2)", 47.0),
        ("PRESENT (47 M^2, LOCATED ON THE NORTH)", 47.0),
        ("Present (12.5 m2, located on the south-west)", 12.5),
        ("Present (47 m2, located on the south west)", 47.0),
        ("Present(47 m2)", 47.0),
        ("Present ( 47 m2 , located on the north )", 47.0),
        ("Present\u00a0(47\u200b m2)", 47.0),
    ],
)
def test_garden_area_parses_source_texts_and_spellings_of_square_metres(text, expected):
    assert garden_area(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Present",
        "Present (large)",
        "Present (47)",
        "Present (47 sq m)",
        "Present (47 m3)",
        "Present (47 m 2)",
        "Present (47 m²",
        "Present (47 m²) extra",
        "Present (47 m², located on the moon and back)",
        "Present (-47 m²)",
        "Present (47,5 m²)",
        "47",
        "",
        None,
        np.nan,
        47,
    ],
)
def test_garden_area_is_nan_for_unparseable_text(text):
    assert np.isnan(garden_area(text))


@pytest.mark.parametrize(("value", "expected"), [("yes", 1.0), ("no", 0.0), (" YES ", 1.0), ("No", 0.0)])
def test_yes_no(value, expected):
    assert yes_no(value) == expected


@pytest.mark.parametrize("value", ["maybe", "", None, 1, np.nan])
def test_yes_no_unknown_is_nan(value):
    assert np.isnan(yes_no(value))


def test_energy_rank_orders_labels_from_g_to_a_plus():
    ranks = [energy_rank(label) for label in ["G", "F", "E", "D", "C", "B", "A", "A+", "A++", "A+++++"]]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert energy_rank(" a+ ") == energy_rank("A+")


@pytest.mark.parametrize("label", ["None", "", "Z", "A-", "A1", "A +x", "A ++++++", None, np.nan])
def test_energy_rank_unknown_is_nan(label):
    assert np.isnan(energy_rank(label))


def test_facility_list_splits_and_handles_none():
    assert facility_list("Shower, Toilet,  Lift") == ["shower", "toilet", "lift"]
    assert facility_list(" shower,\u00a0TOILET , None") == ["shower", "toilet"]
    assert facility_list("None") == []
    assert facility_list(None) == []


def test_facilities_encoder_learns_frequent_vocabulary_and_ignores_unseen():
    train = pd.DataFrame({"facilities": ["Bath, Toilet", "Toilet", "None", "Toilet, Sauna"]})
    encoder = FacilitiesEncoder(min_count=2).fit(train)
    assert encoder.vocabulary_ == ["toilet"]
    scored = encoder.transform(pd.DataFrame({"facilities": ["Toilet, Jacuzzi", "None"]}))
    np.testing.assert_array_equal(scored, [[1.0], [0.0]])
    assert list(encoder.get_feature_names_out()) == ["facility_toilet"]


def test_facilities_encoder_with_empty_vocabulary_keeps_row_count():
    encoder = FacilitiesEncoder(min_count=10).fit(pd.DataFrame({"facilities": ["Bath"]}))
    assert encoder.transform(pd.DataFrame({"facilities": ["Bath", "None"]})).shape == (2, 0)


def test_map_distinct_parses_each_distinct_value_once_and_missing_values_as_none():
    calls = []

    def parse(value):
        calls.append(value)
        return len(value) if isinstance(value, str) else -1.0

    values = pd.Series(["ab", None, "ab", np.nan, "abc"], dtype=object)
    np.testing.assert_array_equal(map_distinct(values, parse), [2, -1, 2, -1, 3])
    assert calls == ["ab", "abc", None]
    arrow = pd.Series(["ab", None, "abc"], dtype="str")
    assert map_distinct(arrow, parse, object).tolist() == [2, -1, 3]


def test_facilities_encoder_encodes_missing_and_repeated_texts():
    encoder = FacilitiesEncoder(min_count=1).fit(pd.DataFrame({"facilities": ["Bath, Lift", "Lift"]}))
    scored = encoder.transform(pd.DataFrame({"facilities": ["Lift", None, "Lift, Bath", "Lift", "None"]}))
    np.testing.assert_array_equal(scored, [[0, 1], [0, 0], [1, 1], [0, 1], [0, 0]])


@pytest.mark.parametrize(
    ("zipcode", "expected"),
    [
        ("1071 HN", 1071.0),
        ("1071HN", 1071.0),
        ("1071hn", 1071.0),
        (" 1071  HN ", 1071.0),
        ("1071\u00a0HN", 1071.0),
        ("\ufeff1071\u200bHN", 1071.0),
        ("NL-1071 HN", 1071.0),
        ("NL 1071 HN", 1071.0),
        ("nl1071hn", 1071.0),
        ("NL - 1071 HN", 1071.0),
        ("1000 AA", 1000.0),
        ("9999 ZZ", 9999.0),
        ("1071", 1071.0),  # the postcode area alone (PC4): the model reads only these digits
        (1071, 1071.0),
        (1071.0, 1071.0),
        (np.int64(1071), 1071.0),
        # not postcodes: the first four digits of something else are not a district
        ("10111", np.nan),
        (10111, np.nan),
        ("10111 AB", np.nan),
        ("0123 AB", np.nan),
        ("999", np.nan),
        (1071.5, np.nan),
        ("abc", np.nan),
        ("HN 1071", np.nan),
        ("1071 HN extra", np.nan),
        ("1071 H", np.nan),
        ("1071 HNX", np.nan),
        ("10 71 HN", np.nan),
        ("NL--1071 HN", np.nan),
        ("BE-1071 HN", np.nan),
        ("1071 ß", np.nan),  # casefolds to "ss", but is no postcode letter
        ("\uff11\uff10\uff17\uff11 HN", np.nan),  # full-width digits
        (True, np.nan),
        (float("inf"), np.nan),
        ("", np.nan),
        (None, np.nan),
        (np.nan, np.nan),
    ],
)
def test_postcode_number_reads_dutch_postcodes_only(zipcode, expected):
    number = postcode_number(zipcode)
    assert (np.isnan(number) and np.isnan(expected)) or number == expected


def test_spellings_of_one_postcode_are_one_district():
    frame = pd.DataFrame({"zip": ["1071 HN", "NL-1071 hn", "1071", 1071, "10711"], "neighborhood": "x"})
    assert location_keys(frame)[:, 0].tolist() == ["1071", "1071", "1071", "1071", "unknown"]


@pytest.mark.parametrize("label", ["A +", "a+", " A+ ", "A\u00a0+", "a\u200b+"])
def test_energy_labels_that_differ_only_in_spacing_or_case_are_one_label(label):
    assert energy_rank(label) == energy_rank("A+")


def test_facilities_may_be_separated_by_semicolons():
    assert facility_list("Shower; Toilet;Lift") == facility_list("Shower, Toilet, Lift")


def test_location_keys_fill_unknowns():
    frame = pd.DataFrame(
        {"zip": ["1071 HN", None, "x"], "neighborhood": ["Oud-West", None, 7]}, index=[5, 6, 7]
    )
    keys = location_keys(frame)
    assert keys.tolist() == [["1071", "oud-west"], ["unknown", "unknown"], ["unknown", "7"]]


def test_implausible_to_missing_masks_placeholder_year():
    frame = listings({"construction_year": 1005.0}, {"construction_year": 1930.0})
    cleaned = ImplausibleToMissing({"construction_year": [1500, 2030]}).fit_transform(frame)
    assert cleaned["construction_year"].isna().tolist() == [True, False]
    assert frame["construction_year"].tolist() == [1005.0, 1930.0], "input must not be modified"


def test_unknown_feature_group_is_rejected():
    with pytest.raises(ValueError, match="unknown feature group"):
        switched_on({"weather": True})
    frame = listings({})
    with pytest.raises(ValueError, match="unknown feature group"):
        ListingFeatures(groups=("garden", "weather")).fit(frame, frame["rent"])


def test_switched_on_keeps_feature_group_order():
    assert switched_on({"location": True, "garden": True, "energy": False}) == ("garden", "location")


def test_all_feature_groups_produce_named_numeric_columns():
    frame = listings(*({"rent": 1000.0 + 100 * i} for i in range(5)), {"garden": "Not present"})
    transformer = ListingFeatures(groups=switched_on(ALL_GROUPS), seed=0, facilities_min_count=1)
    matrix = transformer.fit_transform(frame, frame["rent"])
    names = feature_columns(transformer)
    assert matrix.shape == (6, len(names))
    assert {"area", "garden_m2", "energy_rank", "balcony", "facility_lift", "zip_number", "district"} <= set(
        names
    )
    assert matrix[:, names.index("garden_m2")].tolist() == [47.0] * 5 + [0.0]
    assert not np.isnan(matrix).any()


def test_switching_off_groups_removes_their_columns():
    frame = listings({}, {"area": 60.0})
    transformer = ListingFeatures(groups=switched_on({"garden": True}), seed=0, facilities_min_count=1)
    transformer.fit(frame, frame["rent"])
    assert feature_columns(transformer) == [
        "area",
        "construction_year",
        "rooms",
        "bedrooms",
        "bathrooms",
        "garden_m2",
    ]


def test_listing_features_follow_the_given_column_and_group_order():
    frame = listings({"garden": "Not present", "balcony": "no"}, {})
    transformer = ListingFeatures(numeric=("bedrooms", "area"), groups=("garden", "amenities"))
    matrix = transformer.fit(frame, frame["rent"]).transform(frame)
    names = ["bedrooms", "area", "garden_m2", "balcony", "storage", "parking", "furnished", "garage"]
    assert feature_columns(transformer) == names
    expected = [
        [row[name] for name in ("bedrooms", "area")]
        + [garden_area(row["garden"])]
        + [yes_no(row[name]) for name in names[3:]]
        for row in frame.to_dict("records")
    ]
    np.testing.assert_array_equal(matrix, expected)


def location_frame(count: int) -> pd.DataFrame:
    """Listings in four places, rent depending on the place, some without a postcode."""
    places = [("1071 HN", "Oud-West"), ("1011 AB", "Centrum"), (None, "Centrum"), ("1071 XY", None)]
    return listings(
        *(
            {"zip": places[i % 4][0], "neighborhood": places[i % 4][1], "rent": 800.0 + 150 * (i % 4) + i}
            for i in range(count)
        )
    )


def test_listing_features_cross_fit_the_location_encoding_in_training():
    frame = location_frame(40)
    transformer = ListingFeatures(groups=("location",), seed=3)
    trained = transformer.fit_transform(frame, frame["rent"])
    encoder = TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=3))
    cross_fitted = encoder.fit_transform(location_keys(frame), frame["rent"])
    np.testing.assert_array_equal(trained[:, -2:], cross_fitted)
    assert not np.array_equal(trained, transformer.transform(frame)), "training rows must be cross-fitted"


def test_target_encoded_equals_the_encoders_transform_including_unseen_keys():
    train = location_frame(40)
    encoder = TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0))
    encoder.fit(location_keys(train), train["rent"])
    new = pd.DataFrame(
        {
            "zip": ["1071 HN", "9999 ZZ", None, "1011 AB", "x", "1071 HN"],
            "neighborhood": ["Centrum", "Oud-West", "Nowhere", None, "Oud-West", "Oud-West"],
        },
        dtype=object,
    )
    expected = encoder.transform(location_keys(new))
    assert (expected == encoder.target_mean_).any(), "the check needs unseen keys"
    np.testing.assert_array_equal(target_encoded(encoder, new), expected)


def test_facilities_encoder_takes_a_series():
    encoder = FacilitiesEncoder(min_count=1).fit(pd.Series(["Bath, Lift", "Lift"]))
    np.testing.assert_array_equal(encoder.transform(pd.Series(["Lift", None])), [[0, 1], [0, 0]])


@pytest.mark.parametrize("dtype", [object, "str", "float64", "Int64", "category"])
def test_factorize_gives_pandas_codes_and_distinct_values(dtype):
    values = pd.Series(
        ["1", None, "2", "1"] if dtype in (object, "str", "category") else [1, None, 2, 1], dtype=dtype
    )
    codes, distinct = factorize(values)
    expected_codes, expected_distinct = pd.factorize(values, use_na_sentinel=True)
    np.testing.assert_array_equal(codes, expected_codes)
    assert [repr(value) for value in distinct] == [repr(value) for value in expected_distinct]


def test_categorical_locations_are_text_columns_after_the_postcode_number():
    frame = location_frame(8)
    transformer = ListingFeatures(numeric=("area",), groups=("location",), location_encoding="categorical")
    features = transformer.fit(frame, frame["rent"]).transform(frame)
    assert list(features.columns) == ["area", "zip_number", "district", "district3", "neighborhood"]
    assert features.iloc[:4][["district", "district3", "neighborhood"]].values.tolist() == [
        ["1071", "107", "oud-west"],
        ["1011", "101", "centrum"],
        ["unknown", "unknown", "centrum"],
        ["1071", "107", "unknown"],
    ]
    assert features["zip_number"].iloc[:4].tolist()[:2] == [1071.0, 1011.0]
    assert categorical_columns(("location",), "categorical") == ["district", "district3", "neighborhood"]
    assert (
        categorical_columns(("location",), "target") == categorical_columns(("garden",), "categorical") == []
    )
    # the keys seen in training, as the target encoder records them (validation counts unseen ones)
    assert [list(keys) for keys in transformer.location_.categories_] == [
        ["1011", "1071", "unknown"],
        ["centrum", "oud-west", "unknown"],
    ]


def test_an_unknown_location_encoding_is_rejected():
    frame = listings({})
    with pytest.raises(ValueError, match="location_encoding must be one of target, categorical"):
        ListingFeatures(location_encoding="onehot").fit(frame, frame["rent"])


@pytest.mark.parametrize("encoding", ["target", "categorical"])
def test_the_feature_steps_follow_the_scikit_learn_transformer_contract(encoding):
    frame = location_frame(20).drop(columns="rent")
    clean = ImplausibleToMissing({"construction_year": [1500, 2030]})
    with pytest.raises(NotFittedError):
        clean.transform(frame)
    features = ListingFeatures(
        groups=switched_on(ALL_GROUPS), facilities_min_count=1, location_encoding=encoding
    )
    steps = Pipeline([("clean", clean), ("features", features)]).fit(frame, location_frame(20)["rent"])
    assert clean.n_features_in_ == features.n_features_in_ == len(frame.columns)
    assert list(clean.feature_names_in_) == list(features.feature_names_in_) == list(frame.columns)
    assert list(clean.get_feature_names_out()) == list(frame.columns)
    names = list(steps.get_feature_names_out())
    assert names == feature_columns(features) and "facility_lift" in names
    as_frame = (
        clone(steps).set_output(transform="pandas").fit(frame, location_frame(20)["rent"]).transform(frame)
    )
    assert isinstance(as_frame, pd.DataFrame) and list(as_frame.columns) == names
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        features.get_feature_names_out(["area"])


def test_implausible_to_missing_passes_the_given_input_names_through():
    frame = listings({})[["area", "construction_year"]]
    clean = ImplausibleToMissing({}).fit(frame)
    assert list(clean.get_feature_names_out(["area", "construction_year"])) == ["area", "construction_year"]


#: scikit-learn's estimator checks that apply to transformers of listing frames. The others feed
#: random numeric arrays (or sparse, 1-D, complex data), which these transformers do not take: they
#: read named text and number columns of a DataFrame; the tests above fit them on listings and check
#: ``get_feature_names_out`` and ``set_output`` through the pipeline.
API_CHECKS = (
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_estimators_unfitted",
    "check_transformers_unfitted",
)


@pytest.mark.parametrize("check", API_CHECKS)
@pytest.mark.parametrize(
    "transformer",
    [
        ImplausibleToMissing({"construction_year": [1500, 2030]}),
        FacilitiesEncoder(min_count=2),
        ListingFeatures(),
    ],
    ids=lambda transformer: type(transformer).__name__,
)
def test_the_transformers_pass_scikit_learns_estimator_checks_that_apply(transformer, check):
    getattr(estimator_checks, check)(type(transformer).__name__, clone(transformer))
