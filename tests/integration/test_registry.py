"""Model registry: `make release` tags only a clean, reproduced, pushed commit; consumers fetch it.

The project copy commits its private remote as the default one, as a team commits its own bucket,
so a consumer's `dvc artifacts get` (which clones the repo) downloads from it.
"""

import pytest

from tests.integration.params_support import get_param, other_count, set_params
from tests.integration.storage_support import MODEL, copy_built, md5s
from tests.support import run

pytestmark = pytest.mark.slow


@pytest.fixture
def team_repo(built_project, tmp_path):
    """A copy of the built project whose committed default remote is its private remote (not pushed yet)."""
    repo, remote = copy_built(built_project, tmp_path)
    run(["dvc", "remote", "remove", "--local", "storage"], repo)
    run(["dvc", "remote", "add", "--default", "storage", str(remote)], repo)
    run(["git", "commit", "-qm", "the team remote", ".dvc/config"], repo)
    return repo


def refused(repo, version: str = "1.2.0", tags_before: int = 0) -> str:
    """The one-line error of a refused `make release`, after checking that it made no tag."""
    result = run(["make", "release", f"VERSION={version}"], repo, check=False)
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(run(["git", "tag", "--list", "rent-model@*"], repo).stdout.split()) == tags_before
    return result.stderr


def test_release_refuses_a_version_that_is_not_semver(team_repo):
    assert "VERSION='1.2' is not MAJOR.MINOR.PATCH" in refused(team_repo, "1.2")
    assert "VERSION='' is not MAJOR.MINOR.PATCH" in refused(team_repo, "")


@pytest.mark.parametrize("change", ["untracked", "modified"])
def test_release_refuses_a_dirty_tree(team_repo, change):
    if change == "untracked":
        (team_repo / "notes.txt").write_text("todo\n")
    else:
        with (team_repo / "README.md").open("a") as readme:
            readme.write("\nunsaved edit\n")
    message = refused(team_repo)
    assert "the git tree is not clean (1 changed or untracked path(s)" in message
    assert "commit or remove them" in message


def test_release_refuses_a_pipeline_that_is_not_reproduced(team_repo):
    fewer_trees(team_repo)
    run(["git", "commit", "-qm", "fewer trees, not reproduced", "params.yaml"], team_repo)
    message = refused(team_repo)
    assert "the pipeline is not up to date (dvc status: check_params, train)" in message
    assert "`dvc repro`" in message


def test_release_refuses_a_model_that_is_not_pushed(team_repo):
    message = refused(team_repo)
    assert "not in remote 'storage'" in message
    assert MODEL in message
    assert "run `make push`" in message


def test_a_released_version_is_an_annotated_tag_that_consumers_fetch(team_repo, tmp_path):
    run(["make", "push"], team_repo)
    run(["make", "release", "VERSION=1.2.0"], team_repo)
    model_md5 = md5s(team_repo, [MODEL])[MODEL]
    tag = "rent-model@v1.2.0"
    assert run(["git", "cat-file", "-t", tag], team_repo).stdout.strip() == "tag"  # annotated
    head = run(["git", "rev-parse", "HEAD"], team_repo).stdout
    assert run(["git", "rev-parse", f"{tag}^{{commit}}"], team_repo).stdout == head
    assert model_md5 in run(["git", "tag", "--list", "--format=%(contents)", tag], team_repo).stdout
    assert f"tag {tag} already exists" in refused(team_repo, "1.2.0", tags_before=1)

    # A consumer: the repository as a git server serves it (no workspace, no DVC cache).
    server = tmp_path / "server.git"
    run(["git", "clone", "-q", "--bare", str(team_repo), str(server)], tmp_path)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    run(["dvc", "artifacts", "get", str(server), "rent-model", "--rev", "v1.2.0", "-o", "a.joblib"], consumer)
    run(["dvc", "get", str(server), MODEL, "--rev", tag, "-o", "b.joblib"], consumer)
    assert md5s(consumer, ["a.joblib", "b.joblib"]) == {"a.joblib": model_md5, "b.joblib": model_md5}


def fewer_trees(repo) -> None:
    set_params(repo, {"train.n_estimators": other_count(get_param(repo, "train.n_estimators"))})
