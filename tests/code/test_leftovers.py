"""Killed writers leave nothing in the way: temporary files live in the repo's ignored .tmp/ and go away."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rentprice.io import TEMP_DIR, atomic_path, remove_leftovers, write_json
from tests.support import REPO_ROOT, tool_env


@pytest.fixture
def repo(tmp_path):
    """A DVC-looking repo with the project's .gitignore and .dvcignore committed."""
    (tmp_path / ".dvc").mkdir()
    for name in [".gitignore", ".dvcignore"]:
        (tmp_path / name).write_text((REPO_ROOT / name).read_text())
    env = tool_env()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "ignores"], cwd=tmp_path, check=True, env=env)
    return tmp_path


def untracked(repo) -> list[str]:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True, text=True
    ).stdout.splitlines()


def python(code: str, cwd, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=tool_env(), text=True, **kwargs
    )


def test_temporary_files_go_into_the_ignored_tmp_dir_of_the_repo(repo):
    with atomic_path(repo / "models" / "model.joblib") as temporary:
        assert temporary.parent == repo / TEMP_DIR
        temporary.write_bytes(b"partial")
        assert untracked(repo) == []  # git (and so `make sweep`, `make release`) does not see it
    assert (repo / "models" / "model.joblib").read_bytes() == b"partial"
    assert list((repo / TEMP_DIR).iterdir()) == []
    assert "/.tmp/" in (repo / ".dvcignore").read_text().splitlines()


def test_the_leftover_of_a_killed_writer_is_removed_by_the_next_write_and_a_live_ones_is_kept(repo):
    killed = python(
        """
        import os, signal
        from pathlib import Path
        from rentprice.io import atomic_path
        with atomic_path(Path("models/model.joblib")) as temporary:
            temporary.write_bytes(b"half a model")
            os.kill(os.getpid(), signal.SIGKILL)
        """,
        repo,
    )
    assert killed.wait() == -signal.SIGKILL
    leftovers = list((repo / TEMP_DIR).iterdir())
    assert [path.name.split(".")[:2] for path in leftovers] == [["model", "joblib"]]
    assert untracked(repo) == [] and not (repo / "models" / "model.joblib").exists()
    live = repo / TEMP_DIR / f"data.json.{os.getppid()}.0123abcd.tmp"  # another running process's write
    live.write_text("{}")

    write_json({"rows": 1}, repo / "metrics" / "data.json")
    assert list((repo / TEMP_DIR).iterdir()) == [live]
    assert remove_leftovers(repo / TEMP_DIR) == []


def test_sigterm_during_a_stage_write_removes_the_temporary_file(repo):
    stage = python(
        """
        import sys, time
        from pathlib import Path
        from rentprice.io import atomic_path
        from rentprice.logs import run_stage
        def body():
            with atomic_path(Path("models/model.joblib")) as temporary:
                temporary.write_bytes(b"half a model")
                print("writing", flush=True)
                time.sleep(60)
        sys.exit(run_stage("train", body))
        """,
        repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert stage.stdout.readline() == "writing\n"
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=30) == 128 + signal.SIGTERM
    assert list((repo / TEMP_DIR).iterdir()) == []
    assert not (repo / "models" / "model.joblib").exists()


def test_outside_a_dvc_repository_the_temporary_file_is_beside_the_target(tmp_path):
    with atomic_path(tmp_path / "out.csv") as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".out.csv.")
    assert not (tmp_path / TEMP_DIR).exists()
