"""Helpers for the storage and registry tests: project copies with private remotes, clones, moto S3."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import boto3
import pytest
from dvc.config import Config

from rentprice.io import file_md5
from tests.support import copy_project, run, tool_env, use_private_remotes

SOURCE = "data/source/rent_apartments.sqlite"
#: Every DVC-tracked file of the project: the source snapshot and the pipeline's cached outputs.
TRACKED = [
    SOURCE,
    "data/raw/listings.parquet",
    "data/prepared/train.parquet",
    "data/prepared/test.parquet",
    "models/model.joblib",
]
MODEL = "models/model.joblib"
DUMMY_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


def stages_run(output: str) -> list[str]:
    """The stages a ``dvc repro`` output says it ran."""
    return re.findall(r"Running stage '(\w+)'", output)


def assert_up_to_date(repo: Path) -> None:
    """DVC and git both report nothing to do: no stage reruns, no output differs from dvc.lock."""
    status = run(["dvc", "status"], repo).stdout
    assert "Data and pipelines are up to date." in status, status
    repro = run(["dvc", "repro"], repo).stdout
    assert stages_run(repro) == [], repro
    changes = run(["git", "status", "--porcelain"], repo).stdout
    assert changes == "", changes


def md5s(repo: Path, paths: list[str] = TRACKED) -> dict[str, str]:
    """The md5 of each path in ``repo``."""
    return {path: file_md5(repo / path) for path in paths}


def copy_built(built_project: Path, destination: Path) -> tuple[Path, Path]:
    """A copy of the built project (git history, cache, outputs) with its own copies of the remotes.

    Returns the repo and its default remote ``storage`` (empty until pushed to).
    """
    repo = copy_project(built_project, destination)
    remote = destination / "storage"
    changed = run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout
    if changed:
        pytest.fail(f"the built project differs from its commit (changed by an earlier test?):\n{changed}")
    if run(["git", "status", "--porcelain"], repo).stdout:  # e.g. .gitignore files dvc repro wrote
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", "files the build created"], repo)
    return repo, remote


def clone(repo: Path, destination: Path, remote_url: Path | None = None) -> Path:
    """A fresh git clone of ``repo``; ``.dvc/config.local`` is not cloned, so point the remotes again.

    The source remote is ``repo``'s private copy; ``remote_url``, if given, is the default remote.
    """
    run(["git", "clone", "-q", str(repo), str(destination)], repo.parent)
    use_private_remotes(destination, repo.parent / "source", remote_url)
    return destination


def remote_object(remote: Path, md5: str) -> Path:
    """Where a local DVC 3 remote stores the object with this md5."""
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def add_s3_remote(repo: Path, name: str, url: str, endpoint: str, keys: dict[str, str] | None) -> None:
    """Add an S3 remote to ``.dvc/config.local`` (endpoint, short timeouts, optional keys).

    Through DVC's own config API, which `dvc remote add/modify --local` use: one edit instead of a
    process per option.
    """
    options = {"url": url, "endpointurl": endpoint, "connect_timeout": "2", "read_timeout": "5"}
    with Config(dvc_dir=repo / ".dvc").edit("local") as config:
        config["remote"][name] = options | (keys or {})


def aws_client(service: str, endpoint: str, keys: dict[str, str] = DUMMY_KEYS):
    """A boto3 client of the moto server for ``service`` (s3, iam)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(server: subprocess.Popen, port: int, log: IO[str]) -> None:
    """Return once the server accepts TCP connections; fail with its log if it exits or hangs."""
    deadline = time.monotonic() + 30
    while server.poll() is None:
        try:
            # A TCP connection only: an HTTP request would count against INITIAL_NO_AUTH_ACTION_COUNT.
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("moto_server did not start listening within 30 s")
            time.sleep(0.1)
    log.seek(0)
    pytest.fail(f"moto_server exited {server.returncode}: {log.read()}")


@contextmanager
def moto_server(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Run moto's standalone S3 server on a free loopback port; yield its endpoint URL, then stop it."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    # Its log goes to a file, not a pipe: request logs must never fill a pipe and block the server.
    with tempfile.TemporaryFile(mode="w+") as log:
        server = subprocess.Popen(command, env=tool_env() | (extra_env or {}), stdout=log, stderr=log)
        try:
            wait_until_listening(server, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
