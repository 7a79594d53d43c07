"""The baseline notebook: committed stripped, and it runs top to bottom on this environment's kernel.

The slow test executes a copy of the notebook with two probe cells added (one first, one last): the
first records every matplotlib figure the notebook creates, the last reports the kernel's interpreter and
any axes without a title or axis labels.
"""

import json
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tests.support import REPO_ROOT, tool_env

NOTEBOOK = REPO_ROOT / "notebook" / "model_baseline.ipynb"

RECORD_FIGURES = """
import matplotlib.pyplot as _plt

_figures, _new_figure = [], _plt.figure


def _recording_figure(*args, **kwargs):
    _figures.append(_new_figure(*args, **kwargs))
    return _figures[-1]


_plt.figure = _recording_figure
"""

REPORT = """
import json as _json
import sys as _sys

_unlabelled = [
    f"figure {number} axes {index}: {axes.get_title()!r} x={axes.get_xlabel()!r} y={axes.get_ylabel()!r}"
    for number, figure in enumerate(_figures)
    for index, axes in enumerate(figure.axes)
    if not (axes.get_title() or figure.get_suptitle()) or not axes.get_xlabel() or not axes.get_ylabel()
]
print("PROBE" + _json.dumps({"prefix": _sys.prefix, "figures": len(_figures), "unlabelled": _unlabelled}))
"""

# A number in prose: digits with an optional decimal part, not part of a word such as "R2" or "log10".
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
CODE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)


def make(target: str, notebook) -> subprocess.CompletedProcess:
    """`make notebook-strip` or `make notebook-check` (nbstripout) on one notebook."""
    return subprocess.run(
        ["make", "-s", target, f"NOTEBOOKS={notebook}"],
        cwd=REPO_ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def prose_numbers(markdown: str) -> set[str]:
    """Numbers quoted in markdown text, ignoring code spans and blocks (commands, column names)."""
    return set(NUMBER.findall(CODE.sub(" ", markdown)))


def text_outputs(cells) -> str:
    """Everything the code cells printed or displayed as text."""
    parts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def unbacked_numbers(cells) -> list[str]:
    """Numbers in markdown cells that no output shows: claims the notebook did not compute."""
    shown = set(NUMBER.findall(text_outputs(cells)))
    quoted = set().union(*(prose_numbers(c.source) for c in cells if c.cell_type == "markdown"))
    return sorted(quoted - shown)


def test_committed_notebook_is_stripped():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), (
        "run `make notebook-strip` before committing the notebook"
    )
    check = make("notebook-check", NOTEBOOK)
    assert check.returncode == 0, check.stdout + check.stderr


def test_strip_removes_outputs_and_check_reports_them(tmp_path):
    notebook = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("print(1)")])
    notebook.cells[1].outputs = [new_output("stream", name="stdout", text="1\n")]
    notebook.cells[1].execution_count = 1
    notebook.cells[1].metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    notebook.metadata["language_info"] = {"name": "python", "version": "3.11.2"}
    ids = [cell.id for cell in notebook.cells]
    path = tmp_path / "executed.ipynb"
    nbformat.write(notebook, path)

    check = make("notebook-check", path)
    assert check.returncode != 0
    assert f"would have stripped {path}" in check.stdout
    assert nbformat.read(path, as_version=4) == notebook, "the check changed the notebook"
    assert make("notebook-strip", path).returncode == 0

    stripped = nbformat.read(path, as_version=4)
    cell = stripped.cells[1]
    assert (cell.outputs, cell.execution_count, dict(cell.metadata)) == ([], None, {})
    assert "language_info" not in stripped.metadata
    assert [cell.id for cell in stripped.cells] == ids
    assert make("notebook-check", path).returncode == 0


def test_unbacked_numbers_finds_a_hard_coded_claim():
    notebook = new_notebook(
        cells=[
            new_markdown_cell("R² drops from 0.75 to 0.51; run `dvc exp run -S train.max_features=0.5`."),
            new_code_cell("print(r2)"),
        ]
    )
    notebook.cells[1].outputs = [new_output("stream", name="stdout", text="R² 0.75 against 0.48\n")]
    assert unbacked_numbers(notebook.cells) == ["0.51"]


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_the_venv_kernel():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells = [new_code_cell(RECORD_FIGURES), *notebook.cells, new_code_cell(REPORT)]
    # Working directory = repository root; nbclient raises CellExecutionError on the first failing cell.
    NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute()

    cells = notebook.cells[1:-1]
    outputs = [output for cell in cells for output in cell.get("outputs", [])]
    report = json.loads(notebook.cells[-1].outputs[0]["text"].removeprefix("PROBE"))
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    warnings = [output["text"] for output in outputs if output.get("name") == "stderr"]

    assert report["prefix"] == sys.prefix, "the kernel did not run this environment's python"
    assert report["figures"] >= 5 and images == report["figures"]
    assert report["unlabelled"] == []
    assert warnings == []
    assert unbacked_numbers(cells) == []
