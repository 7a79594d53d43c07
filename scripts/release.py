"""Release the model: tag a clean, reproduced and pushed commit as ``rent-model@vVERSION``.

DVC's model registry (``dvc artifacts get REPO rent-model --rev vVERSION``) finds versions only
through annotated git tags named ``<artifact>@v<semver>``; the artifact and its path are declared
under ``artifacts:`` in dvc.yaml. Run it as ``make release VERSION=1.2.0``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from dvc.exceptions import DvcException
from dvc.repo import Repo
from loguru import logger

from rentprice.errors import RentpriceError
from rentprice.io import file_md5, read_yaml
from rentprice.logs import run_stage, step
from rentprice.remote import find_remote, not_in_remote

ARTIFACT = "rent-model"
VERSION = re.compile(r"\d+\.\d+\.\d+")


class ReleaseError(RentpriceError):
    """The commit cannot be released yet; the message says what to do first."""


def tag_name(version: str) -> str:
    """The registry tag for ``version`` (MAJOR.MINOR.PATCH)."""
    if not VERSION.fullmatch(version):
        raise ReleaseError(f"VERSION={version!r} is not MAJOR.MINOR.PATCH: `make release VERSION=1.2.0`")
    return f"{ARTIFACT}@v{version}"


def artifact_path(dvc_yaml: Path) -> Path:
    """The path dvc.yaml declares for the artifact."""
    artifacts = (read_yaml(dvc_yaml) or {}).get("artifacts") or {}
    if ARTIFACT not in artifacts:
        raise ReleaseError(f"{dvc_yaml}: no artifact {ARTIFACT!r} under `artifacts:`")
    return Path(artifacts[ARTIFACT]["path"])


def git(*args: str) -> str:
    """Run ``git ARGS`` and return its output; a failure is a one-line ReleaseError."""
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {' '.join(result.stderr.split())}")
    return result.stdout


def check_new_tag(tag: str) -> None:
    """Refuse a version that was released before."""
    if git("tag", "--list", tag).strip():
        raise ReleaseError(f"tag {tag} already exists: release a new VERSION")


def check_tree_clean() -> None:
    """Refuse uncommitted changes and untracked files: the tag must describe the commit exactly."""
    changes = git("status", "--porcelain").splitlines()
    if changes:
        raise ReleaseError(
            f"the git tree is not clean ({len(changes)} changed or untracked path(s), "
            f"e.g. {changes[0][3:]}): commit or remove them, then release"
        )


def check_pipeline_up_to_date() -> None:
    """Refuse when ``dvc status`` reports any stage or DVC-tracked file out of date."""
    try:
        with Repo() as repo:
            stale = sorted(repo.status())
    except DvcException as error:
        raise ReleaseError(f"dvc status failed: {' '.join(str(error).split())}") from None
    if stale:
        raise ReleaseError(
            f"the pipeline is not up to date (dvc status: {', '.join(stale)}): "
            "reproduce or pull it (`dvc repro`, `make pull`) and commit dvc.lock, then release"
        )


def release(version: str, remote_name: str | None) -> None:
    """Check the commit, then create the annotated tag."""
    tag = tag_name(version)
    model = artifact_path(Path("dvc.yaml"))
    check_new_tag(tag)
    check_tree_clean()
    check_pipeline_up_to_date()
    remote = find_remote(remote_name)
    missing = not_in_remote(remote)
    if missing:
        raise ReleaseError(
            f"not in {remote} yet: {', '.join(missing)}: run `make push` "
            "(the model and the data it was trained on must be fetchable), then release"
        )
    with step("tag release") as facts:
        git("tag", "--annotate", tag, "--message", f"{ARTIFACT} v{version}: {model} md5 {file_md5(model)}")
        facts.update(tag=tag, commit=git("rev-parse", "--short", "HEAD").strip(), remote=remote.name)
    logger.info("publish it with `git push origin HEAD {}`", tag)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the version and an optional remote name."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH, e.g. 1.2.0")
    parser.add_argument(
        "-r", "--remote", help="remote that must hold the model (default: the default remote)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python scripts/release.py` (`make release VERSION=...`)."""
    args = parse_args(argv)
    return run_stage("release", lambda: release(args.version, args.remote))


if __name__ == "__main__":
    sys.exit(main())
