"""Loading ``params.yaml``, the single source of every tunable value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rentprice.errors import RentpriceError

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read the params file as a dict; a missing or malformed file is a one-line error."""
    try:
        params = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RentpriceError(f"{path}: params file not found (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise RentpriceError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
    if not isinstance(params, dict):
        raise RentpriceError(f"{path}: expected a mapping of parameter groups")
    return params
