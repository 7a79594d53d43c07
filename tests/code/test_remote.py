"""Remote storage helpers and the release checks that need no dvc run (tests/integration runs real ones)."""

import errno
import logging
import subprocess

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from dvc.exceptions import CheckoutError, DownloadError, UploadError

from rentprice.io import read_yaml
from rentprice.remote import (
    LoggedErrors,
    Remote,
    StorageError,
    check_exists,
    check_not_pull_only,
    check_writable,
    explain_failure,
    explained,
    find_remote,
    main,
)
from tests.support import REPO_ROOT, load_module, tool_env

S3 = Remote("mine", "s3://bucket/rentprice")


def test_a_file_missing_from_the_remote_is_named_with_the_fix():
    missing = CheckoutError(["models/model.joblib", "data/raw/listings.parquet"], {})
    message = explain_failure("pull", Remote("storage", "/srv/dvc"), [DownloadError(1), missing])
    assert message.startswith("models/model.joblib, data/raw/listings.parquet: in neither the local cache")
    assert "remote 'storage' (/srv/dvc)" in message
    assert "`make push`" in message
    assert "`dvc pull --allow-missing && dvc repro`" in message


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    """``error`` as ``raise error from cause`` leaves it."""
    error.__cause__ = cause
    return error


ACCESS_DENIED = raised_from(PermissionError(errno.EACCES, "Access Denied"), OSError("AccessDenied"))


@pytest.mark.parametrize(
    ("action", "errors", "expected"),
    [
        # push raises botocore's errors itself; pull raises a count and logs each file's error
        ("push", [NoCredentialsError()], "remote 'mine' (s3://bucket/rentprice) has no credentials here"),
        (
            "pull",
            [DownloadError(1), NoCredentialsError()],
            "`dvc remote modify --local mine access_key_id ID`",
        ),
        (
            "push",
            [EndpointConnectionError(endpoint_url="http://127.0.0.1:5199/rentprice")],
            "remote 'mine' (s3://bucket/rentprice) cannot be reached (Could not connect to the endpoint URL",
        ),
        (
            "push",
            [UploadError(1), FileNotFoundError(2, "The specified bucket does not exist")],
            "the bucket does not exist",
        ),
        (
            "push",
            [UploadError(3), ACCESS_DENIED],
            "refused access ([Errno 13] Access Denied): these credentials may not write there",
        ),
        (
            "pull",
            [DownloadError(1), ACCESS_DENIED],
            "refused access ([Errno 13] Access Denied): these credentials may not read there",
        ),
        ("push", [UploadError(1), OSError(errno.EROFS, "Read-only file system")], "may not write there"),
        # a connection refused under a library's own error type is found by the cause chain
        (
            "pull",
            [
                DownloadError(1),
                raised_from(OSError("connect failed"), ConnectionRefusedError(111, "refused")),
            ],
            "cannot be reached",
        ),
        (
            "push",
            [UploadError(1)],
            "dvc push with remote 'mine' (s3://bucket/rentprice) failed (1 files failed to upload)",
        ),
        ("push", [], "dvc push with remote 'mine' (s3://bucket/rentprice) failed: see DVC's messages above"),
    ],
)
def test_dvc_failures_become_one_line_with_remote_and_fix(action, errors, expected):
    message = explain_failure(action, S3, errors)
    assert expected in message
    assert "\n" not in message


def test_a_local_path_outside_the_remote_is_named_instead_of_blaming_the_remote():
    workspace = PermissionError(errno.EACCES, "Permission denied", "/home/me/rentprice/data/raw")
    message = explain_failure("pull", Remote("storage", "/srv/dvc"), [DownloadError(1), workspace])
    assert message.startswith("dvc pull failed on /home/me/rentprice/data/raw ([Errno 13] Permission denied")
    assert "a local path, not remote 'storage' (/srv/dvc)" in message
    inside = PermissionError(errno.EACCES, "Permission denied", "/srv/dvc/files/md5/ab")
    assert "refused access" in explain_failure("push", Remote("storage", "/srv/dvc"), [inside])


def test_any_other_failure_within_dvcs_api_is_one_line_too(dvc_project):
    subprocess.run(["git", "init", "-q"], cwd=dvc_project, check=True, env=tool_env())
    with pytest.raises(StorageError) as failure, explained("push", S3):
        raise ValueError("an error no one foresaw\nover two lines")
    assert str(failure.value) == (
        "dvc push with remote 'mine' (s3://bucket/rentprice) failed (an error no one foresaw over two "
        "lines): see DVC's messages above"
    )


def test_a_failing_dvc_status_stops_a_release_with_one_line(tmp_path, monkeypatch):
    release = release_script()
    monkeypatch.chdir(tmp_path)  # not a DVC repository
    with pytest.raises(release.ReleaseError, match=r"^dvc status failed: you are not inside"):
        release.check_pipeline_up_to_date()


def test_the_exceptions_dvc_logs_while_it_transfers_are_collected_and_its_handlers_restored():
    dvc_data = logging.getLogger("dvc_data.index.fetch")
    handlers = list(logging.getLogger("dvc_data").handlers)
    with LoggedErrors() as logged:
        try:
            raise NoCredentialsError()
        except NoCredentialsError:
            dvc_data.exception("failed to connect to s3")
        dvc_data.error("an error without a traceback")
    assert [type(error) for error in logged.errors] == [NoCredentialsError]
    assert logging.getLogger("dvc_data").handlers == handlers


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("s3://bucket/x", None),
        ("ssh://host/srv/dvc", None),
        ("/srv/dvc", "/srv/dvc"),
        ("file:///srv/d", "/srv/d"),
    ],
)
def test_only_local_remotes_have_a_path(url, path):
    local = Remote("r", url).local_path
    assert (str(local) if local else None) == path


def test_push_refuses_a_directory_without_write_bits_even_for_root(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    check_writable(Remote("ok", str(remote)))
    check_writable(Remote("new", str(remote / "not" / "yet")))
    remote.chmod(0o555)
    for url in [str(remote), str(remote / "not" / "yet")]:
        with pytest.raises(StorageError, match=r"remote 'ro' \(.+\) is read-only"):
            check_writable(Remote("ro", url))
    check_writable(S3)


def test_pull_refuses_a_local_remote_that_does_not_exist(tmp_path):
    check_exists(Remote("here", str(tmp_path)))
    check_exists(S3)
    with pytest.raises(StorageError, match=r"does not exist: .*dvc remote modify --local gone url PATH"):
        check_exists(Remote("gone", str(tmp_path / "gone")))


@pytest.fixture
def dvc_project(tmp_path, monkeypatch):
    """A project with the committed .dvc/config (the pull-only source remote, no default) and a local one."""
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text((REPO_ROOT / ".dvc" / "config").read_text())
    (tmp_path / ".dvc" / "config.local").write_text(
        "[core]\n    remote = storage\n['remote \"storage\"']\n    url = ../gone\n"
        "['remote \"mine\"']\n    url = s3://bucket/x\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_committed_config_has_no_default_remote_and_the_source_is_pull_only():
    config = (REPO_ROOT / ".dvc" / "config").read_text()
    assert "remote =" not in config.split("['remote")[0]
    source = read_yaml(REPO_ROOT / "data/source/rent_apartments.sqlite.dvc")["outs"][0]
    assert (source["remote"], source["push"]) == ("source", False)


def test_find_remote_reads_both_config_files_and_resolves_paths_like_dvc(dvc_project):
    assert find_remote() == Remote("storage", str(dvc_project / "gone"))
    assert find_remote("source") == Remote("source", str((dvc_project / "../shared/dvc-storage").resolve()))
    assert find_remote("mine") == Remote("mine", "s3://bucket/x")
    with pytest.raises(StorageError, match="no DVC remote named 'nope': `dvc remote list`"):
        find_remote("nope")


def test_without_a_default_remote_the_error_says_how_to_add_one(dvc_project, capsys):
    (dvc_project / ".dvc" / "config.local").unlink()
    with pytest.raises(StorageError, match=r"no DVC remote of yours .*`dvc remote add --local -d mine"):
        find_remote()
    assert main(["push"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "dvc remote add --local -d" in errors[0]


@pytest.mark.parametrize(
    ("remote", "refused"),
    [
        (Remote("source", "/srv/other"), True),  # the name the pull-only outputs use
        (Remote("alias", "/srv/shared/dvc-storage/"), True),  # another name for its directory
        (Remote("alias", "/srv/shared/x/../dvc-storage"), True),
        (Remote("inside", "/srv/shared/dvc-storage/files"), True),  # a folder within it
        (Remote("inside", "file:///srv/shared/dvc-storage/x/y"), True),
        (Remote("s3-inside", "s3://shared/store/sub"), True),
        (Remote("mine", "/srv/mine"), False),
        (Remote("mine", "/srv/shared/dvc-storage-2"), False),  # beside it, not within
        (Remote("mine", "s3://shared/store-2"), False),
        (Remote("mine", "s3://bucket/x"), False),
    ],
)
def test_push_refuses_the_pull_only_source_remote_by_name_or_place(remote, refused):
    pull_only = [Remote("source", "/srv/shared/dvc-storage"), Remote("s3-source", "s3://shared/store")]
    if refused:
        with pytest.raises(StorageError, match=r"holds the pull-only source snapshot"):
            check_not_pull_only(remote, pull_only)
    else:
        check_not_pull_only(remote, pull_only)


def test_a_refused_pull_is_one_log_line_and_exit_code_2(dvc_project, capsys):
    assert main(["pull"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "remote 'storage'" in errors[0]
    assert "does not exist" in errors[0]


def release_script():
    return load_module("scripts/release.py")


@pytest.mark.parametrize("version", ["1.2", "v1.2.0", "1.2.0-rc1", "", "1.2.0 "])
def test_release_versions_are_major_minor_patch(version):
    release = release_script()
    with pytest.raises(release.ReleaseError, match=r"is not MAJOR\.MINOR\.PATCH"):
        release.tag_name(version)
    assert release.tag_name("10.2.0") == "rent-model@v10.2.0"


def test_the_released_artifact_is_the_model_the_train_stage_writes():
    release = release_script()
    dvc_yaml = read_yaml(REPO_ROOT / "dvc.yaml")
    path = release.artifact_path(REPO_ROOT / "dvc.yaml")
    assert str(path) in dvc_yaml["stages"]["train"]["outs"]
    assert dvc_yaml["artifacts"][release.ARTIFACT]["type"] == "model"


def test_release_refuses_a_dirty_tree_and_an_existing_tag(tmp_path, monkeypatch):
    release = release_script()
    env = tool_env()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "a.txt").write_text("a\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        release.ReleaseError, match=r"not clean \(1 changed or untracked path\(s\), e.g. a.txt\)"
    ):
        release.check_tree_clean()
    subprocess.run(["git", "add", "a.txt"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "a"], cwd=tmp_path, check=True, env=env)
    release.check_tree_clean()
    release.check_new_tag("rent-model@v1.0.0")
    subprocess.run(["git", "tag", "-a", "rent-model@v1.0.0", "-m", "x"], cwd=tmp_path, check=True, env=env)
    with pytest.raises(release.ReleaseError, match=r"tag rent-model@v1\.0\.0 already exists"):
        release.check_new_tag("rent-model@v1.0.0")
