"""Load a command-line script from scripts/ as a module, so its helpers can be unit tested."""

import importlib.util
from types import ModuleType

from tests.conftest import REPO_ROOT


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
