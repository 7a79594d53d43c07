"""Every stage's `deps:` in dvc.yaml lists exactly the `rentprice` modules its script runs.

DVC reruns a stage only when one of its deps changes, and the deps are kept by hand: a new
`from rentprice.scoring import ...` in model.py would otherwise leave train stale when scoring.py
changes. The closure follows every import statement (also inside functions, and relative ones)
through the package. A package's ``__init__.py`` counts when a name is imported from it
(``from rentprice.service import create_app``), not merely because a submodule of it is imported.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from rentprice.io import read_yaml
from tests.support import REPO_ROOT

PACKAGE = "rentprice"
SCRIPT = re.compile(r"\bpython\s+(\S+\.py)\b")
MODULE = re.compile(r"\bpython\s+-m\s+(\S+)")
STAGES = read_yaml(REPO_ROOT / "dvc.yaml")["stages"]


def module_file(name: str, root: Path) -> Path | None:
    """``rentprice.a.b`` -> ``root/rentprice/a/b.py`` or ``.../a/b/__init__.py``; None outside the package."""
    if name.split(".")[0] != PACKAGE:
        return None
    base = root.joinpath(*name.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def imported(path: Path, module: str | None, root: Path) -> set[str]:
    """The package modules whose code ``path`` (module ``module``, None for a script) imports."""
    package = None
    if module is not None:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if module_file(submodule, root) else source)
    return {name for name in found if module_file(name, root)}


def import_closure(script: Path, root: Path) -> dict[str, list[str]]:
    """Each package file the script runs (relative to ``root``), with the import chain that reaches it."""
    chains: dict[str, list[str]] = {}
    todo = [(script, None, [script.relative_to(root).as_posix()])]
    while todo:
        path, module, chain = todo.pop()
        for name in sorted(imported(path, module, root)):
            file = module_file(name, root)
            key = file.relative_to(root).as_posix()
            if key not in chains:
                chains[key] = [*chain, name]
                todo.append((file, name, chains[key]))
    return chains


def stage_script(stage: dict) -> str:
    """The Python file a stage's ``cmd`` runs: ``python stages/train.py ...`` or ``python -m rentprice.x``."""
    if module := MODULE.search(stage["cmd"]):
        file = module_file(module.group(1), REPO_ROOT)
        assert file, f"no module {module.group(1)} in {PACKAGE}"
        return file.relative_to(REPO_ROOT).as_posix()
    match = SCRIPT.search(stage["cmd"])
    assert match, f"no `python <script>.py` or `python -m <module>` in cmd: {stage['cmd']}"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_list_exactly_the_package_modules_its_script_imports(name):
    stage = STAGES[name]
    script = stage_script(stage)
    listed = {dep for dep in stage.get("deps", []) if dep.startswith(f"{PACKAGE}/") and dep != script}
    needed = import_closure(REPO_ROOT / script, REPO_ROOT)
    if MODULE.search(stage["cmd"]):  # `python -m rentprice.x` runs the package's __init__.py first
        needed.setdefault(f"{PACKAGE}/__init__.py", [f"python -m {MODULE.search(stage['cmd']).group(1)}"])
    problems = (
        [f"add {script} to its deps (the stage runs it)"] if script not in stage.get("deps", []) else []
    )
    problems += [
        f"add {path} to its deps ({' -> '.join(needed[path])})" for path in sorted(set(needed) - listed)
    ]
    problems += [
        f"remove {path} from its deps ({script} does not import it, directly or through {PACKAGE})"
        for path in sorted(listed - set(needed))
    ]
    if problems:
        pytest.fail(f"dvc.yaml, stage {name!r}:\n  " + "\n  ".join(problems), pytrace=False)


def test_import_closure_follows_relative_lazy_and_from_imports(tmp_path):
    files = {
        "stages/run.py": "import json\nfrom rentprice.a import helper\n",
        "rentprice/__init__.py": "",
        "rentprice/a.py": "from .b import thing\n\ndef helper():\n    from rentprice import c\n",
        "rentprice/b.py": "import rentprice.sub.d\n",
        "rentprice/c.py": "",
        "rentprice/sub/__init__.py": "from .. import c\n",
        "rentprice/sub/d.py": "from rentprice.sub import NAME\n",
        "rentprice/unused.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    closure = import_closure(tmp_path / "stages/run.py", tmp_path)
    assert sorted(closure) == [
        "rentprice/a.py",
        "rentprice/b.py",
        "rentprice/c.py",
        "rentprice/sub/__init__.py",
        "rentprice/sub/d.py",
    ]
    assert closure["rentprice/sub/d.py"] == ["stages/run.py", "rentprice.a", "rentprice.b", "rentprice.sub.d"]
