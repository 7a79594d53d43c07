"""Remote storage: push/pull round trips (local and S3 on moto), data versions, and the errors users meet.

Every remote here is private to the test: a writable copy of the shared source remote, a temp directory
or a bucket on a moto server on loopback. Nothing is ever pushed to ../shared.
"""

import json
import os
import shutil
import sqlite3
from contextlib import closing

import pytest
import yaml

from rentprice.io import file_md5, read_yaml
from tests.integration.storage_support import (
    DUMMY_KEYS,
    MODEL,
    SOURCE,
    TRACKED,
    add_s3_remote,
    assert_up_to_date,
    aws_client,
    clone,
    copy_built,
    free_port,
    md5s,
    moto_server,
    remote_object,
    stages_run,
)
from tests.support import run

pytestmark = pytest.mark.slow

BUCKET = "rentprice"


@pytest.fixture(autouse=True)
def no_ambient_aws_credentials(monkeypatch, tmp_path):
    """Only the credentials a test configures exist; botocore never asks the EC2 metadata service."""
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


@pytest.fixture(scope="module")
def pushed(quick_project, tmp_path_factory):
    """A copy of the quick project after `make push` to its private local remote: (repo, remote)."""
    repo, remote = copy_built(quick_project, tmp_path_factory.mktemp("pushed"))
    run(["make", "push"], repo)
    return repo, remote


@pytest.fixture(scope="module")
def s3():
    """The endpoint of a moto S3 server on loopback holding an empty bucket."""
    with moto_server() as endpoint:
        aws_client("s3", endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


def test_push_sends_every_pipeline_output_and_a_fresh_clone_pulls_them_back(pushed, tmp_path):
    repo, remote = pushed
    assert json.loads(run(["dvc", "status", "--cloud", "--json"], repo).stdout or "{}") == {}
    for path, md5 in md5s(repo).items():
        # the source snapshot is pull-only (push: false): it stays in the source remote alone
        assert remote_object(remote, md5).is_file() == (path != SOURCE), path

    fresh = clone(repo, tmp_path / "clone", remote)
    assert not (fresh / MODEL).exists()
    run(["dvc", "pull"], fresh)
    assert md5s(fresh) == md5s(repo)
    assert_up_to_date(fresh)


def test_round_trip_through_s3(pushed, s3, tmp_path):
    repo, _ = pushed
    add_s3_remote(repo, "s3", f"s3://{BUCKET}/rentprice", s3, DUMMY_KEYS)
    run(["make", "push", "REMOTE=s3"], repo)
    listed = aws_client("s3", s3).list_objects_v2(Bucket=BUCKET, Prefix="rentprice/")["Contents"]
    stored = {"".join(item["Key"].split("/")[-2:]) for item in listed}
    assert stored >= set(md5s(repo, TRACKED[1:]).values())
    assert json.loads(run(["dvc", "status", "--cloud", "--json", "-r", "s3"], repo).stdout or "{}") == {}

    fresh = clone(repo, tmp_path / "clone")
    for command in [  # docs/storage.md's commands for a writable remote of one's own
        ["dvc", "remote", "add", "--local", "-d", "mine", f"s3://{BUCKET}/rentprice"],
        ["dvc", "remote", "modify", "--local", "mine", "endpointurl", s3],
        ["dvc", "remote", "modify", "--local", "mine", "access_key_id", DUMMY_KEYS["access_key_id"]],
        ["dvc", "remote", "modify", "--local", "mine", "secret_access_key", DUMMY_KEYS["secret_access_key"]],
    ]:
        run(command, fresh)
    assert 'remote "mine"' not in (fresh / ".dvc/config").read_text()
    run(["make", "pull"], fresh)
    assert md5s(fresh) == md5s(repo)
    assert_up_to_date(fresh)


def test_a_new_source_snapshot_trains_a_new_model_and_the_old_versions_come_back(quick_project, tmp_path):
    repo, remote = copy_built(quick_project, tmp_path)
    first_rev = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    first = md5s(repo)
    first_metrics = json.loads((repo / "metrics/eval/metrics.json").read_text())
    run(["make", "push"], repo)

    with closing(sqlite3.connect(repo / TRACKED[0])) as database, database:
        database.execute("DELETE FROM rent_apartments WHERE rowid % 5 = 0")
        database.execute("UPDATE rent_apartments SET rent = rent + 100")
    run(["dvc", "add", TRACKED[0]], repo)
    own_snapshot(repo)
    every_stage = set(read_yaml(repo / "dvc.yaml")["stages"]) - {"check_params"}  # params unchanged
    assert set(stages_run(run(["dvc", "repro"], repo).stdout)) == every_stage
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "new source snapshot"], repo)
    run(["make", "push"], repo)
    second = md5s(repo)
    assert all(second[path] != first[path] for path in TRACKED), (first, second)
    assert json.loads((repo / "metrics/eval/metrics.json").read_text())["mae"] != first_metrics["mae"]

    run(["git", "checkout", "-q", first_rev], repo)
    run(["dvc", "checkout"], repo)
    assert md5s(repo) == first
    assert_up_to_date(repo)
    run(["git", "checkout", "-q", "main"], repo)
    run(["dvc", "checkout"], repo)
    assert md5s(repo) == second

    # Both versions live in the remote: a clone without any cache gets either one.
    fresh = clone(repo, tmp_path / "clone", remote)
    run(["dvc", "pull"], fresh)
    assert md5s(fresh) == second
    run(["git", "checkout", "-q", first_rev], fresh)
    run(["dvc", "pull"], fresh)
    assert md5s(fresh) == first


def own_snapshot(repo) -> None:
    """Make a new source snapshot the user's own, as docs/storage.md says: drop `remote` and `push`.

    `dvc add` keeps both, and the snapshot would then be pushed nowhere.
    """
    dvc_file = repo / f"{SOURCE}.dvc"
    document = read_yaml(dvc_file)
    assert (document["outs"][0].pop("remote"), document["outs"][0].pop("push")) == ("source", False)
    dvc_file.write_text(yaml.safe_dump(document, sort_keys=False))


def failed(result) -> str:
    """The stderr of a command that must have failed with one clear line and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_pull_names_a_file_missing_from_the_remote_and_the_fix_it_suggests_works(pushed, tmp_path):
    repo, remote = pushed
    partial = tmp_path / "partial-remote"
    shutil.copytree(remote, partial)
    remote_object(partial, md5s(repo, [MODEL])[MODEL]).unlink()
    fresh = clone(repo, tmp_path / "clone", partial)

    message = failed(run(["make", "pull"], fresh, check=False))
    assert f"{MODEL}: in neither the local cache nor remote 'storage' ({partial})" in message
    assert "`make push`" in message
    assert "`dvc pull --allow-missing && dvc repro`" in message
    assert (fresh / "data/prepared/train.parquet").is_file()

    run(["dvc", "pull", "--allow-missing"], fresh)
    assert stages_run(run(["dvc", "repro"], fresh).stdout) == ["train"]
    assert md5s(fresh) == md5s(repo)


def test_pull_from_a_local_remote_that_is_not_there_says_so(pushed, tmp_path):
    repo, _ = pushed
    fresh = clone(repo, tmp_path / "clone", tmp_path / "unmounted")
    message = failed(run(["make", "pull"], fresh, check=False))
    assert f"remote 'storage' ({tmp_path / 'unmounted'}) does not exist" in message
    assert "dvc remote modify --local storage url PATH" in message


@pytest.mark.parametrize("action", ["push", "pull"])
def test_without_a_remote_of_ones_own_push_and_pull_say_how_to_add_one(pushed, tmp_path, action):
    repo, _ = pushed
    fresh = clone(repo, tmp_path / "clone")  # a fresh clone has the pull-only source remote only
    message = failed(run(["make", action], fresh, check=False))
    errors = [line for line in message.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, message
    assert "no DVC remote of yours is the default" in errors[0]
    assert "`dvc remote add --local -d mine s3://BUCKET/PREFIX`" in errors[0]
    # what `make setup` pulls (its other half, the venv, CI's fresh clone proves): the snapshot needs none
    run(["dvc", "pull", f"{SOURCE}.dvc"], fresh)
    assert md5s(fresh, [SOURCE]) == md5s(repo, [SOURCE])


def tree(directory) -> dict[str, str]:
    """Every file under ``directory`` with its md5: what a push could have changed."""
    return {
        str(path.relative_to(directory)): file_md5(path) for path in directory.rglob("*") if path.is_file()
    }


def test_nothing_is_ever_pushed_into_the_source_remote_even_when_it_is_writable(quick_project, tmp_path):
    repo, storage = copy_built(quick_project, tmp_path)
    source = tmp_path / "source"
    assert os.access(source, os.W_OK) and source.stat().st_mode & 0o200  # writable, as root finds it
    before = tree(source)
    run(["dvc", "remote", "add", "--local", "alias", str(source / ".." / "source")], repo)
    run(["dvc", "remote", "add", "--local", "inside", str(source / "files")], repo)

    run(["make", "push"], repo)  # to the user's default remote
    # the source remote by name, another name for its directory, a folder within it
    for remote in ["source", "alias", "inside"]:
        message = failed(run(["make", "push", f"REMOTE={remote}"], repo, check=False))
        assert f"remote '{remote}' (" in message and "holds the pull-only source snapshot (source)" in message
        assert "dvc remote add --local -d" in message
    # after the docs' steps for a new snapshot, whose .dvc file no longer names the source remote
    tracker = repo / "data/source/rent_apartments.sqlite.dvc"
    kept = [
        line
        for line in tracker.read_text().splitlines()
        if line.strip() not in ("remote: source", "push: false")
    ]
    tracker.write_text("\n".join(kept) + "\n")
    message = failed(run(["make", "push", "REMOTE=source"], repo, check=False))
    assert "holds the pull-only source snapshot (source)" in message
    run(["git", "checkout", "--", str(tracker)], repo)
    run(["dvc", "push"], repo)  # DVC itself: the snapshot is `push: false`, the rest goes to the default
    run(["dvc", "remote", "remove", "--local", "storage"], repo)
    message = failed(run(["dvc", "push"], repo, check=False))  # no default remote: DVC pushes nowhere
    assert "no remote specified" in message
    failed(run(["make", "push"], repo, check=False))

    assert tree(source) == before
    assert remote_object(storage, md5s(repo, [MODEL])[MODEL]).is_file()
    assert not remote_object(storage, md5s(repo, [SOURCE])[SOURCE]).exists()


def test_push_refuses_a_local_remote_without_write_permission_even_for_root(pushed, tmp_path):
    repo, _ = pushed
    read_only = tmp_path / "read-only-remote"
    read_only.mkdir()
    read_only.chmod(0o555)
    run(["dvc", "remote", "add", "--local", "readonly", str(read_only)], repo)
    message = failed(run(["make", "push", "REMOTE=readonly"], repo, check=False))
    assert f"remote 'readonly' ({read_only}) is read-only" in message
    assert "dvc remote add --local -d" in message
    assert list(read_only.iterdir()) == []


def test_push_to_an_unreachable_s3_endpoint_names_the_remote(pushed, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries only make the same failure slower
    repo, _ = pushed
    add_s3_remote(repo, "down", f"s3://{BUCKET}/down", f"http://127.0.0.1:{free_port()}", DUMMY_KEYS)
    message = failed(run(["make", "push", "REMOTE=down"], repo, check=False))
    assert "Could not connect to the endpoint URL" in message  # DVC's own line is kept
    assert f"remote 'down' (s3://{BUCKET}/down) cannot be reached" in message
    assert "dvc config remote.down.endpointurl" in message


@pytest.mark.parametrize("action", ["push", "pull"])
def test_missing_s3_credentials_say_where_to_put_them(pushed, s3, action):
    repo, _ = pushed
    name = f"nokeys-{action}"
    add_s3_remote(repo, name, f"s3://{BUCKET}/{name}", s3, keys=None)
    message = failed(run(["make", action, f"REMOTE={name}"], repo, check=False))
    assert "Unable to locate credentials" in message
    assert f"remote '{name}' (s3://{BUCKET}/{name}) has no credentials here" in message
    assert f"dvc remote modify --local {name} access_key_id" in message
    assert "AWS_ACCESS_KEY_ID" in message


def test_push_to_a_missing_bucket_says_so(pushed, s3):
    repo, _ = pushed
    add_s3_remote(repo, "nobucket", "s3://no-such-bucket/x", s3, DUMMY_KEYS)
    message = failed(run(["make", "push", "REMOTE=nobucket"], repo, check=False))
    assert "remote 'nobucket' (s3://no-such-bucket/x): the bucket does not exist" in message


def test_push_with_read_only_s3_credentials_is_refused_clearly(pushed):
    repo, _ = pushed
    read_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            }
        ],
    }
    # moto enforces IAM after its first four requests: bucket, user, policy and key are made before.
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as endpoint:
        aws_client("s3", endpoint).create_bucket(Bucket=BUCKET)
        iam = aws_client("iam", endpoint)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(read_policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        keys = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
        add_s3_remote(repo, "readonly-s3", f"s3://{BUCKET}/x", endpoint, keys)
        message = failed(run(["make", "push", "REMOTE=readonly-s3"], repo, check=False))
    assert "AccessDenied" in message  # DVC's own line is kept
    error = next(line for line in message.splitlines() if "| ERROR" in line)
    assert f"remote 'readonly-s3' (s3://{BUCKET}/x) refused access (" in error  # then the cause
    assert "these credentials may not write there" in error
