"""The test suite holds for any committed params, not only for the values committed today.

A user tunes params, commits them with dvc.lock and metrics, and opens a pull request: CI must stay
green. This test does that in a temporary copy of the project (another tree count, another
``catboost.depth``, no log target, one feature group off), then runs there the tests that depend on
the committed params and outputs.
"""

import pytest
import yaml

from tests.integration.params_support import get_param, other_count, set_params
from tests.support import SHARED_REMOTE, make_project_copy, run

#: Not in `make test` (its 10 minutes): CI runs it as a step of its own, `make test-committed-params`.
pytestmark = [pytest.mark.slow, pytest.mark.committed_params]

#: The tests that read the committed params, dvc.lock or metrics (tests/integration/test_pipeline.py
#: rebuilds the whole pipeline in a copy of its own and compares it with what was committed).
PARAMS_DEPENDENT = [
    "tests/code/test_params.py",
    "tests/code/test_stage_errors.py",
    "tests/data",
    "tests/model",
    "tests/integration/test_pipeline.py::test_pull_and_repro_build_every_output",
    "tests/integration/test_pipeline.py::test_fresh_build_matches_the_committed_lock_and_metrics",
]
#: The reference-model tests of tests/model fit the reference settings whatever train params are
#: committed (REFERENCE_TRAIN), so they depend on none of the params changed here; run inside this
#: test they would only refit that reference (about 40 s) for the same verdict as the outer run.
LEAVING_OUT_THE_REFERENCE = "not reference_model"


def other_experiment(repo) -> dict:
    """Changes to four kinds of params, each different from the committed value."""
    groups = get_param(repo, "train.features")
    switched_off = next(name for name, on in groups.items() if on)
    depth = get_param(repo, "train.catboost.depth")
    return {
        "train.n_estimators": other_count(get_param(repo, "train.n_estimators")),
        "train.catboost.depth": 4 if depth != 4 else 6,
        "train.log_target": not get_param(repo, "train.log_target"),
        f"train.features.{switched_off}": False,
    }


def test_the_params_dependent_tests_pass_after_committing_other_params(tmp_path):
    (tmp_path / "shared").symlink_to(SHARED_REMOTE.parent.resolve())  # the copy's ../shared
    repo = make_project_copy(tmp_path)
    changes = other_experiment(repo)
    set_params(repo, changes)
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "another experiment"], repo)
    # test_pipeline.py's test_second_repro_does_nothing, here rather than in a build of its own
    again = run(["dvc", "repro"], repo)
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date." in again.stdout
    assert run(["git", "status", "--porcelain"], repo).stdout == ""  # dvc.lock byte for byte
    diff = yaml.safe_load(run(["dvc", "params", "diff", "HEAD~1", "--json"], repo).stdout)["params.yaml"]
    assert {key: change["new"] for key, change in diff.items()} == changes

    result = run(
        [
            "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            LEAVING_OUT_THE_REFERENCE,
            *PARAMS_DEPENDENT,
        ],
        repo,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-2000:]
