"""The report helpers: empty-diff sentences, changed metrics and offline plot rendering (vl-convert)."""

import json
import re
import subprocess

import numpy as np
import pytest
import vl_convert
from dvc_render.vega_templates import Template, get_template
from PIL import Image

from rentprice.errors import RentpriceError
from rentprice.io import read_yaml
from tests.support import REPO_ROOT, load_module, run, tool_env

report = load_module("scripts/report.py")

PREDICTED_VS_ACTUAL = "Predicted vs actual rent"
REVISIONS = ["workspace", "main"]
COLORS = {"field": "rev", "scale": {"domain": REVISIONS, "range": ["#945dd6", "#13adc7"]}}


def dvc_plot(title: str) -> dict:
    """The definition of a top-level plot in dvc.yaml."""
    plots = read_yaml(REPO_ROOT / "dvc.yaml")["plots"]
    return next(plot[title] for plot in plots if title in plot)


def template(name: str) -> Template:
    """A DVC plot template: the project's own in .dvc/plots, else one of DVC's built-in ones."""
    return get_template(name, str(REPO_ROOT / ".dvc" / "plots"))


def filled(name: str, values: list[dict], x: str, y: str) -> dict:
    """A template with its anchors filled as `dvc plots diff --json` fills them for two revisions."""
    spec = template(name)
    anchors = {
        "data": values,
        "title": "A plot",
        "plot_width": 300,
        "plot_height": 300,
        "x": x,
        "y": y,
        "x_label": f"{x} label",
        "y_label": f"{y} label",
        "zoom_and_pan": {"name": "grid", "select": "interval", "bind": "scales"},
        "color": COLORS,
        "shape": {},
        "column": {},
        "tooltip": [{"field": "rev"}, {"field": x}, {"field": y}],
    }
    for anchor, value in anchors.items():
        spec.fill_anchor(anchor, value)
    return spec.content


SCATTER = filled(
    dvc_plot(PREDICTED_VS_ACTUAL)["template"],
    [
        {"actual": 1000.0, "predicted": 1100.0, "rev": "workspace"},
        {"actual": 2000.0, "predicted": 1900.0, "rev": "workspace"},
        {"actual": 1000.0, "predicted": 1200.0, "rev": "main"},
        {"actual": 2000.0, "predicted": 1800.0, "rev": "main"},
    ],
    "actual",
    "predicted",
)
BARS = filled(
    "bar_horizontal_sorted",
    [
        {"feature": "rooms", "importance": 0.2, "rev": "workspace"},
        {"feature": "area", "importance": 0.7, "rev": "workspace"},
        {"feature": "garden_m2", "importance": 0.1, "rev": "workspace"},
        {"feature": "area", "importance": 0.5, "rev": "main"},
        {"feature": "rooms", "importance": 0.5, "rev": "main"},
    ],
    "importance",
    "feature",
)


def identity_layers(spec: dict) -> list[dict]:
    """Layers that draw y = x: a line whose y encodes the plot's x field, with no colour per revision."""
    x = spec["encoding"]["x"]["field"]
    return [
        layer
        for layer in spec.get("layer", [])
        if layer["mark"]["type"] == "line"
        and layer["encoding"]["y"]["field"] == x
        and "color" not in layer["encoding"]
    ]


def marks(scenegraph: dict, marktype: str) -> list[dict]:
    """The drawn items of every mark of a type (role "mark": data, not axes or legends) in a scenegraph."""
    found = []

    def visit(node: dict) -> None:
        if node.get("marktype") == marktype and node.get("role") == "mark":
            found.extend(node.get("items", []))
        for item in node.get("items", []):
            visit(item)

    visit(scenegraph["scenegraph"])
    return found


def check_image(path, spec: dict) -> None:
    """The PNG is the whole chart at SCALE and not blank: the data marks and legend are coloured."""
    svg_size = re.search(r'width="(\d+)" height="(\d+)"', vl_convert.vegalite_to_svg(spec))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == tuple(report.SCALE * int(side) for side in svg_size.groups())
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    # Axes, grid and text are grey; only marks and the legend have colour (channel spread > 60).
    coloured = int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())
    assert coloured > 200, f"{path.name}: {coloured} coloured pixels, the plot is blank"


def test_changed_metrics_ignores_unchanged_values():
    diff = {
        "metrics/eval/metrics.json": {
            "mae": {"old": 252.9, "new": 260.1, "diff": 7.2},
            "r2": {"old": 0.64, "new": 0.64, "diff": 0.0},
        },
        "metrics/data.json": {"rows_in": {"old": 1543, "new": 1543, "diff": 0}, "added": {"new": 3}},
    }
    assert report.changed_metrics(diff) == ["metrics/data.json:added", "metrics/eval/metrics.json:mae"]


def test_empty_params_diff_is_a_sentence_not_a_table():
    assert report.params_section("main", {}, "") == "No parameter differs from `main`."
    table = "| Path | Param | main | workspace |\n|---|---|---|---|\n| params.yaml | train.seed | 1 | 2 |\n"
    diff = {"params.yaml": {"train.seed": {"old": 1, "new": 2}}}
    assert report.params_section("main", diff, table) == table.strip()


def test_metrics_section_says_whether_anything_changed():
    same = {"m.json": {"mae": {"old": 1.0, "new": 1.0, "diff": 0.0}}}
    changed = {"m.json": {"mae": {"old": 1.0, "new": 2.0, "diff": 1.0}}}
    assert report.metrics_section("main", {}, "") == "No metrics found in `main` or the workspace."
    assert report.metrics_section("main", same, "| table |").startswith("No metric differs from `main`")
    assert report.metrics_section("main", changed, "| table |") == (
        "1 metric(s) differ from `main`.\n\n| table |"
    )


def test_slug_makes_file_names_from_titles():
    assert report.slug("Predicted vs actual rent") == "predicted-vs-actual-rent"
    assert report.slug("R² (test) / %") == "r-test"
    assert report.slug("€€") == "plot"


def test_predicted_vs_actual_draws_the_identity_line():
    plot = dvc_plot(PREDICTED_VS_ACTUAL)
    assert (plot["x"], list(plot["y"].values())) == ("actual", ["predicted"])
    assert len(identity_layers(SCATTER)) == 1
    drawn = vl_convert.vegalite_to_scenegraph(SCATTER, vl_version=report.vegalite_version(SCATTER))
    assert len(marks(drawn, "symbol")) == len(SCATTER["data"]["values"])
    # Both axes span 0-2000 on a 300-pixel square here, so y = x is the diagonal: x + y = 300 pixels.
    line = marks(drawn, "line")
    assert line and all(point["x"] + point["y"] == pytest.approx(300) for point in line), line


def test_render_plot_writes_the_whole_chart_offline(tmp_path):
    for name, spec in {"scatter": SCATTER, "bars": BARS}.items():
        path = tmp_path / f"{name}.png"
        report.render_plot(spec, path)
        check_image(path, spec)


def test_render_plot_refuses_remote_data_in_one_line(tmp_path):
    spec = {**BARS, "data": {"url": "https://example.com/importance.csv"}}
    with pytest.raises(
        RentpriceError,
        match=r"^remote\.png: vl-convert cannot render the plot: .*External data url not allowed: https://example\.com/importance\.csv$",
    ):
        report.render_plot(spec, tmp_path / "remote.png")
    assert not (tmp_path / "remote.png").exists()


def test_vegalite_version_follows_the_specs_schema():
    bundled = vl_convert.get_vegalite_versions()
    assert report.vegalite_version(SCATTER).split(".")[0] == "5"
    assert report.vegalite_version(SCATTER) in bundled
    assert report.vegalite_version({"mark": "point"}) is None
    with pytest.raises(RentpriceError, match="bundles no Vega-Lite v1,"):
        report.vegalite_version({"$schema": "https://vega.github.io/schema/vega-lite/v1.json"})


def test_plots_section_embeds_every_vega_plot_with_relative_links(tmp_path):
    plots = {
        "data": {
            "Predicted vs actual rent": [
                {"type": "vega", "revisions": ["workspace", "main"], "content": SCATTER}
            ],
            "Feature importance": [{"type": "vega", "revisions": ["workspace", "main"], "content": BARS}],
            "Some image": [{"type": "image", "revisions": ["main"], "url": "x.png"}],
        }
    }
    markdown = report.plots_section(plots, tmp_path / "report_plots", tmp_path)
    assert markdown.splitlines() == [
        "![Feature importance](report_plots/feature-importance.png)",
        "",
        "![Predicted vs actual rent](report_plots/predicted-vs-actual-rent.png)",
    ]
    assert sorted(path.name for path in (tmp_path / "report_plots").iterdir()) == [
        "feature-importance.png",
        "predicted-vs-actual-rent.png",
    ]
    assert report.plots_section({"data": {}}, tmp_path / "none", tmp_path) == "No plots found."


def test_unknown_base_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    env = tool_env()
    for args in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(args, cwd=tmp_path, env=env, check=True)
    monkeypatch.chdir(tmp_path)
    assert report.main(["--base", "no-such-branch"]) == 2
    error = capsys.readouterr().err
    assert "--base no-such-branch: not a commit in this repository" in error
    assert "Traceback" not in error
    assert not (tmp_path / "report.md").exists()


@pytest.mark.slow
def test_the_specs_dvc_returns_render_with_the_identity_line(tmp_path):
    shown = json.loads(run(["dvc", "plots", "show", "--json"], REPO_ROOT).stdout)["data"]
    assert len(identity_layers(shown[PREDICTED_VS_ACTUAL][0]["content"])) == 1
    markdown = report.plots_section({"data": shown}, tmp_path / "plots", tmp_path)
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", markdown)
    assert len(links) == len(shown) == 3
    for title, (render,) in shown.items():
        check_image(tmp_path / "plots" / f"{report.slug(title)}.png", render["content"])
