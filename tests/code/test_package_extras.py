"""The package's extras hold: scoring and the service run on the core and `serve` alone.

The container image installs `.[serve]` only (Dockerfile), so nothing the service imports may
come from the pipeline, s3, report or dev extras. Each check imports the modules in a fresh
interpreter whose import system refuses those extras' packages, as if they were not installed.
"""

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.support import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
SERVICE_MODULES = sorted(
    "rentprice.service" + ("" if path.stem == "__init__" else f".{path.stem}")
    for path in (REPO_ROOT / "rentprice" / "service").glob("*.py")
)
# Batch scoring reads and writes files with pyarrow and shows tqdm's progress bar (pipeline extra),
# but must not need DVC or the SQL source.
BATCH_USES = {"pyarrow", "tqdm"}

# Imports each step's modules, in order, while that step's packages are blocked; prints the blocked
# packages loaded after each step (none, unless something imported them before the finder was
# installed) and whether a blocked import fails, as the check of the check.
IMPORT_WITHOUT = """
import importlib, importlib.abc, json, sys

blocked = set()


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the installed extras)", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
found = []
for step_blocked, modules in json.loads(sys.argv[1]):
    blocked.clear()
    blocked.update(step_blocked)
    for module in modules:
        importlib.import_module(module)
    found.append(sorted({name.partition(".")[0] for name in sys.modules} & blocked))
blocked.add("dvc")
try:
    import dvc.api
except ModuleNotFoundError:
    print(json.dumps({"loaded": found, "dvc_blocked": True}))
"""


def distribution(requirement: str) -> str:
    """``'moto[server]>=5'`` -> ``'moto'``, in the normalised form of package names."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]).lower()


def import_names(distributions: set[str]) -> set[str]:
    """The top-level modules the installed ``distributions`` provide (``pyyaml`` -> ``yaml``)."""
    return {
        module
        for module, owners in packages_distributions().items()
        if {distribution(owner) for owner in owners} & distributions
    }


def not_installed_with(extra: str) -> set[str]:
    """Modules of the distributions in every other extra that neither the core nor ``extra`` lists."""
    kept = {
        distribution(item)
        for item in [*PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"][extra]]
    }
    others = {
        distribution(item)
        for name, items in PYPROJECT["optional-dependencies"].items()
        if name != extra
        for item in items
    }
    return import_names(others - kept)


def test_the_blocked_modules_are_the_other_extras():
    blocked = not_installed_with("serve")
    assert {"dvc", "dvclive", "sqlalchemy", "pyarrow", "tqdm", "vl_convert", "pytest", "yaml"} <= blocked
    assert not blocked & {"flask", "gunicorn", "pandas", "sklearn", "ruamel", "joblib", "loguru"}


def test_scoring_service_and_batch_import_without_the_extras_they_do_not_need():
    # pandas imports pyarrow when it can, so scoring and the service come first, with it blocked.
    steps = [
        (sorted(not_installed_with("serve")), ["rentprice.scoring", *SERVICE_MODULES]),
        (sorted(not_installed_with("serve") - BATCH_USES), ["rentprice.batch"]),
    ]
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT, json.dumps(steps)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"loaded": [[], []], "dvc_blocked": True}
