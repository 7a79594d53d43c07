"""Strip outputs and execution records from notebooks, so they are committed small and diff cleanly."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

#: Cell metadata written by executing a notebook (timings), not by its author.
EXECUTION_METADATA = ("execution",)


def stripped(notebook: NotebookNode) -> NotebookNode:
    """A copy without outputs, execution counts, execution timings or the kernel's version details."""
    clean = copy.deepcopy(notebook)
    for cell in clean.cells:
        for key in EXECUTION_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    language = clean.metadata.get("language_info", {}).get("name")
    if language:
        clean.metadata["language_info"] = {"name": language}
    return clean


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the notebooks and whether only to check them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", type=Path, nargs="+", help="notebook files (.ipynb)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a notebook is not stripped"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Strip each notebook in place (or, with --check, list those that need it); return the exit code."""
    args = parse_args(argv)
    unstripped = []
    for path in args.notebooks:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        clean = stripped(notebook)
        if clean == notebook:
            continue
        unstripped.append(path)
        if not args.check:
            nbformat.write(clean, path)
    verb = "has outputs (run `make notebook-strip`)" if args.check else "stripped"
    for path in unstripped:
        print(f"{path}: {verb}")
    return 1 if args.check and unstripped else 0


if __name__ == "__main__":
    sys.exit(main())
