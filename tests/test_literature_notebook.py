"""notebooks/10-literature.ipynb: thin, parametrised, one stored output; and it runs on a clean literature."""

import ast
import os
from pathlib import Path

import nbformat
import pytest

from workbench import paths

NOTEBOOK = paths.notebooks_dir() / "10-literature.ipynb"


@pytest.fixture(scope="module")
def nb():
    return nbformat.read(NOTEBOOK, as_version=4)


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_parameters_cell_is_first_and_flat(nb):
    first = code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", [])
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        ast.literal_eval(node.value)  # a plain value, nothing computed
    assert all("#" in line for line in first.source.splitlines())  # every parameter is explained


def test_thin_no_definitions_loops_or_paths(nb):
    for cell in code_cells(nb):
        tree = ast.parse(cell.source)
        kinds = (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.With, ast.Lambda)
        assert not [n for n in ast.walk(tree) if isinstance(n, kinds)], cell.source
        for banned in ("Path(", "open(", ".bib", ".csv", "import os", "import pandas"):
            assert banned not in cell.source, (banned, cell.source)


def test_every_figure_and_table_is_saved_through_the_report(nb):
    source = "\n".join(cell.source for cell in code_cells(nb))
    assert "reporting.set_style()" in source and 'reporting.Report("10-literature")' in source
    assert source.count("fig = literature.plots.") == source.count("report.savefig(fig, ") >= 4
    assert source.count("report.save_table(") >= 3


def test_only_the_validation_cell_has_a_stored_output(nb):
    stored = [cell for cell in code_cells(nb) if cell.outputs or cell.execution_count is not None]
    assert len(stored) == 1
    (cell,) = stored
    assert {"nbval-check", "nbval-check-output"} <= set(cell.metadata["tags"])
    assert "literature.validate()" in cell.source
    assert [(o.output_type, o.name, o.text) for o in cell.outputs] == [("stream", "stdout", "0 problems\n")]
    for other in code_cells(nb):
        if other is not cell:
            assert "nbval-ignore-output" in other.metadata.get("tags", [])


def _clean_literature(folder: Path) -> None:
    """A fictional literature of a dozen papers over ten years that validates clean."""
    entries = []
    for i, key in enumerate(["doe2019alpha", *(f"fixture{2010 + i % 10}paper{i}" for i in range(1, 12))]):
        entries.append(
            f"@inproceedings{{{key},\n  author = {{Fixture, A{i}}},\n  title = {{Paper {i}}},\n"
            f"  booktitle = {{Fixture Conference}},\n  year = {{{2010 + i % 10}}},\n"
            f"  family = {{magnitude}},\n  granularity = {{weight}},\n  source = {{fixture}}\n}}\n"
        )
    folder.mkdir(parents=True)
    (folder / "references.bib").write_text("\n".join(entries))
    (folder / "results.csv").write_text(
        "key,method,model,dataset,baseline_top1,pruned_top1,delta_top1,params_base,params_pruned,flops_base,"
        "flops_pruned,flops_unit,flops_reduction_pct,params_reduction_pct,speedup,source,flops_unit_source\n"
        "doe2019alpha,Alpha,ResNet-56,CIFAR-10,93.0,92.8,,0.85e6,0.5e6,125e6,60e6,MACs,,,,t1,column 'MACs'\n"
    )


def test_notebook_runs_and_prints_zero_problems_on_a_clean_literature(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    root = tmp_path / "root"
    _clean_literature(root / "literature")
    for var in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(var, os.environ.get(var) or str(tmp_path / var.lower()))
    monkeypatch.setenv("WORKBENCH_ROOT", str(root))
    monkeypatch.setenv("WORKBENCH_REPORTS", str(tmp_path / "reports"))
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        kernel_name="python3",
        progress_bar=False,
        cwd=str(NOTEBOOK.parent),
        parameters={"settings": ["resnet56/cifar10"]},
        log_output=False,
    )
    ran = nbformat.read(out, as_version=4)
    (check,) = [c for c in code_cells(ran) if "nbval-check" in c.metadata.get("tags", [])]
    assert [o.get("text") for o in check.outputs if o.get("name") == "stdout"] == ["0 problems\n"]
    figures = tmp_path / "reports" / "figures" / "10-literature"
    assert {p.name for p in figures.glob("*.png")} == {
        "papers-per-year.png",
        "top-venues.png",
        "published-accuracy-vs-flops.png",
        "published-accuracy-vs-params.png",
    }
    assert (tmp_path / "reports" / "tables" / "10-literature" / "pareto-flops.csv").is_file()
    assert (tmp_path / "reports" / "tables" / "10-literature" / "published-results.csv").is_file()
    html = "".join(o.get("data", {}).get("text/html", "") for c in code_cells(ran) for o in c.outputs)
    assert "cdn.plot.ly/plotly" not in html and html.count("plotly.js v") == 1  # one inlined copy, no CDN
    assert "itables" in html  # the table bundle is inlined too (connected=False)
