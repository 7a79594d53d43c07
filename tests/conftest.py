"""Shared fixtures: the pulled source snapshot and a project copy with its pipeline built once.

Helpers (paths, listings, dvc commands) live in ``tests.support``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import SOURCE_DB, make_project_copy, run


@pytest.fixture(scope="session")
def source_db() -> Path:
    """The pulled source snapshot (``make setup`` pulls it)."""
    if not SOURCE_DB.is_file():
        pytest.fail(f"{SOURCE_DB} is missing: run `make setup` (it runs `dvc pull`)")
    return SOURCE_DB


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """A project copy with the source pulled and the whole pipeline reproduced once."""
    repo = make_project_copy(tmp_path_factory.mktemp("built"))
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    run(["dvc", "repro"], repo)
    return repo
