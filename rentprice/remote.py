"""DVC remote storage: push and pull with errors a user can act on, and what a release checks.

``python -m rentprice.remote push|pull [--remote NAME] [TARGET ...]`` (``make push``/``make pull``)
runs DVC's push or pull through its Python API; DVC logs its own warnings and errors. The source
snapshot's remote is pull-only by design: the ``.dvc`` file of the snapshot names it (``remote:
source``) and marks the snapshot ``push: false``, ``.dvc/config`` sets no default remote, and a push
refuses the ``source`` remote, any remote that pull-only outputs name, and any remote that points at
or into one of their locations. Without a
remote of the user's (the default one), push and pull say in one line how to add one. Before pushing
it also refuses a local remote without write permission bits (root would write there anyway); before
pulling it checks that a local remote exists; when DVC fails it adds one line naming the remote, the
files and the fix, chosen by the type of the exception DVC raised or logged.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dvc.config import Config
from dvc.exceptions import CheckoutError
from dvc.repo import Repo

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


#: The remote of the shared source snapshot (``.dvc/config``): pull-only whatever the ``.dvc`` files say,
#: also after a new snapshot's ``.dvc`` file dropped its ``remote:``/``push:`` lines (docs/storage.md).
SOURCE_REMOTE = "source"


def pull_only_remotes() -> list[Remote]:
    """SOURCE_REMOTE when configured, and the remotes that outputs marked ``push: false`` name."""
    with Repo() as repo:
        names = {out.remote for out in repo.index.outs if out.remote and not out.can_push}
    if SOURCE_REMOTE in Config.from_cwd()["remote"]:
        names.add(SOURCE_REMOTE)
    return [find_remote(name) for name in sorted(names)]


def check_not_pull_only(remote: Remote, pull_only: list[Remote]) -> None:
    """Refuse a remote that is, or points into, a pull-only source's remote; for any user."""
    for source in pull_only:
        if remote.name == source.name or _inside(remote, source):
            raise StorageError(
                f"{remote} holds the pull-only source snapshot ({source.name}): nothing is ever pushed "
                f"there; push to a remote of your own: {ADD_REMOTE}"
            )


def _inside(remote: Remote, source: Remote) -> bool:
    """Whether ``remote`` is ``source``'s location or a folder within it (links resolved)."""
    if remote.local_path is not None and source.local_path is not None:
        path, root = Path(os.path.realpath(remote.local_path)), Path(os.path.realpath(source.local_path))
        return path == root or root in path.parents
    url, root_url = remote.url.rstrip("/"), source.url.rstrip("/")
    return url == root_url or url.startswith(f"{root_url}/")


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


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the exceptions it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _boto_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The credential and connection errors of botocore; none without the s3 extra, where none occur."""
    try:
        from botocore import exceptions
    except ImportError:
        return (), ()
    return (exceptions.NoCredentialsError, exceptions.PartialCredentialsError), (exceptions.ConnectionError,)


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def explain_failure(action: str, remote: Remote, errors: Sequence[BaseException]) -> str:
    """One line saying what a failed ``dvc <action>`` with ``remote`` means and how to fix it.

    ``errors`` are what DVC's Python API raised, then what it logged with a traceback: for a failed
    file it raises only a count (``UploadError``, ``DownloadError``) and logs each file's exception.
    The cause is found by exception type (DVC's, botocore's, and the ``OSError`` subclasses that
    s3fs and local file systems raise), never by matching message text.
    """
    credentials, connection = _boto_errors()
    every = [cause for error in errors for cause in causes(error)]
    for error in every:
        if isinstance(error, CheckoutError):
            return (
                f"{', '.join(map(str, error.target_infos))}: in neither the local cache nor {remote}. "
                "Whoever produced it must push it (`make push`); to rebuild pipeline outputs here "
                "instead: `dvc pull --allow-missing && dvc repro`"
            )
        if isinstance(error, credentials):
            return (
                f"{remote} has no credentials here ({one_line(error)}): set them outside git with "
                f"`dvc remote modify --local {remote.name} access_key_id ID` and "
                f"`dvc remote modify --local {remote.name} secret_access_key KEY`, "
                "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(error, OSError) and not _on_remote(error, remote):
            return (
                f"dvc {action} failed on {error.filename} ({one_line(error)}): a local path, not "
                f"{remote}; check its permissions and the free space there"
            )
        if isinstance(error, PermissionError) or (isinstance(error, OSError) and error.errno == errno.EROFS):
            verb = "write" if action == "push" else "read"
            return (
                f"{remote} refused access ({one_line(error)}): these credentials may not {verb} there; "
                f"use credentials allowed to {verb}, or another remote (`dvc remote list`)"
            )
        if isinstance(error, FileNotFoundError):
            place = "the bucket" if remote.url.startswith("s3://") else "its location"
            return (
                f"{remote}: {place} does not exist ({one_line(error)}): create it, or fix the URL with "
                f"`dvc remote modify --local {remote.name} url URL`"
            )
        if isinstance(error, (*connection, ConnectionError, TimeoutError)):
            return (
                f"{remote} cannot be reached ({one_line(error)}): check its url and endpointurl "
                f"(`dvc config remote.{remote.name}.endpointurl`) and the network, then retry"
            )
    detail = f" ({one_line(errors[0])})" if errors else ""
    return f"dvc {action} with {remote} failed{detail}: see DVC's messages above"


def _on_remote(error: OSError, remote: Remote) -> bool:
    """Whether ``error`` is about ``remote``, not about a local path outside it (workspace, cache).

    s3fs names an object as ``bucket/key`` (or nothing); a local file system names absolute paths.
    """
    name = error.filename
    if not isinstance(name, str) or not os.path.isabs(name):
        return True
    local = remote.local_path
    return local is not None and Path(os.path.realpath(name)).is_relative_to(os.path.realpath(local))


class LoggedErrors(logging.Handler):
    """Collects the exceptions that DVC logs with a traceback (one per file it failed to transfer)."""

    LOGGERS = ("dvc", "dvc_data", "dvc_objects")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's exception, if it carries one."""
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])

    def __enter__(self) -> LoggedErrors:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


@contextmanager
def explained(action: str, remote: Remote) -> Iterator[Repo]:
    """The DVC repository of the working directory; a failure of DVC's within is one StorageError."""
    with LoggedErrors() as logged:
        try:
            with Repo() as repo:
                yield repo
        except RentpriceError:
            raise
        except Exception as error:  # whatever DVC or a file system library raises: one line, not a traceback
            raise StorageError(explain_failure(action, remote, [error, *logged.errors])) from error


def transfer(action: str, remote_name: str | None, targets: Sequence[str]) -> None:
    """``dvc push``/``dvc pull`` through DVC's Python API, with the checks above; DVC logs its errors."""
    remote = find_remote(remote_name)
    if action == "push":
        check_not_pull_only(remote, pull_only_remotes())
        check_writable(remote)
    else:
        check_exists(remote)
    with step(f"dvc {action}") as facts, explained(action, remote) as repo:
        if action == "push":
            facts.update(files=repo.push(targets=list(targets) or None, remote=remote.name))
        else:
            # Without --remote a pull also fetches outputs with a remote of their own (the source snapshot).
            stats = repo.pull(targets=list(targets) or None, remote=remote_name)["stats"]
            facts.update(files=stats["fetched"], changed=stats["added"] + stats["modified"])
        facts.update(remote=remote.name, targets=" ".join(targets) or "all")


def not_in_remote(remote: Remote) -> list[str]:
    """The DVC-tracked files of this commit that the remote does not hold yet."""
    with explained("status", remote) as repo:
        return sorted(repo.status(cloud=True, remote=remote.name))


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
