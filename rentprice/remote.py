"""DVC remote storage: push and pull with errors a user can act on, and what a release checks.

``python -m rentprice.remote push|pull [--remote NAME] [TARGET ...]`` (``make push``/``make pull``)
runs ``dvc push``/``dvc pull`` and echoes DVC's output. The source snapshot's remote is pull-only by
design: the ``.dvc`` file of the snapshot names it (``remote: source``) and marks the snapshot
``push: false``, ``.dvc/config`` sets no default remote, and a push refuses any remote that pull-only
outputs name or that points where one of them points. Without a remote of the user's (the default
one), push and pull say in one line how to add one. Before pushing it also refuses a local remote
without write permission bits (root would write there anyway); before pulling it checks that a local
remote exists; when DVC fails it adds one line naming the remote, the files and the fix.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dvc.config import Config

from rentprice.errors import RentpriceError
from rentprice.logs import run_stage, step


class StorageError(RentpriceError):
    """A push, pull or remote check cannot go ahead; the message names the cause and the fix."""


@dataclass(frozen=True)
class Remote:
    """A DVC remote as the merged config (``.dvc/config``, then ``.dvc/config.local``) defines it."""

    name: str
    url: str

    @property
    def local_path(self) -> Path | None:
        """The directory of a local remote; None for S3, SSH, HTTP and other URLs."""
        if self.url.startswith("file://"):
            return Path(self.url.removeprefix("file://"))
        return None if "://" in self.url else Path(self.url)

    def __str__(self) -> str:
        return f"remote {self.name!r} ({self.url})"


ADD_REMOTE = "`dvc remote add --local -d mine s3://BUCKET/PREFIX` (or a directory; docs/storage.md)"


def find_remote(name: str | None = None) -> Remote:
    """The remote called ``name``, or the default one, with its URL resolved as DVC resolves it."""
    config = Config.from_cwd()
    name = name or config["core"].get("remote")
    if not name:
        raise StorageError(
            "no DVC remote of yours is the default (the source snapshot's remote is pull-only): "
            f"add a writable one outside git with {ADD_REMOTE}"
        )
    if name not in config["remote"]:
        raise StorageError(f"no DVC remote named {name!r}: `dvc remote list` shows the configured ones")
    return Remote(name, config["remote"][name]["url"])


def pull_only_remotes() -> list[Remote]:
    """The remotes that DVC-tracked outputs marked ``push: false`` name (the source snapshot's)."""
    from dvc.repo import Repo  # here: loading DVC's repo machinery takes a second; only push needs it

    with Repo() as repo:
        names = sorted({out.remote for out in repo.index.outs if out.remote and not out.can_push})
    return [find_remote(name) for name in names]


def check_not_pull_only(remote: Remote, pull_only: list[Remote]) -> None:
    """Refuse a remote that is, or points where, a pull-only source's remote points; for any user."""
    for source in pull_only:
        if remote.name == source.name or _same_place(remote, source):
            raise StorageError(
                f"{remote} holds the pull-only source snapshot ({source.name}): nothing is ever pushed "
                f"there; push to a remote of your own: {ADD_REMOTE}"
            )


def _same_place(first: Remote, second: Remote) -> bool:
    if first.local_path is not None and second.local_path is not None:
        return os.path.realpath(first.local_path) == os.path.realpath(second.local_path)
    return first.url.rstrip("/") == second.url.rstrip("/")


def check_writable(remote: Remote) -> None:
    """Refuse a local remote whose directory has no write permission bits, even for root."""
    path = remote.local_path
    if path is None:
        return
    existing = next(candidate for candidate in (path, *path.parents) if candidate.exists())
    if not existing.stat().st_mode & 0o222 or not os.access(existing, os.W_OK):
        raise StorageError(f"{remote} is read-only: push to a writable remote instead, e.g. {ADD_REMOTE}")


def check_exists(remote: Remote) -> None:
    """Refuse to pull from a local remote whose directory does not exist."""
    path = remote.local_path
    if path is not None and not path.is_dir():
        raise StorageError(
            f"{remote} does not exist: mount it or point the remote elsewhere with "
            f"`dvc remote modify --local {remote.name} url PATH`"
        )


_MISSING_TARGETS = re.compile(r"Checkout failed for following targets:\n(?P<paths>(?:.+\n)+?)Is your cache")
_NO_CREDENTIALS = re.compile(r"Unable to locate credentials")
_NO_BUCKET = re.compile(r"NoSuchBucket|specified bucket does not exist")
_DENIED = re.compile(r"AccessDenied|Access Denied|Permission denied|Read-only file system")
_UNREACHABLE = re.compile(
    r"Could not connect to the endpoint URL|Connection refused|timed out|Name or service not known"
)


def explain_failure(action: str, remote: Remote, output: str) -> str:
    """One line saying what a failed ``dvc <action>`` output means and how to fix it."""
    if match := _MISSING_TARGETS.search(output):
        paths = ", ".join(match["paths"].split())
        return (
            f"{paths}: in neither the local cache nor {remote}. Whoever produced it must push it "
            "(`make push`); to rebuild pipeline outputs here instead: `dvc pull --allow-missing && dvc repro`"
        )
    if _NO_CREDENTIALS.search(output):
        return (
            f"{remote} has no credentials here: set them outside git with "
            f"`dvc remote modify --local {remote.name} access_key_id ID` and "
            f"`dvc remote modify --local {remote.name} secret_access_key KEY`, "
            "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if _NO_BUCKET.search(output):
        return (
            f"{remote}: the bucket does not exist: create it, or fix the URL with "
            f"`dvc remote modify --local {remote.name} url s3://BUCKET/PREFIX`"
        )
    if _DENIED.search(output):
        verb = "write" if action == "push" else "read"
        return (
            f"{remote} refused access: these credentials may not {verb} there; "
            f"use credentials allowed to {verb}, or another remote (`dvc remote list`)"
        )
    if _UNREACHABLE.search(output):
        return (
            f"{remote} cannot be reached: check its url and endpointurl "
            f"(`dvc config remote.{remote.name}.endpointurl`) and the network, then retry"
        )
    return f"dvc {action} with {remote} failed: see DVC's message above"


def dvc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dvc ARGS`` with this interpreter, capturing its output."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False)


def transfer(action: str, remote_name: str | None, targets: Sequence[str]) -> None:
    """``dvc push``/``dvc pull`` with the checks above; DVC's own output is echoed unchanged."""
    remote = find_remote(remote_name)
    if action == "push":
        check_not_pull_only(remote, pull_only_remotes())
        check_writable(remote)
    else:
        check_exists(remote)
    with step(f"dvc {action}") as facts:
        # A pull without --remote also fetches outputs with a remote of their own (the source snapshot).
        chosen = ["--remote", remote.name] if action == "push" or remote_name else []
        result = dvc(action, *chosen, *targets)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            raise StorageError(explain_failure(action, remote, result.stdout + result.stderr))
        facts.update(remote=remote.name, targets=" ".join(targets) or "all")


def not_in_remote(remote: Remote) -> list[str]:
    """The DVC-tracked files of this commit that the remote does not hold yet."""
    result = dvc("status", "--cloud", "--json", "--remote", remote.name)
    if result.returncode != 0:
        raise StorageError(explain_failure("status", remote, result.stdout + result.stderr))
    return sorted(json.loads(result.stdout or "{}"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the action, an optional remote name and optional targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["push", "pull"])
    parser.add_argument("-r", "--remote", help="remote name (default: the default remote)")
    parser.add_argument("targets", nargs="*", help="files, .dvc files or stages (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m rentprice.remote`."""
    args = parse_args(argv)
    return run_stage(args.action, lambda: transfer(args.action, args.remote, args.targets))


if __name__ == "__main__":
    sys.exit(main())
