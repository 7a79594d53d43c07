"""Write a pull-request report: params and metrics diff against a base revision, plots as PNG images.

The plots are drawn offline with matplotlib from the data and titles `dvc plots diff --json` returns
for the plots defined in dvc.yaml (its HTML output loads scripts from the internet).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rentprice.errors import RentpriceError
from rentprice.io import atomic_path
from rentprice.logs import run_stage, step

WORKSPACE = "workspace"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the base revision and where to write the report and its images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the workspace with")
    parser.add_argument("--output", type=Path, default=Path("report.md"), help="markdown report")
    parser.add_argument(
        "--images", type=Path, default=Path("report_plots"), help="directory for the plot images"
    )
    return parser.parse_args(argv)


def command_output(*args: str) -> str:
    """The stdout of a command; a failure becomes a one-line error with its last message."""
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise RentpriceError(f"`{' '.join(args)}` failed: {lines[-1]}")
    return result.stdout


def resolve(base: str) -> str:
    """The short commit id of ``base``; an unknown revision is a one-line error."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--short", f"{base}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RentpriceError(f"--base {base}: not a commit in this repository (fetch it first?)")
    return result.stdout.strip()


def changed_metrics(diff: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """``file:metric`` names whose value differs in a `dvc metrics diff --all --json` result."""
    return sorted(
        f"{path}:{name}"
        for path, metrics in diff.items()
        for name, change in metrics.items()
        if change.get("old") != change.get("new")
    )


def params_section(base: str, diff: dict[str, Any], table: str) -> str:
    """The params diff table, or a sentence when no param changed."""
    if not diff:
        return f"No parameter differs from `{base}`."
    return table.strip()


def metrics_section(base: str, diff: dict[str, Any], table: str) -> str:
    """The metrics table (all metrics), headed by which ones changed or a sentence that none did."""
    if not diff:
        return f"No metrics found in `{base}` or the workspace."
    changed = changed_metrics(diff)
    if not changed:
        return f"No metric differs from `{base}`; current values:\n\n{table.strip()}"
    return f"{len(changed)} metric(s) differ from `{base}`.\n\n{table.strip()}"


def slug(title: str) -> str:
    """A file name stem for a plot title: ``'Predicted vs actual rent'`` -> ``'predicted-vs-actual-rent'``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "plot"


def revision_colors(spec: dict[str, Any]) -> dict[str, str]:
    """The colour DVC assigns to each revision in a vega-lite spec."""
    scale = spec.get("encoding", {}).get("color", {}).get("scale", {})
    return dict(zip(scale.get("domain", []), scale.get("range", []), strict=False))


def bar_order(values: list[dict[str, Any]], x: str, y: str, first_revision: str) -> list[str]:
    """Bar categories bottom to top: ascending by the first revision's value, so the largest is on top."""
    first = {row[y]: row[x] for row in values if row["rev"] == first_revision}
    return sorted({row[y] for row in values}, key=lambda category: (first.get(category, 0), category))


def render_plot(spec: dict[str, Any], revisions: list[str], path: Path) -> None:
    """Draw one DVC vega-lite plot (scatter or bar) with one colour per revision into a PNG file."""
    encoding = spec["encoding"]
    x, y = encoding["x"], encoding["y"]
    values = spec["data"]["values"]
    colors = revision_colors(spec)
    is_bar = spec["mark"]["type"] == "bar"
    categories = bar_order(values, x["field"], y["field"], revisions[0]) if is_bar else []
    height = max(4.0, 0.18 * len(categories) * len(revisions)) if is_bar else 5.0
    width = 0.8 / len(revisions)  # of one bar; a category's bars share 0.8 of its row
    figure = Figure(figsize=(7, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for offset, revision in enumerate(revisions):
        rows = [row for row in values if row["rev"] == revision]
        if is_bar:
            lookup = {row[y["field"]]: row[x["field"]] for row in rows}
            positions = [index + offset * width for index in range(len(categories))]
            lengths = [lookup.get(category, 0) for category in categories]
            axes.barh(positions, lengths, height=width, label=revision, color=colors.get(revision))
        else:
            axes.scatter(
                [row[x["field"]] for row in rows],
                [row[y["field"]] for row in rows],
                s=12,
                alpha=0.6,
                label=revision,
                color=colors.get(revision),
            )
    if is_bar:
        axes.set_yticks([index + (len(revisions) - 1) * width / 2 for index in range(len(categories))])
        axes.set_yticklabels(categories)
    title = spec.get("title") or path.stem
    axes.set_title(title["text"] if isinstance(title, dict) else title)
    axes.set_xlabel(x.get("title", x["field"]))
    axes.set_ylabel(y.get("title", y["field"]))
    axes.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def plots_section(plots: dict[str, Any], images: Path, link_base: Path) -> str:
    """Render every plot of `dvc plots diff --json` to ``images`` and return markdown embedding them."""
    lines = []
    for title, renders in sorted(plots.get("data", {}).items()):
        for render in renders:
            if render.get("type") != "vega":
                continue
            path = images / f"{slug(title)}.png"
            render_plot(render["content"], render["revisions"], path)
            lines.append(f"![{title}]({Path(os.path.relpath(path, link_base)).as_posix()})")
    return "\n\n".join(lines) if lines else "No plots found."


def report(args: argparse.Namespace) -> None:
    """Compare the workspace with ``--base`` and write the markdown report with its plot images."""
    commit = resolve(args.base)
    with step("params diff") as facts:
        params = json.loads(command_output("dvc", "params", "diff", args.base, "--json"))
        params_md = command_output("dvc", "params", "diff", args.base, "--md") if params else ""
        facts.update(files_changed=len(params))
    with step("metrics diff") as facts:
        metrics = json.loads(command_output("dvc", "metrics", "diff", args.base, "--all", "--json"))
        metrics_md = command_output("dvc", "metrics", "diff", args.base, "--all", "--md") if metrics else ""
        facts.update(changed=len(changed_metrics(metrics)))
    with step("render plots") as facts:
        plots = json.loads(command_output("dvc", "plots", "diff", args.base, "--json"))
        plots_md = plots_section(plots, args.images, args.output.parent)
        facts.update(plots=len(plots.get("data", {})), images=args.images)
    text = "\n\n".join(
        [
            f"# Experiment report: `{args.base}` ({commit}) → {WORKSPACE}",
            "## Params",
            params_section(args.base, params, params_md),
            "## Metrics",
            metrics_section(args.base, metrics, metrics_md),
            "## Plots",
            plots_md,
        ]
    )
    with step("write report") as facts, atomic_path(args.output) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
        facts.update(output=args.output)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python scripts/report.py --base main` (`make report BASE=main`)."""
    args = parse_args(argv)
    return run_stage("report", lambda: report(args))


if __name__ == "__main__":
    sys.exit(main())
