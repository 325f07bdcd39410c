"""`workbench run`: execute notebooks with papermill into reports/, render HTML, index every file made.

Regeneration you can trust:

- every selected notebook's parameters are checked by the package (`notebook_checks`) before any kernel starts;
- a notebook runs with its reports going to a staging folder (`paths.staging_dir`); only when it succeeds do they
  replace the previous ones, in one commit (a journal written atomically, then renames; an interrupted commit is
  completed by the next run or `workbench doctor --fix`). A failure keeps the last good report untouched and the
  executed copy beside it as `reports/notebooks/<name>.failed.ipynb`. Run records go straight to
  reports/records/ (WORKBENCH_RECORDS) either way, so finished runs are never lost and a rerun resumes from them;
- one lock per notebook: a second run of the same notebook refuses in one line (or waits, `--wait`); runs of
  different notebooks proceed side by side;
- the kernel's training bars are off (WORKBENCH_PROGRESS=0); the sweep writes its progress to a file that this
  process shows as one status line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from workbench import allocator, fingerprint, paths, profiles
from workbench.site import write_site

REPORT_FOLDERS = ("notebooks", "figures", "tables", "results")
"""The folders of reports/ whose entries named after a notebook belong to its report (records/ is not one)."""

KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
"""Silence the kernel's own log ('Kernel is running over TCP without encryption', the interrupt of its shutdown);
a cell's errors are in the executed notebook and a dead kernel is reported by papermill."""


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell's error."""


class NotebookBusy(RuntimeError):
    """Another `workbench run` is regenerating this notebook; the message says which and what to do."""


def write_atomic(path: Path, text: str) -> None:
    """records.write_atomic, imported when first needed (records imports pandas; building the parser must not)."""
    from workbench.records import write_atomic as write

    write(path, text)


def notebooks(selection: list[str] | None = None) -> list[Path]:
    """The notebooks to run: all of notebooks/*.ipynb, or those whose stem starts with a selection item."""
    every = sorted(paths.notebooks_dir().glob("*.ipynb"))
    if not selection:
        return every
    chosen = []
    for item in selection:
        stem = Path(item).stem
        match = [nb for nb in every if nb.stem == stem or nb.stem.startswith(stem)]
        if not match:
            raise ValueError(f"unknown notebook {item!r}; known: {', '.join(nb.stem for nb in every)}")
        chosen += [nb for nb in match if nb not in chosen]
    return chosen


def parse_value(text: str, name: str | None = None):
    """A -p value as YAML, like papermill: 3 -> int, 0.5 -> float, [a, b] -> list, else the string; a value that
    is not valid YAML is a one-line ValueError naming the parameter and the position."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = f"-p {name} {text!r}" if name else repr(text)
        raise ValueError(f"{where} is not a valid YAML value: {_yaml_problem(exc, column_only=True)}") from None


def _yaml_problem(exc, column_only: bool = False) -> str:
    """A YAML error in a few words with its position: 'line 3, column 5: expected ...'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    at = f"column {mark.column + 1}" if column_only else f"line {mark.line + 1}, column {mark.column + 1}"
    return f"{at}: {problem}"


def read_parameter_file(path: str | None) -> dict:
    """Parameters from a YAML file: flat names (for the notebooks that have them) and {notebook stem: {...}}."""
    import yaml

    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ValueError(f"parameter file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"parameter file {path}: {_yaml_problem(exc)}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"parameter file {path} must hold a mapping, got {type(loaded).__name__}")
    return loaded


def parameters_for(notebook: Path, file_params: dict, overrides: dict) -> dict:
    """The parameters of one notebook: the file's flat names and the -p overrides it has, over its own section."""
    from workbench.notebook_checks import parameters

    known = parameters(notebook)
    sections = {nb.stem for nb in notebooks()}
    shared = {k: v for k, v in file_params.items() if k not in sections and k in known}
    own = file_params.get(notebook.stem, {}) or {}
    return {**shared, **own, **{k: v for k, v in overrides.items() if k in known}}


def resolve(chosen: list[Path], file_params: dict, overrides: dict, profile: dict | None = None
            ) -> list[tuple[Path, dict]]:  # fmt: skip
    """(notebook, parameters) of every chosen notebook: the profile's, then the file's, then the overrides; a flat
    name none of them has is a one-line error."""
    from workbench.notebook_checks import did_you_mean, parameters

    profile = profile or {}
    sections = {nb.stem for nb in notebooks()}
    for source in (profile, file_params):
        for stem in sections & set(source):
            if not isinstance(source[stem], dict | None):
                raise ValueError(f"parameter file: section {stem!r} must be a mapping of names to values")
    known = {nb.stem: list(parameters(nb)) for nb in chosen}
    every = sorted({name for names in known.values() for name in names})
    flat = [k for source in (profile, file_params) for k in source if k not in sections] + list(overrides)
    for name in flat:
        if not any(name in names for names in known.values()):
            stems = ", ".join(known)
            hint = did_you_mean(name, every)
            if len(known) == 1:
                raise ValueError(f"{stems}: unknown parameter {name!r}{hint}; known: {', '.join(every)}")
            raise ValueError(f"unknown parameter {name!r}{hint}: none of {stems} has it")
    return [(nb, {**parameters_for(nb, profile, {}), **parameters_for(nb, file_params, overrides)}) for nb in chosen]


def check_parameters(notebook: Path, params: dict) -> None:
    """Refuse unknown names and bad values (the package's own checks) before any kernel starts, in one line."""
    from workbench.notebook_checks import validate

    validate(notebook, params)


@contextlib.contextmanager
def claim(stems: list[str], wait: bool = False) -> Iterator[None]:
    """Hold the lock of every notebook in `stems` (sorted, so waiting runs cannot deadlock); without `wait`, a lock
    held by another run is a one-line NotebookBusy."""
    import filelock

    paths.executed_notebooks_dir().mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        for stem in sorted(set(stems)):
            lock = filelock.FileLock(paths.run_state_file(stem, ".lock"), is_singleton=True)
            try:
                held.enter_context(lock.acquire(timeout=-1 if wait else 0))
            except filelock.Timeout:
                raise NotebookBusy(
                    f"{stem} is being regenerated by another `workbench run` ({_owner(stem)}); wait for it to end, "
                    "or pass --wait"
                ) from None
            owner = paths.run_state_file(stem, ".owner")
            write_atomic(owner, f"pid {os.getpid()} since {dt.datetime.now().strftime('%H:%M:%S')}")
            held.callback(owner.unlink, missing_ok=True)
        yield


def _owner(stem: str) -> str:
    try:
        return paths.run_state_file(stem, ".owner").read_text().strip()
    except OSError:
        return "owner unknown"


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (which a kernel started inside inherits), then restore them."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(notebook: Path, params: dict, label: str = "", profile: str | None = None) -> Path:
    """Run one notebook with papermill into its staging folder; on success its reports replace the previous ones
    in one commit and the executed copy's path in reports/notebooks/ is returned. The caller holds its lock."""
    import papermill as pm

    stem = notebook.stem
    stage, final = paths.staging_dir(stem), paths.executed_notebooks_dir() / notebook.name
    recover(stem)
    staged = stage / "notebooks" / notebook.name
    staged.parent.mkdir(parents=True)
    progress = paths.run_state_file(stem, ".progress.json")
    progress.unlink(missing_ok=True)
    kernel_env = {
        **allocator.child_environment(),
        "WORKBENCH_REPORTS": str(stage.resolve()),
        "WORKBENCH_RECORDS": str(paths.records_root().resolve()),
        "WORKBENCH_PROGRESS": "0",
        "WORKBENCH_PROGRESS_FILE": str(progress.resolve()),
    }
    started = dt.datetime.now(dt.UTC)
    try:
        try:
            options = {"kernel_name": "python3", "progress_bar": False, "extra_arguments": KERNEL_ARGUMENTS}
            with environ(kernel_env), StatusLine(label or stem, progress):
                pm.execute_notebook(str(notebook), str(staged), parameters=params, cwd=str(notebook.parent), **options)
        except pm.PapermillExecutionError as exc:
            if exc.ename == "KeyboardInterrupt":
                raise KeyboardInterrupt from None
            failed = _keep_failed(staged, final)
            raise NotebookFailed(f"{stem}: cell {exc.exec_count}: {exc.ename}: {exc.evalue} (see {failed})") from None
        except Exception as exc:  # the kernel died, or papermill could not start it
            failed = _keep_failed(staged, final)
            see = f" (see {failed})" if failed.exists() else ""
            raise NotebookFailed(f"{stem}: {type(exc).__name__}: {' '.join(str(exc).split())}{see}") from None
        finally:
            progress.unlink(missing_ok=True)
        _stamp(staged, started, profile, fingerprint.inputs(notebook, params, profile))
        render_html(staged)
        commit(stem)
    finally:
        if not paths.run_state_file(stem, ".commit.json").exists():  # a commit cut short keeps what it installs
            _remove(stage)
    return final


def _keep_failed(staged: Path, final: Path) -> Path:
    """Move the executed copy of a failed run beside the report, as `<name>.failed.ipynb`; returns that path."""
    failed = final.with_name(f"{final.stem}.failed.ipynb")
    if staged.exists():
        os.replace(staged, failed)
    return failed


def _stamp(executed: Path, started: dt.datetime, profile: str | None = None, inputs: dict | None = None) -> None:
    """Note in the executed notebook when it ran, at which commit, with which profile, where its records are, and
    the fingerprint of its inputs (`workbench.fingerprint`) after the run."""
    from workbench.provenance import git_commit

    nb = json.loads(executed.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {})["workbench"] = {
        **git_commit(),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "records": str(paths.records_dir(executed.stem)),
        "profile": profile,
        "inputs": inputs,
    }
    write_atomic(executed, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def owned(stem: str) -> list[str]:
    """The report's entries of notebook `stem` now in reports/ (relative paths): `<folder>/<stem>` and
    `<folder>/<stem>.*` in notebooks/, figures/, tables/ and results/ (the failed copy included)."""
    reports = paths.reports_dir()
    found = []
    for folder in REPORT_FOLDERS:
        for entry in sorted((reports / folder).glob(f"{stem}*")):
            if entry.name == stem or entry.name.startswith(f"{stem}."):
                found.append(f"{folder}/{entry.name}")
    return found


def commit(stem: str) -> None:
    """Replace the report of `stem` by its staging folder: write the journal (the commit point), then apply it."""
    stage = paths.staging_dir(stem)
    install = [f"{sub.name}/{entry.name}" for sub in sorted(stage.iterdir()) if sub.is_dir()
               for entry in sorted(sub.iterdir())]  # fmt: skip
    remove = [rel for rel in owned(stem) if rel not in install]
    write_atomic(paths.run_state_file(stem, ".commit.json"), json.dumps({"install": install, "remove": remove}))
    _apply(stem)


def _apply(stem: str) -> None:
    """Carry out the journal of `stem`: move each old entry aside and the staged one in; idempotent, so a commit cut
    short is completed by running it again."""
    reports, stage = paths.reports_dir(), paths.staging_dir(stem)
    aside = paths.run_state_file(stem, ".old")
    journal = paths.run_state_file(stem, ".commit.json")
    plan = json.loads(journal.read_text())
    for rel in plan["remove"] + plan["install"]:
        target, staged = reports / rel, stage / rel
        if rel in plan["install"] and not staged.exists():
            continue  # installed already
        if target.exists():
            (aside / rel).parent.mkdir(parents=True, exist_ok=True)
            _remove(aside / rel)
            os.replace(target, aside / rel)
        if rel in plan["install"]:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    journal.unlink()
    _remove(aside)


def recover(stem: str) -> bool:
    """Complete an interrupted commit of `stem` and clear a killed run's staging folder; True if anything was left.
    The caller holds the notebook's lock."""
    left = [p for p in (paths.run_state_file(stem, s) for s in (".commit.json", ".old")) if p.exists()]
    left += [p for p in (paths.staging_dir(stem),) if p.exists()]
    if paths.run_state_file(stem, ".commit.json").exists():
        _apply(stem)
    _remove(paths.run_state_file(stem, ".old"))
    _remove(paths.staging_dir(stem))
    return bool(left)


STATE_SUFFIXES = (".commit.json", ".progress.json", ".old", ".lock", ".owner")
"""What lies beside a notebook's staging folder `.running-<stem>` in reports/notebooks/."""


def leftovers(min_age_s: float = 600) -> dict[str, list[Path]]:
    """What runs killed midway left in reports/, by notebook stem ('' for temporary files older than `min_age_s`):
    staging folders, interrupted commits, progress files. Notebooks a live run holds are left out."""
    import filelock

    found: dict[str, list[Path]] = {}
    for entry in sorted(paths.executed_notebooks_dir().glob(".running-*")):
        name = entry.name.removeprefix(".running-")
        stem = next((name.removesuffix(s) for s in STATE_SUFFIXES if name.endswith(s)), name)
        if entry.name.endswith((".lock", ".owner")) or stem == "index":
            continue
        lock = filelock.FileLock(paths.run_state_file(stem, ".lock"), is_singleton=True)
        try:
            with lock.acquire(timeout=0):
                found.setdefault(stem, []).append(entry)
        except filelock.Timeout:
            continue  # a run holds it: not a leftover
    old = time.time() - min_age_s
    temporary = [p for p in sorted(paths.reports_dir().rglob(".*.tmp")) if p.stat().st_mtime < old]
    if temporary:
        found[""] = temporary
    return found


def tidy(stem: str) -> None:
    """Complete an interrupted commit of `stem` and remove its staging leftovers (refused while a run holds it)."""
    with claim([stem]):
        recover(stem)
        paths.run_state_file(stem, ".progress.json").unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class StatusLine:
    """While a notebook runs, show the sweep's progress (phase, runs done/total, current run) and the elapsed time
    on stderr: one line redrawn on a terminal, a line per change (at most every 30 s) otherwise."""

    def __init__(self, label: str, progress_file: Path, interval: float = 0.5):
        self.label, self.file, self.interval = label, progress_file, interval
        self.tty = sys.stderr.isatty()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.start, self.last, self.printed = time.monotonic(), "", 0.0

    def __enter__(self) -> StatusLine:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        if self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def text(self) -> str:
        """'[1/3] 01-magnitude: runs 12/75, lamp sparsity=0.9 seed 1 (2:13)'."""
        elapsed = int(time.monotonic() - self.start)
        clock = f"{elapsed // 60}:{elapsed % 60:02d}"
        try:
            state = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return f"{self.label}: running ({clock})"
        what = f"{state['phase']} {state['done']}/{state['total']}" if state.get("phase") else "sweep"
        if state.get("finished"):
            what = f"sweep done ({state.get('runs', 0)} runs)"
        current = f", {state['current']}" if state.get("current") else ""
        return f"{self.label}: {what}{current} ({clock})"

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            line = self.text()
            if self.tty:
                width = shutil.get_terminal_size((100, 20)).columns - 1
                sys.stderr.write("\r\x1b[K" + line[:width])
                sys.stderr.flush()
            elif line.rsplit(" (", 1)[0] != self.last.rsplit(" (", 1)[0] or time.monotonic() - self.printed > 30:
                print(line, file=sys.stderr, flush=True)
                self.last, self.printed = line, time.monotonic()


def render_html(executed: Path) -> Path:
    """The executed notebook as a standalone HTML page beside it, loading nothing from the network (the `offline`
    template under workbench/templates: JupyterLab's page without its CDN scripts)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(Path(__file__).parent / "templates")])
    body, _ = exporter.from_filename(str(executed))
    html = executed.with_suffix(".html")
    write_atomic(html, body)
    return html


def write_index() -> Path:
    """reports/README.md: for every executed notebook, when and at which commit it ran, its parameters, its
    records folder and every file it made (built and written atomically under its own lock, so that concurrent
    runs of different notebooks leave an index with both)."""
    import filelock

    reports = paths.reports_dir()
    index = reports / "README.md"
    paths.executed_notebooks_dir().mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(paths.run_state_file("index", ".lock"), is_singleton=True):
        lines = ["# Reports", "", "Regenerated by `make reports` (`workbench run`); do not edit by hand.", ""]
        lines += _profiles_section()
        for executed in sorted(paths.executed_notebooks_dir().glob("*.ipynb")):
            if not executed.name.startswith(".") and not executed.stem.endswith(".failed"):
                lines += _index_section(reports, executed)
        write_atomic(index, "\n".join(lines) + "\n")
    return index


def _profiles_section() -> list[str]:
    """The profiles `workbench run --profile NAME` (`make reports PROFILE=NAME`) knows, each described and shown."""
    about = (
        "`make reports PROFILE=NAME` (`workbench run --profile NAME`) runs every notebook with the parameters of "
        "`notebooks/profiles/NAME.yaml` (flat names: every notebook that has them; a section: one notebook); "
        "`-f FILE` and `-p NAME VALUE` apply on top. Each report below names the profile that made it."
    )
    lines = ["## Profiles", "", about, ""]
    for name in profiles.names():
        file = profiles.path(name)
        text = file.read_text(encoding="utf-8") if file.exists() else ""
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
        lines += [f"- `{name}` ([notebooks/profiles/{name}.yaml](../notebooks/profiles/{name}.yaml)): "
                  f"{profiles.describe(name)}", ""]  # fmt: skip
        if body and body != "{}":
            lines += ["  ```yaml", *[f"  {line}" for line in body.splitlines()], "  ```", ""]
    return lines


def _index_section(reports: Path, executed: Path) -> list[str]:
    """The lines of one notebook in reports/README.md."""
    metadata = json.loads(executed.read_text()).get("metadata", {})
    meta, made_by = metadata.get("papermill", {}), metadata.get("workbench", {})
    stem = executed.stem
    link = f"[notebooks/{executed.name}](notebooks/{executed.name}), [HTML](notebooks/{stem}.html)"
    lines = [f"## {stem}", "", f"Source: `notebooks/{executed.name}`; executed: {link}.", ""]
    if made_by:
        commit = (made_by.get("git_commit") or "unknown")[:12]
        dirty = " (with uncommitted changes)" if made_by.get("git_dirty") else ""
        when = f"{made_by.get('started_utc')} to {made_by.get('finished_utc')} (UTC)"
        profile = made_by.get("profile") or "none recorded (run before profiles existed)"
        lines += [f"Run: {when}, at commit {commit}{dirty}; profile: {profile}.", ""]
    failed = executed.with_name(f"{stem}.failed.ipynb")
    if failed.exists():
        lines += [f"The latest run failed: [notebooks/{failed.name}](notebooks/{failed.name}); this report is from "
                  "the last run that succeeded.", ""]  # fmt: skip
    lines.append(_records_line(reports, stem))
    lines += ["", "Parameters: " + ", ".join(_parameter_text(paths.notebooks_dir() / executed.name, meta)) + "."]
    made = [p for sub in ("figures", "tables", "results") for p in sorted((reports / sub).glob(f"{stem}*"))]
    made = [f for p in made for f in (sorted(p.rglob("*.*")) if p.is_dir() else [p])]
    return lines + ["", "Files:"] + [f"- [{f.relative_to(reports)}]({f.relative_to(reports)})" for f in made] + [""]


def _records_line(reports: Path, stem: str) -> str:
    """'Records: records/<stem>/ (N runs, every parameter set run so far)', or that the notebook keeps none."""
    folder = paths.records_dir(stem)
    count = len(list(folder.glob("*.json"))) if folder.exists() else 0
    if not count:
        return "Records: none (this notebook runs no pruning runs)."
    try:
        shown = folder.resolve().relative_to(reports.resolve()).as_posix() + "/"
        where = f"[{shown}]({shown})"
    except ValueError:
        where = f"`{folder}`"
    return f"Records: {where} ({count} runs of every parameter set run so far; results/ holds this run's)."


def _parameter_text(source: Path, meta: dict) -> list[str]:
    """Every parameter as `name=value`: the values passed, then the notebook's defaults (marked so)."""
    from workbench.notebook_checks import parameters

    passed = meta.get("parameters", {})
    shown = [f"`{k}={v!r}`" for k, v in passed.items()]
    if source.exists():
        shown += [f"`{k}={p.default}` (default)" for k, p in parameters(source).items() if k not in passed]
    return shown or ["none"]


def run(selection: list[str] | None = None, overrides: dict | None = None, parameter_file: str | None = None,
        wait: bool = False, profile: str = profiles.DEFAULT, check_only: bool = False,
        force: bool = False) -> int:  # fmt: skip
    """Execute the selected notebooks under `profile` (notebooks/profiles/NAME.yaml, then -f, then -p); keep going
    past a failure, then fail naming every failed notebook. A notebook whose report was made from the same inputs
    (`workbench.fingerprint`: source, parameters, profile, code, records, literature, versions, machine) is kept
    as it is unless `force`.

    Every parameter is checked before any kernel starts and nothing is written if one is refused; `check_only`
    stops there and prints the plan.
    """
    chosen = notebooks(selection)
    plans = resolve(chosen, read_parameter_file(parameter_file), overrides or {}, profiles.load(profile))
    for nb, params in plans:
        check_parameters(nb, params)
    about = profiles.describe(profile)
    print(f"profile {profile}: {about}" if about else f"profile {profile}", flush=True)
    if check_only:
        for nb, params in plans:
            print(f"  {nb.stem}: " + (" ".join(f"{k}={v!r}" for k, v in params.items()) or "defaults"))
        print("parameters checked; nothing run (--check)")
        return 0
    failures = []
    with claim([nb.stem for nb, _ in plans], wait):
        for i, (nb, params) in enumerate(plans, 1):
            label = f"[{i}/{len(plans)}] {nb.stem}"
            shown = " ".join(f"{k}={v!r}" for k, v in params.items())
            final = paths.executed_notebooks_dir() / nb.name
            why = fingerprint.changed(fingerprint.stored(final), fingerprint.inputs(nb, params, profile))
            if not why and not force:
                print(f"{label}: up to date (same inputs as its report; --force runs it again)", flush=True)
                continue
            reason = "forced" if force and not why else (f"{', '.join(why)} changed" if why[0] in fingerprint.PARTS
                                                         else why[0])  # fmt: skip
            print(f"{label} {shown}".rstrip() + f" ({reason})", flush=True)
            began = time.monotonic()
            try:
                execute(nb, params, label, profile)
                print(f"{label}: done in {_clock(time.monotonic() - began)}", flush=True)
            except NotebookFailed as exc:
                failures.append(str(exc))
                print(f"FAILED {exc}", file=sys.stderr, flush=True)
            write_index()
            write_site()
    for failure in failures:
        print(f"workbench run: notebook failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _run_help() -> str:
    """The notebooks and each one's parameters with their defaults (read without a kernel), for `run --help`."""
    from workbench.notebook_checks import parameters

    lines = ["notebooks and their parameters (defaults):"]
    for nb in notebooks():
        try:
            cell = parameters(nb)
        except (OSError, ValueError, SyntaxError) as exc:
            lines.append(f"  {nb.stem}: (parameters cannot be read: {exc})")
            continue
        lines.append(f"  {nb.stem}")
        lines += [f"    {p.name} = {p.default}" + (f"  # {p.help}" if p.help else "") for p in cell.values()]
    return "\n".join(lines)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="execute notebooks with papermill into reports/",
        description="Execute notebooks into reports/. Every parameter is checked before any kernel starts.\n"
        "A notebook's reports replace the previous ones only when it succeeds; a failure leaves them and writes\n"
        "reports/notebooks/NAME.failed.ipynb. Run records (reports/records/) are kept either way.\n"
        "A flat name (-p, or the top level of -f) applies to the selected notebooks that have it.",
        epilog=_run_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("notebooks", nargs="*", help="notebook stems or prefixes (default: all)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter (value read as YAML) of the notebooks that have it")  # fmt: skip
    p.add_argument("-f", "--parameters-file", help="YAML file: flat names, and {notebook stem: {name: value}}")
    p.add_argument("--profile", default=profiles.DEFAULT,
                   help=f"a profile from notebooks/profiles/ ({', '.join(profiles.names())}); -f and -p apply on top; "
                   f"default {profiles.DEFAULT} (the notebooks' own defaults)")  # fmt: skip
    p.add_argument("--check", action="store_true", help="check every parameter and print the plan; run nothing")
    p.add_argument(
        "--force", action="store_true", help="run every selected notebook, even one whose report is up to date"
    )
    p.add_argument("--wait", action="store_true", help="wait for another run of the same notebook instead of refusing")
    p.set_defaults(handler=_handle)


def _handle(a: argparse.Namespace) -> int:
    overrides = {name: parse_value(value, name) for name, value in a.parameter}
    return run(
        a.notebooks, overrides, a.parameters_file, wait=a.wait, profile=a.profile, check_only=a.check, force=a.force
    )
