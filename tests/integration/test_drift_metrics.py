"""Drift as a DVC metric: `dvc metrics diff` shows the drift of a shifted batch from the default one."""

import json
import shutil

import pandas as pd
import pytest

from rentprice.io import read_yaml
from tests.integration.params_support import set_params
from tests.support import run

pytestmark = pytest.mark.slow

DRIFT = "data/predictions/drift.json"


def test_metrics_diff_shows_the_drift_of_a_shifted_batch(tmp_path, built_project):
    repo = shutil.copytree(built_project, tmp_path / "repo", symlinks=True)
    thresholds = read_yaml(repo / "params.yaml")["drift"]
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "scored the snapshot", "--allow-empty"], repo)
    before = json.loads((repo / DRIFT).read_text())
    raw = pd.read_parquet(repo / "data/raw/listings.parquet")
    shifted = raw.assign(area=raw["area"] * 1.5)
    shifted.loc[shifted.index[: len(raw) // 4], "zip"] = "9999 ZZ"
    shifted.to_parquet(repo / "shifted.parquet", index=False)
    set_params(repo, {"predict.input": "shifted.parquet"})
    result = run(["dvc", "repro", "predict"], repo)
    assert "drift: drift alert" in result.stderr
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)[DRIFT]
    area, unseen = diff["features.area.psi"], diff["features.district.unseen_share"]
    assert area["old"] == before["features"]["area"]["psi"] < thresholds["psi_warn"]
    assert area["new"] >= thresholds["psi_alert"]
    assert unseen["old"] < 0.01 and unseen["new"] == pytest.approx(0.25, abs=0.01)
