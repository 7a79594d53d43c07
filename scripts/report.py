"""Write a pull-request report: params and metrics diff against a base revision, plots as PNG images.

The plots are the very vega-lite specs `dvc plots diff --json` returns for the plots defined in
dvc.yaml (data inlined), rendered offline by vl-convert; DVC's HTML output loads scripts from the
internet, and so shows a blank page offline.
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

import vl_convert

from rentprice.errors import RentpriceError
from rentprice.io import atomic_path
from rentprice.logs import run_stage, step

WORKSPACE = "workspace"
#: Pixels per vega-lite pixel in the PNG images: 2 stays sharp on high-density screens.
SCALE = 2
VEGALITE_SCHEMA = re.compile(r"/schema/vega-lite/v(\d+)[.\w]*\.json$")


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


def vegalite_version(spec: dict[str, Any]) -> str | None:
    """The newest Vega-Lite library in vl-convert of the major version the spec's ``$schema`` names.

    DVC's templates declare ``https://vega.github.io/schema/vega-lite/v5.json``; vl-convert bundles
    5.x and 6.x libraries and would otherwise pick its newest. None (vl-convert's default) for a
    spec without a ``$schema``; RentpriceError when vl-convert bundles none of that major version.
    """
    match = VEGALITE_SCHEMA.search(spec.get("$schema", ""))
    if not match:
        return None
    bundled = vl_convert.get_vegalite_versions()
    same_major = [version for version in bundled if version.split(".")[0] == match.group(1)]
    if not same_major:
        raise RentpriceError(f"vl-convert bundles no Vega-Lite v{match.group(1)}, only {', '.join(bundled)}")
    return max(same_major, key=lambda version: tuple(map(int, version.split("."))))


def render_plot(spec: dict[str, Any], path: Path) -> None:
    """Render a vega-lite spec, as `dvc plots diff --json` returns it, to a PNG file at twice its size.

    No network access is allowed (``allowed_base_urls=[]``): DVC inlines the data, and vl-convert
    ships its fonts, so a spec that would load anything from elsewhere is a RentpriceError.
    """
    try:
        png = vl_convert.vegalite_to_png(
            spec, vl_version=vegalite_version(spec), scale=SCALE, allowed_base_urls=[]
        )
    except ValueError as error:
        # vl-convert's message is a header, the JavaScript error and its stack: keep the first two.
        lines = [line.strip() for line in str(error).splitlines() if not line.strip().startswith("at ")]
        reason = " ".join(line for line in lines if line)
        raise RentpriceError(f"{path.name}: vl-convert cannot render the plot: {reason}") from error
    with atomic_path(path) as temporary:
        temporary.write_bytes(png)


def plots_section(plots: dict[str, Any], images: Path, link_base: Path) -> str:
    """Render every plot of `dvc plots diff --json` to ``images`` and return markdown embedding them."""
    lines = []
    for title, renders in sorted(plots.get("data", {}).items()):
        for render in renders:
            if render.get("type") != "vega":
                continue
            path = images / f"{slug(title)}.png"
            render_plot(render["content"], path)
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
