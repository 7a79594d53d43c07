"""Changing params.yaml in a test repo the way a user does: through YAML keys, never by text replacement.

A text replacement of ``n_estimators: 300`` silently does nothing once the committed value changes;
these helpers read the committed value, change it with a comment-preserving YAML round trip and
check through the project's own loader that the change took effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from rentprice.params import load_params


def get_param(repo: Path, key: str) -> Any:
    """The value of the dotted ``key`` in ``repo``'s params.yaml (validated by the schema)."""
    value: Any = load_params(repo / "params.yaml").model_dump()
    for part in key.split("."):
        value = value[part]
    return value


def set_params(repo: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in ``repo``'s params.yaml (comments kept); return the old values.

    Fails when a value equals the current one (the test would then test nothing) or when the file,
    read back through the schema, does not hold the new values.
    """
    yaml = YAML()
    path = repo / "params.yaml"
    document = yaml.load(path)
    old = {}
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = document
        for part in parents:
            node = node[part]
        old[key] = node[last]
        assert old[key] != value, f"{key} is already {value!r}: choose another value"
        node[last] = value
    yaml.dump(document, path)
    for key, value in changes.items():
        assert get_param(repo, key) == value, f"{key} did not change to {value!r}"
    return old


def other_count(value: int) -> int:
    """A positive count different from ``value`` and smaller where possible (faster to train)."""
    return value // 2 if value > 1 else value + 1
