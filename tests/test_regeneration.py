"""Regeneration you can trust (issue 16): parameters checked before any kernel starts, a notebook's reports replaced
whole or not at all, safe concurrent runs, damaged state reported and rebuilt, safe names, readable YAML errors,
unreachable targets refused, clean progress and a command line that starts without torch."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import nbformat
import papermill
import pytest

from workbench import batch, bench, cli, notebook_checks, paths, records
from workbench.notebook_checks import ParameterError

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TINY = {"dataset": "digits", "model": "mlp", "epochs": 1, "finetune_epochs": 1}


@pytest.fixture
def no_kernel(monkeypatch):
    """Any kernel start fails the test: what is checked must be checked before."""
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """An empty reports folder for the repository's own notebooks."""
    monkeypatch.setenv("WORKBENCH_REPORTS", str(tmp_path / "reports"))
    monkeypatch.delenv("WORKBENCH_RECORDS", raising=False)
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "no-data"))
    return tmp_path / "reports"


# 1. bad values are refused before any kernel starts, in one line, and nothing is written


@pytest.mark.parametrize(
    ("notebook", "name", "value", "message"),
    [
        ("01", "methods", ["l3"], "unknown magnitude method 'l3'; known: global_magnitude, gradual_magnitude, lamp"),
        ("01", "sparsities", [1.5], "sparsity must be a number in [0, 1), got 1.5"),
        ("01", "epochs", -1, "epochs must be an integer >= 0, got -1"),
        ("01", "seeds", [], "seeds must be a non-empty list, got []"),
        ("01", "dataset", "cifar10", "cifar10 not found: put torchvision's cifar10 files in"),
        ("01", "tolerance", 2, "tolerance must be a number in [0, 1], got 2"),
        ("02", "flops_reductions", [1000.0], "flops reduction 1000 cannot be reached on resnet20: at most"),
        ("02", "allocation", "global", "use allocation='uniform'"),
        ("02", "speed_batch_sizes", [0], "speed_batch_sizes must be an integer >= 1, got 0"),
        ("10", "families", ["magnitud"], "unknown family 'magnitud'; accepted: magnitude"),
    ],
)
def test_bad_values_are_refused_before_any_kernel_starts(reports, no_kernel, notebook, name, value, message):
    with pytest.raises(ParameterError) as caught:
        batch.run([notebook], {name: value})
    text = str(caught.value)
    assert text.startswith(f"{batch.notebooks([notebook])[0].stem}: {name}={value!r}: ") and message in text
    assert "\n" not in text and " l1" not in text  # one line; a magnitude notebook lists magnitude methods only
    assert not reports.exists()


def test_every_notebook_with_parameters_has_a_check_and_its_defaults_pass_it(quick_timer):
    with_parameters = [nb for nb in NOTEBOOKS if notebook_checks.parameters(nb)]
    assert {nb.stem for nb in with_parameters} <= set(notebook_checks.CHECKS), "register a check: @checks_for(stem)"
    for nb in with_parameters:
        notebook_checks.validate(nb, {})


def test_parameters_are_read_as_papermill_reads_them():
    for nb in NOTEBOOKS:
        assert list(notebook_checks.parameters(nb)) == list(papermill.inspect_notebook(str(nb)))


# 6. flat YAML names apply to the notebooks that have them; YAML errors are one line


def test_flat_yaml_applies_to_the_notebooks_that_have_the_name(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text("seeds: [0]\n10-literature:\n  top_venues: 5\n")
    plans = {nb.stem: params for nb, params in batch.resolve(batch.notebooks(), batch.read_parameter_file(file), {})}
    assert plans["01-magnitude"] == {"seeds": [0]} and plans["02-filter-ranking"] == {"seeds": [0]}
    assert plans["10-literature"] == {"top_venues": 5}
    with pytest.raises(ValueError, match=r"unknown parameter 'sedes' \(did you mean seeds\?\): none of 01-magnitude"):
        batch.resolve(batch.notebooks(), {"sedes": [0]}, {})


def test_yaml_errors_are_one_line_with_the_file_or_name_and_position(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("seeds: [0, 1\nepochs: 3\n")
    with pytest.raises(ValueError) as caught:
        batch.read_parameter_file(str(broken))
    assert str(caught.value).startswith(f"parameter file {broken}: line ") and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"^-p seeds '\[0' is not a valid YAML value: column 3: "):
        batch.parse_value("[0", "seeds")


# 2. a failure or a kill keeps the last good report; records are kept either way


WRITER = """
import time
from workbench import paths
from workbench.records import write_atomic
write_atomic(paths.records_dir("01-rep") / f"run-{value}.json", "{}")
table = paths.reports_dir() / "tables" / "01-rep" / "t.csv"
write_atomic(table, f"value\\n{value}\\n")
if sleep:
    time.sleep(sleep)
if fail:
    raise RuntimeError(f"failed at {value}")
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository with one tiny notebook that writes a record and a table, then may sleep or fail."""
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("WORKBENCH_ROOT", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_REPORTS", str(tmp_path / "reports"))
    monkeypatch.delenv("WORKBENCH_RECORDS", raising=False)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("value = 1\nsleep = 0\nfail = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(WRITER)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "01-rep.ipynb")
    return tmp_path / "reports"


def _table(reports: Path) -> str:
    return (reports / "tables" / "01-rep" / "t.csv").read_text().split()[-1]


def test_a_failed_or_killed_run_leaves_the_last_good_report_and_keeps_records(project):
    assert batch.run(["01"], {"value": 1}) == 0 and _table(project) == "1"
    good = (project / "notebooks" / "01-rep.ipynb").read_text()
    assert batch.run(["01"], {"value": 2, "fail": True}) == 1
    assert _table(project) == "1" and (project / "notebooks" / "01-rep.ipynb").read_text() == good
    assert "failed at 2" in (project / "notebooks" / "01-rep.failed.ipynb").read_text()
    assert "The latest run failed" in (project / "README.md").read_text()
    assert (project / "records" / "01-rep" / "run-2.json").exists()  # records are kept on failure

    cmd = [sys.executable, "-m", "workbench.cli", "run", "01", "-p", "value", "3", "-p", "sleep", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    staged = paths.staging_dir("01-rep") / "tables" / "01-rep" / "t.csv"
    deadline = time.monotonic() + 120
    while not staged.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert staged.exists(), "the kernel never wrote its table"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _table(project) == "1" and (project / "notebooks" / "01-rep.ipynb").read_text() == good
    assert (project / "records" / "01-rep" / "run-3.json").exists()
    assert "01-rep" in batch.leftovers()  # the doctor sees the killed run's staging folder
    assert batch.run(["01"], {"value": 4}) == 0 and _table(project) == "4"  # the next run clears it
    assert batch.leftovers() == {} and not (project / "notebooks" / "01-rep.failed.ipynb").exists()
    index = (project / "README.md").read_text()
    assert "Records: [records/01-rep/](records/01-rep/) (4 runs" in index and "at commit" in index


def test_an_interrupted_commit_is_completed(project):
    assert batch.run(["01"], {"value": 1}) == 0
    stage = paths.staging_dir("01-rep")
    (stage / "tables" / "01-rep").mkdir(parents=True)
    (stage / "tables" / "01-rep" / "t.csv").write_text("value\n9\n")
    (stage / "notebooks").mkdir()
    (stage / "notebooks" / "01-rep.ipynb").write_text("{}")
    journal = {"install": ["tables/01-rep", "notebooks/01-rep.ipynb"], "remove": []}
    records.write_atomic(paths.run_state_file("01-rep", ".commit.json"), json.dumps(journal))
    with batch.claim(["01-rep"]):
        assert batch.recover("01-rep")
    assert _table(project) == "9" and not stage.exists()


# 3. concurrent runs: unique temp files and atomic renames; one lock per notebook and per dense-cache entry


def test_two_writers_of_one_file_never_leave_a_partial_file(tmp_path):
    target = tmp_path / "r.json"
    errors = []

    def write(who: int) -> None:
        for i in range(150):
            records.write_atomic(target, json.dumps({"who": who, "i": i, "pad": "x" * 5000}))

    def read() -> None:
        for _ in range(300):
            if target.exists():
                try:
                    json.loads(target.read_text())
                except ValueError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in (1, 2)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and json.loads(target.read_text())["i"] == 149
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_a_second_run_of_one_notebook_refuses_in_one_line_and_others_proceed(project, no_kernel):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom workbench import batch\nwith batch.claim(['01-rep']):\n"
         "    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(batch.NotebookBusy, match=r"^01-rep is being regenerated by another `workbench run` \(pid "):
            batch.run(["01"], {"value": 2})
        with batch.claim(["02-other"]):  # a different notebook proceeds
            pass
        assert not (project / "notebooks" / "01-rep.ipynb").exists()
    finally:
        holder.kill()
        holder.wait()


def test_dense_entries_are_trained_once_under_their_lock_and_rebuilt_when_damaged(monkeypatch):
    from workbench import training
    from workbench.runner import recipe, store

    r = recipe("lamp", ("sparsity", 0.5), seed=7, **TINY)
    bundle = store.bundle_of(r)
    folder = store.dense_folder(r)
    shutil.rmtree(folder, ignore_errors=True)
    calls = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    runs = []
    threads = [threading.Thread(target=lambda: runs.append(store.train_dense(r, bundle))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(runs) == 2
    weights = {k: v.clone() for k, v in runs[0].model.state_dict().items()}

    last = max(folder.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    last.write_bytes(last.read_bytes()[:100])  # truncated: every later run used to fail on it
    assert [p for p, _ in store.damaged_entries()] == [folder]
    with pytest.warns(store.DamagedCacheWarning, match=f"dense cache entry {folder} is damaged"):
        again = store.train_dense(r, bundle)
    assert all((again.model.state_dict()[k] == v).all() for k, v in weights.items())  # rebuilt bit for bit
    (folder / "info.json").write_text('{"key": ')
    with pytest.warns(store.DamagedCacheWarning):
        store.train_dense(r, bundle)
    assert store.damaged_entries() == []


# 4. a damaged record is reported with its path and skipped; the doctor lists and removes it


def _record(run_id: str, notebook: str = "test-damage") -> records.RunRecord:
    return records.RunRecord(
        run_id=run_id, notebook=notebook, family="magnitude", method="lamp", hparams={},
        target={"kind": "sparsity", "value": 0.5}, role="main", seed=0, model="mlp", dataset="digits", recipe={},
        metrics={"top1": 0.9},
    )  # fmt: skip


def test_a_damaged_record_is_skipped_with_its_path_named_and_the_doctor_removes_it(reports, capsys):
    records.write_record(_record("good"))
    extra = json.loads(_record("extra").to_json()) | {"added_later": 1}
    records.write_atomic(records.record_path("test-damage", "extra"), json.dumps(extra))
    truncated = records.record_path("test-damage", "cut")
    truncated.write_text(_record("cut").to_json()[:80])
    missing = records.record_path("test-damage", "missing")
    missing.write_text(json.dumps({k: v for k, v in json.loads(_record("missing").to_json()).items() if k != "seed"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = records.load_records("test-damage")
    assert sorted(frame["run_id"]) == ["extra", "good"]
    said = [str(w.message) for w in caught if issubclass(w.category, records.DamagedRecordWarning)]
    assert any(str(truncated) in s and "not valid JSON" in s for s in said)
    assert any(str(missing) in s and "missing field(s) seed" in s for s in said)
    with pytest.warns(records.DamagedRecordWarning, match="cut.json"):
        assert records.read_record("test-damage", "cut") is None  # a sweep computes that run again
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"damaged record: {truncated}: not valid JSON" in out and str(missing) in out
    assert cli.main(["doctor", "--fix"]) == 0
    assert not truncated.exists() and not missing.exists() and records.damaged_records() == []


# 5. names become paths only when they are safe slugs


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", None])
def test_unsafe_names_are_refused_before_anything_is_written(reports, name):
    from workbench.runner import sweep

    with pytest.raises(ValueError, match="must be a non-empty name of letters, digits"):
        sweep(name, ["lamp"], [0.5], [0], target_kind="sparsity", **TINY)
    with pytest.raises(ValueError, match="must be a non-empty name"):
        records.record_path(name, "abc")
    with pytest.raises(ValueError, match="must be a non-empty name"):
        records.record_path("ok", name)
    assert not reports.exists()


# 7. an unreachable target is refused with the maximum, before the work


def test_an_unreachable_flops_reduction_is_refused_with_the_maximum(no_kernel):
    from workbench.pruning import structural

    assert bench.ALLOCATIONS == structural.ALLOCATIONS
    with pytest.raises(ValueError, match=r"flops reduction 1000 cannot be reached on resnet20: at most \d+\.\d\dx"):
        bench.speedup("resnet20", flops_reduction=1000)
    assert bench.check_reachable("resnet20", 2.0) == 2.0


# progress and the command line


def test_a_sweep_reports_progress_to_a_file_and_one_line(reports, monkeypatch, tmp_path, capsys):
    from workbench.runner import sweep

    progress = tmp_path / "progress.json"
    monkeypatch.setenv("WORKBENCH_PROGRESS_FILE", str(progress))
    seen = []
    real = records.write_atomic
    module = sys.modules["workbench.runner.sweep"]  # the package exports the function under the module's name
    monkeypatch.setattr(module, "write_atomic", lambda p, text: seen.append(json.loads(text)) or real(p, text))
    sweep("test-progress", ["lamp", "random"], [0.5], [0], target_kind="sparsity", **TINY)
    seen = [s for s in seen if "phase" in s]  # the progress states (the dense reference is written here too)
    assert {(s["phase"], s["done"], s["total"]) for s in seen} >= {("runs", 0, 2), ("runs", 1, 2), ("runs", 2, 2)}
    assert any(s["current"] == "lamp sparsity=0.5 seed 0" for s in seen) and seen[-1]["finished"]
    lines = capsys.readouterr()
    assert lines.out.strip().splitlines() == [lines.out.strip()] and "test-progress: 2 run(s)" in lines.out
    assert "IProgress" not in lines.err and "%|" not in lines.err


def test_the_command_line_starts_without_torch_and_its_help_lists_parameters():
    code = textwrap.dedent(
        """
        import sys
        from workbench import cli
        parser = cli.build_parser()
        heavy = [m for m in ("torch", "papermill", "nbformat", "workbench.runner") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    run_help = subprocess.run([sys.executable, "-m", "workbench.cli", "run", "--help"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    assert "01-magnitude" in run_help and "sparsities = [0.5, 0.7, 0.8, 0.9, 0.95]" in run_help
    assert "top_venues = 15" in run_help
