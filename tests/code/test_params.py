"""params.yaml is a strict contract: a bad value is one line naming the key, what was expected and given."""

import copy
import subprocess
import sys

import dvc.api
import pytest
import yaml

from rentprice.errors import ParamsError
from rentprice.features import FEATURE_GROUPS
from rentprice.io import read_yaml
from rentprice.params import FeatureGroups, Params, load_params, markdown, validate_params
from tests.support import REPO_ROOT, tool_env

COMMITTED = read_yaml(REPO_ROOT / "params.yaml")


class _Drop:
    """The value of a key to remove; its repr keeps test ids equal across pytest-xdist workers."""

    def __repr__(self) -> str:
        return "<missing>"


DROP = _Drop()


def changed(key: str, value) -> dict:
    """The committed params with ``key`` (dotted) set to ``value``, or removed when ``value`` is DROP."""
    params = copy.deepcopy(COMMITTED)
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return params


def error_line(params) -> str:
    with pytest.raises(ParamsError) as raised:
        validate_params(params, "params.yaml")
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_the_committed_params_are_valid_and_typed():
    params = load_params(REPO_ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.train.n_estimators == COMMITTED["train"]["n_estimators"]
    assert params.train.model_dump() == COMMITTED["train"]  # what the model file records, unchanged
    assert params.checks.model_dump() == COMMITTED["checks"]
    assert params.prepare.plausible == COMMITTED["prepare"]["plausible"]


# (key, bad value, the phrase the line must contain); the key itself must be named too.
BAD = [
    ("train.log_target", "false", "expected true or false, given 'false' (a string)"),
    ("train.log_target", 1, "expected true or false, given 1 (an integer)"),
    ("train.facilities_min_count", "many", "expected an integer >= 1, given 'many' (a string)"),
    ("train.facilities_min_count", 0, "expected an integer >= 1, given 0"),
    ("train.n_estimators", "300", "expected an integer >= 1, given '300' (a string)"),
    ("train.n_estimators", 2.5, "expected an integer >= 1, given 2.5 (a number)"),
    ("train.n_estimators", True, "expected an integer >= 1, given True (a boolean)"),
    ("train.n_estimators", DROP, "missing (expected an integer >= 1)"),
    ("train.features", "all", "expected a mapping with the keys amenities, garden"),
    ("train.features.weather", True, "unknown key (expected one of: amenities, garden, energy"),
    ("train.features.garden", "yes", "expected true or false, given 'yes' (a string)"),
    ("train.features.location", DROP, "missing (expected true or false)"),
    (
        "train.random_forest.max_features",
        -1,
        "expected an integer >= 1, a number > 0 and <= 1, sqrt, log2 or null, given -1",
    ),
    ("train.random_forest.max_features", 1.5, "given 1.5 (a number)"),
    ("train.random_forest.max_features", "half", "given 'half' (a string)"),
    ("train.random_forest.max_depth", 0, "expected an integer >= 1 or null, given 0"),
    ("train.n_jobs", 0, "expected -1 or an integer >= 1, given 0"),
    ("train.seed", -1, "expected an integer >= 0 and <= 4294967295, given -1"),
    ("train.n_estimatros", 100, "unknown key (expected one of: model, seed, n_estimators,"),
    ("train.model", "xgboost", "expected catboost or random_forest, given 'xgboost' (a string)"),
    ("train.catboost.depth", 99, "expected an integer >= 1 and <= 16, given 99"),
    ("train.catboost.targets", ["rent", "rent"], "expected distinct items"),
    ("train.catboost.targets", [], "expected a list of 1 to 2 items, each rent or rent_per_m2, given []"),
    ("train.range_level", 1, "expected a number > 0 and < 1, given 1"),
    ("cv.folds", 1, "expected an integer >= 2, given 1"),
    # cv_mae_std is the spread over repeats: one repeat has none (it printed 0.0, "± 0")
    ("cv.repeats", 1, "expected an integer >= 2, given 1"),
    ("cv.repeats", "3", "expected an integer >= 2, given '3' (a string)"),
    ("trian", {}, f"unknown key (expected one of: {', '.join(Params.model_fields)})"),
    ("train", DROP, "missing (expected a mapping with the keys model, seed, n_estimators"),
    ("prepare.test_size", 1, "expected a number > 0 and < 1, given 1 (an integer)"),
    ("prepare.seed", "42", "given '42' (a string)"),
    ("prepare.plausible.area", [1, "x"], "expected a list of 2 items, each a number, given [1, 'x']"),
    ("prepare.plausible.construction_year", [2030, 1500], "expected [low, high] with low <= high"),
    ("checks.bounds.aera", [5, 1000], "unknown key (expected one of: area, construction_year"),
    ("checks.bounds.rent", [100], "expected a list of 2 items"),
    ("checks.bounds.rent", [float("nan"), 25000], "given [nan, 25000]"),
    ("checks.bounds.area", [float("-inf"), float("inf")], "given [-inf, inf]"),
    ("drift.psi_alert", float("inf"), "given inf (a number)"),
    ("checks.max_dropped_share", 1.5, "expected a number >= 0 and <= 1, given 1.5"),
    ("checks.min_rows", None, "expected an integer >= 1, given null"),
    ("collect.table", "rent apartments", "expected a string matching"),
    ("collect.db_url", "", "expected a non-empty string"),
    ("baseline.n_estimators", "100", "given '100' (a string)"),
    ("predict.input", "listings.xlsx", "expected a .csv or .parquet file (any case"),
    ("predict.input", "", "expected a non-empty string"),
    ("predict.max_reject_rate", "0.5", "given '0.5' (a string)"),
]


@pytest.mark.parametrize(
    ("key", "value", "phrase"),
    BAD,
    ids=[f"{key}={'(dropped)' if value is DROP else repr(value)}" for key, value, _ in BAD],
)
def test_a_bad_value_is_one_line_naming_the_key_the_expectation_and_the_value(key, value, phrase):
    message = error_line(changed(key, value))
    assert message.startswith(f"params.yaml: {key}: "), message
    assert phrase in message, message


def test_a_warning_threshold_above_the_alert_threshold_is_one_line():
    params = changed("drift.psi_warn", 0.5)
    params["drift"]["psi_alert"] = 0.3
    message = error_line(params)
    assert (
        message == "params.yaml: drift: expected psi_warn <= psi_alert, given psi_warn 0.5 and psi_alert 0.3"
    )


def test_several_bad_keys_are_all_named_on_one_line():
    params = changed("train.log_target", "no")
    params["baseline"]["seed"] = "x"
    message = error_line(params)
    assert "train.log_target: expected true or false" in message
    assert "baseline.seed: expected an integer" in message


# Spellings that YAML 1.1 (PyYAML) and YAML 1.2 (DVC's ruamel.yaml) read differently, as written in
# params.yaml (e.g. by `dvc exp run -S train.log_target=yes`): (key, text, the phrase of the line, or
# None when the value is valid as DVC reads it).
SPELLINGS = [
    ("train.log_target", "yes", "expected true or false, given 'yes' (a string)"),
    ("train.log_target", "off", "expected true or false, given 'off' (a string)"),
    ("train.features.garden", "No", "expected true or false, given 'No' (a string)"),
    ("train.n_estimators", "1:30", "expected an integer >= 1, given '1:30' (a string)"),
    ("train.catboost.learning_rate", "1e-1", None),
    ("prepare.seed", "012", None),
]


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("dvc-params")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True, env=tool_env())
    return repo


@pytest.mark.parametrize(("key", "text", "phrase"), SPELLINGS)
def test_params_are_read_as_dvc_reads_them(dvc_repo, key, text, phrase):
    """The stages see the value `dvc params diff` and `dvc exp show` show, never a YAML 1.1 reading."""
    path = dvc_repo / "params.yaml"
    written = yaml.safe_dump(changed(key, "the_value_under_test"), sort_keys=False)
    path.write_text(written.replace("the_value_under_test", text))
    shown = dvc.api.params_show(repo=str(dvc_repo))
    assert read_yaml(path) == shown
    if phrase is None:
        assert load_params(path).model_dump() == shown
    else:
        with pytest.raises(ParamsError) as raised:
            load_params(path)
        assert f"{key}: {phrase}" in str(raised.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_file_that_is_not_a_mapping_is_one_line(tmp_path, text):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(
        ParamsError, match=r"params.yaml: \(the whole file\): expected a mapping with the keys"
    ):
        load_params(tmp_path / "params.yaml")


def test_unreadable_files_are_one_line(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_bytes(b"# m\xb2\ntrain: {}\n")
    with pytest.raises(ParamsError, match=r"not UTF-8 text \(byte 3\)"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ParamsError, match=r"folder\.yaml: cannot read"):
        load_params(tmp_path / "folder.yaml")


@pytest.mark.parametrize(
    ("key", "value"),
    [("train.random_forest.max_features", "sqrt"), ("train.random_forest.max_features", 1.0),
     ("train.random_forest.max_features", 3), ("train.random_forest.max_features", None),
     ("train.random_forest.max_depth", 12), ("predict.input", "data/new batch/listings may.csv"),
     ("train.n_jobs", -1),
     ("train.log_target", False), ("checks.bounds.area", [5.5, 1000])],
)  # fmt: skip
def test_every_allowed_kind_of_value_passes(key, value):
    params = validate_params(changed(key, value), "params.yaml")
    group = key.split(".")[0]
    assert params.model_dump()[group] == changed(key, value)[group]


def test_the_feature_groups_of_the_schema_are_those_of_the_features():
    assert tuple(FeatureGroups.model_fields) == FEATURE_GROUPS


def test_loaded_params_are_read_only():
    params = validate_params(COMMITTED, "params.yaml")
    with pytest.raises(ValueError, match="frozen"):
        params.train.n_estimators = 1


def test_docs_params_md_is_generated_from_the_schema():
    assert (REPO_ROOT / "docs" / "params.md").read_text(encoding="utf-8") == markdown(), (
        "docs/params.md is stale: python -m rentprice.params --markdown > docs/params.md"
    )
    for key in ["train.n_estimators", "train.features.location", "predict.max_reject_rate"]:
        assert f"`{key}`" in markdown()


def test_the_checker_command_exits_2_with_the_line(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(changed("train.log_target", "false")))
    command = [sys.executable, "-m", "rentprice.params", str(tmp_path / "params.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, env=tool_env(), cwd=REPO_ROOT)
    assert result.returncode == 2
    line = f"ERROR: {tmp_path / 'params.yaml'}: train.log_target: expected true or false, given 'false'"
    assert result.stderr.strip().splitlines() == [f"{line} (a string)"]
    ok = subprocess.run([*command[:-1], str(REPO_ROOT / "params.yaml")], env=tool_env(), cwd=REPO_ROOT)
    assert ok.returncode == 0


@pytest.mark.parametrize(
    "path", ["data/LISTINGS.CSV", "data/may.Parquet", "-lead #1 é $x;.csv", "/abs/a*b.csv"]
)
def test_any_path_batch_scoring_reads_is_a_valid_predict_input(path):
    """Batch scoring reads .CSV or .Parquet in any case, so params take what it takes."""
    assert validate_params(changed("predict.input", path), "params.yaml").predict.input == path


def test_a_folder_is_a_predict_input_only_with_a_scheduler():
    """docs/distributed.md: with predict.scheduler set, predict.input may name a directory."""
    folder = changed("predict.input", "data/new batches")
    message = error_line(folder)
    assert message == (
        "params.yaml: predict.input: expected a .csv or .parquet file (any case; a directory needs "
        "predict.scheduler), given 'data/new batches'"
    )
    folder["predict"]["scheduler"] = "local:2"
    assert validate_params(folder, "params.yaml").predict.input == "data/new batches"


@pytest.mark.parametrize("path", ["~/listings.csv", "~someone/listings.csv"])
def test_a_home_folder_tilde_in_predict_input_is_one_line(path):
    """DVC (the stage's dependency) and the stage read '~' as a folder of that name: say so."""
    message = error_line(changed("predict.input", path))
    assert message == (
        f"params.yaml: predict.input: '~' is not expanded (DVC and the stage read {path!r} as written); "
        "give the full path"
    )
