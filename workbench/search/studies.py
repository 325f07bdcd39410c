"""Optuna studies of the searchers: where they are stored, how a stopped search resumes, what every trial records.

A search is one Optuna study, by default in Optuna's journal file under the run cache (`<cache>/studies/<run
id>.log`: appended, file-locked; about seven times faster per trial than SQLite here), or in any database URL
Optuna accepts (a shared study that several workers add trials to). Every finished candidate is a
COMPLETE trial whose user attributes hold the candidate (kept channels and ratios per group), its FLOPs, its budget
cost and its proxy accuracy; a trial left RUNNING by a killed process is marked FAIL when the search starts again,
and only COMPLETE trials count. Sampling is reseeded from (seed, completed trials) before each candidate, so a
search stopped between candidates and started again proposes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from pathlib import Path

from workbench import checks, paths

ACCEPTED_URLS = "an Optuna database URL such as sqlite:///path/to/file.db, postgresql://..., mysql://..."


def default_storage(study_name: str):
    """Optuna's journal file under the run cache, one file per study."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    folder = paths.cache_dir() / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str((folder / f"{study_name}.log").resolve())))


def open_storage(url: str):
    """Optuna's storage at `url`; a one-line ConfigError naming the URL and the reason if it cannot be opened."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise checks.ConfigError(f"storage {url!r} cannot be opened: folder {folder} does not exist; "
                                     f"accepted: {ACCEPTED_URLS}")  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as exc:  # noqa: BLE001 (any driver's error becomes one line)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise checks.ConfigError(f"storage {url!r} cannot be opened ({reason}); accepted: {ACCEPTED_URLS}") from None


def _engine_kwargs(url: str) -> dict:
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def check_url(url: str) -> None:
    """Fail in one line, before anything trains, if a given storage URL cannot be opened ("" is the default)."""
    if url:
        open_storage(url)


def open_study(name: str, url: str, directions: list[str]):
    """The study `name` in the storage at `url` (created if missing); a private study's stale RUNNING trials FAIL."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url) if url else default_storage(name)
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    if not url:  # a private study: a RUNNING trial is a killed process's (a shared one's may be another worker's)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            with contextlib.suppress(Exception):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study


def completed(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def run_trials(study, n_trials: int, make_sampler: Callable[[int], object], objective: Callable, after=None) -> None:
    """Ask, evaluate and tell until the study holds `n_trials` COMPLETE trials (counting earlier ones).

    `make_sampler(k)` builds the sampler for the k-th completed trial (seeded from k, so a resumed search repeats
    an uninterrupted one); `objective(trial)` returns the value(s) and sets the trial's user attributes;
    `after(study)` runs after each told trial (tests use it to stop a search midway).
    """
    while (done := len(completed(study))) < n_trials:
        study.sampler = make_sampler(done)
        trial = study.ask()
        try:
            values = objective(trial)
        except BaseException:
            import optuna

            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        study.tell(trial, values)
        if after is not None:
            after(study)


def add_trial(study, params: dict, distributions: dict, values, attrs: dict) -> None:
    """Record a candidate a searcher made itself (NetAdapt's proposals, AMC's episodes) as a COMPLETE trial."""
    import optuna

    values = list(values) if isinstance(values, (list, tuple)) else [values]
    trial = optuna.trial.create_trial(params=params, distributions=distributions, values=values, user_attrs=attrs)
    study.add_trial(trial)


def trace(study) -> list[dict]:
    """Every COMPLETE trial as plain values, in order: number, values and user attributes."""
    rows = []
    for t in sorted(completed(study), key=lambda t: t.number):
        values = [None if v is None or not math.isfinite(v) else v for v in (t.values or [])]
        rows.append({"trial": t.number, "values": values, **t.user_attrs})
    return rows
