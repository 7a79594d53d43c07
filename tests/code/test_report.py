"""The report helpers: empty-diff sentences, changed metrics and the offline plot rendering."""

import subprocess

from tests.code.scripts_support import load_script
from tests.conftest import tool_env

report = load_script("report")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def vega(mark, x, y, values, revisions=("workspace", "main")):
    return {
        "title": {"text": "A plot", "anchor": "middle"},
        "data": {"values": values},
        "mark": {"type": mark},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": f"{x} label"},
            "y": {"field": y, "type": "nominal" if mark == "bar" else "quantitative"},
            "color": {"field": "rev", "scale": {"domain": list(revisions), "range": ["#945dd6", "#13adc7"]}},
        },
    }


SCATTER = vega(
    "point",
    "actual",
    "predicted",
    [
        {"actual": 1000.0, "predicted": 1100.0, "rev": "workspace"},
        {"actual": 2000.0, "predicted": 1900.0, "rev": "workspace"},
        {"actual": 1000.0, "predicted": 1200.0, "rev": "main"},
        {"actual": 2000.0, "predicted": 1800.0, "rev": "main"},
    ],
)
BARS = vega(
    "bar",
    "importance",
    "feature",
    [
        {"feature": "rooms", "importance": 0.2, "rev": "workspace"},
        {"feature": "area", "importance": 0.7, "rev": "workspace"},
        {"feature": "garden_m2", "importance": 0.1, "rev": "workspace"},
        {"feature": "area", "importance": 0.5, "rev": "main"},
        {"feature": "rooms", "importance": 0.5, "rev": "main"},
    ],
)


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


def test_bar_order_puts_the_first_revisions_largest_value_on_top():
    order = report.bar_order(BARS["data"]["values"], "importance", "feature", "workspace")
    assert order == ["garden_m2", "rooms", "area"]


def test_render_plot_writes_png_images(tmp_path):
    for name, spec in {"scatter": SCATTER, "bars": BARS}.items():
        path = tmp_path / f"{name}.png"
        report.render_plot(spec, ["workspace", "main"], path)
        assert path.read_bytes().startswith(PNG_MAGIC), name


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
