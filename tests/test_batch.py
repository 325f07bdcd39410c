"""`workbench run` on tiny notebooks: selection, names, failures, parameter files, the exit code, the index."""

import json
import subprocess
import sys

import nbformat
import pytest

from workbench import batch, paths


def _notebook(folder, name, source, parameters="value = 1"):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("WORKBENCH_ROOT", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_REPORTS", str(tmp_path / "reports"))
    monkeypatch.delenv("WORKBENCH_RECORDS", raising=False)
    _notebook(tmp_path / "notebooks", "01-good", "print('value is', value)")
    _notebook(tmp_path / "notebooks", "02-bad", "raise ValueError(f'broken {value}')")
    return tmp_path


def test_selection_by_stem_or_prefix(project):
    assert [nb.stem for nb in batch.notebooks(["01"])] == ["01-good"]
    assert [nb.stem for nb in batch.notebooks()] == ["01-good", "02-bad"]
    with pytest.raises(ValueError, match="unknown notebook '03'; known: 01-good, 02-bad"):
        batch.notebooks(["03"])


def test_unknown_parameter_is_rejected_before_running(project):
    with pytest.raises(ValueError, match=r"01-good: unknown parameter 'valeu' \(did you mean value\?\); known: value"):
        batch.run(["01"], {"valeu": 2})
    assert not (project / "reports").exists()  # nothing written, not even the index


def test_failure_names_notebook_and_cell_and_keeps_the_others(project, capsys):
    code = batch.run(None, {"value": 7})
    err = capsys.readouterr().err
    assert code == 1
    assert "02-bad: cell" in err and "ValueError: broken 7" in err
    good = project / "reports" / "notebooks" / "01-good.ipynb"
    assert good.exists() and (project / "reports" / "notebooks" / "01-good.html").exists()
    assert "value is 7" in good.read_text()
    assert not (project / "reports" / "notebooks" / "02-bad.ipynb").exists()
    assert (project / "reports" / "notebooks" / "02-bad.failed.ipynb").exists()
    index = (project / "reports" / "README.md").read_text()
    assert "## 01-good" in index and "`value=7`" in index and "## 02-bad" not in index
    assert "Run: " in index and "at commit" in index and "Records: none" in index
    left = [p.name for p in (project / "reports" / "notebooks").glob(".running-*") if p.suffix != ".lock"]
    assert left == []  # no staging folder, journal or progress file stays; lock files may


def test_parameter_file_shared_and_per_notebook(project, tmp_path):
    _notebook(project / "notebooks", "03-other", "print(other)", parameters="other = 1")
    file = tmp_path / "p.yaml"
    file.write_text("value: 3\n01-good:\n  value: 5\n")
    params = batch.read_parameter_file(str(file))
    assert batch.parameters_for(project / "notebooks" / "01-good.ipynb", params, {}) == {"value": 5}
    assert batch.parameters_for(project / "notebooks" / "02-bad.ipynb", params, {"value": 9}) == {"value": 9}
    # a flat name goes to the notebooks that have it, and only there
    plans = dict(batch.resolve(batch.notebooks(), params, {"other": 2}))
    assert [plans[project / "notebooks" / f"{s}.ipynb"] for s in ("01-good", "02-bad", "03-other")] == [
        {"value": 5}, {"value": 3}, {"other": 2},
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown parameter 'vallue' \(did you mean value\?\): none of 01-good, "):
        batch.resolve(batch.notebooks(), {"vallue": 1}, {})
    assert batch.parse_value("[0.5, 0.9]") == [0.5, 0.9] and batch.parse_value("lamp") == "lamp"


def test_cli_run_reports_failure_exit_code(project):
    env_cmd = [sys.executable, "-m", "workbench.cli", "run", "02", "-p", "value", "4"]
    out = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "02-bad: cell" in out.stderr
    assert "without encryption" not in out.stderr and "Traceback" not in out.stderr
    meta = json.loads((paths.reports_dir() / "notebooks" / "02-bad.failed.ipynb").read_text())
    assert meta["metadata"]["papermill"]["parameters"] == {"value": 4}


def test_a_report_with_the_same_inputs_is_kept_and_a_changed_input_runs_again(project, capsys):
    report = project / "reports" / "notebooks" / "01-good.ipynb"
    assert batch.run(["01"], {"value": 2}) == 0
    made = report.stat().st_mtime_ns
    assert batch.run(["01"], {"value": 2}) == 0
    assert "up to date" in capsys.readouterr().out and report.stat().st_mtime_ns == made  # not executed again
    assert batch.run(["01"], {"value": 3}) == 0
    assert "(parameters changed)" in capsys.readouterr().out and "value is 3" in report.read_text()
    records = paths.records_dir("01-good")
    records.mkdir(parents=True)
    (records / "new-run.json").write_text("{}")
    assert batch.run(["01"], {"value": 3}) == 0
    assert "(records changed)" in capsys.readouterr().out
    made = report.stat().st_mtime_ns
    assert batch.run(["01"], {"value": 3}, force=True) == 0
    assert "(forced)" in capsys.readouterr().out and report.stat().st_mtime_ns != made
    assert (project / "reports" / "index.html").exists()
