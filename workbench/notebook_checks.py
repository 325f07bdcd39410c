"""Every notebook's parameters, checked by the package before any kernel starts.

A notebook's parameters cell is read without a kernel (`parameters`); its defaults merged with the overrides are
passed to the check registered for its stem, which calls the package's own validation exactly as the notebook's
cells do. Adding a notebook's check is one decorated function:

    @checks_for("03-sensitivity")
    def _(p):
        plan(p["methods"], p["ratios"], p["seeds"], target_kind="channel_ratio", family="sensitivity", ...)

A notebook without a registered check has its parameter names checked only (a test requires one for every notebook
with a parameters cell). A failing check is reported in one line naming the notebook, the parameter, the value and
what is accepted (`ParameterError`). Importing this module imports nothing heavy; the checks import what they call.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import checks

CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {}
"""Notebook stem -> its check: called with every parameter's value (defaults merged with overrides)."""

NOT_A_LITERAL = object()
"""The value of a parameter whose default is not a Python literal (a check that needs it is skipped)."""


class ParameterError(ValueError):
    """A notebook parameter refused before any kernel starts; the message names notebook, parameter and value."""


class _Unchecked(Exception):
    """A check needed a parameter whose default is not a literal: the notebook's names are checked only."""


@dataclass(frozen=True)
class Parameter:
    """One assignment of a notebook's parameters cell: its name, default (source text and value) and comment."""

    name: str
    default: str
    value: Any
    help: str


def checks_for(stem: str) -> Callable:
    """Decorator: register `fn(params)` as the check of the notebook named `stem` (raises on a bad value)."""

    def register(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        if stem in CHECKS:
            raise ValueError(f"notebook {stem!r} has two parameter checks")
        CHECKS[stem] = fn
        return fn

    return register


def parameters(notebook: Path) -> dict[str, Parameter]:
    """The parameters cell of `notebook` (the code cell tagged `parameters`), read without a kernel; {} if none."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            return _assignments(source)
    return {}


def _assignments(source: str) -> dict[str, Parameter]:
    """Top-level `name = value  # help` assignments of a cell, in order (as papermill's inspect_notebook sees them)."""
    tree = ast.parse(source)
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        text = ast.get_source_segment(source, value) or ""
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            literal = NOT_A_LITERAL
        found[name] = Parameter(name, text, literal, comments.get(node.end_lineno, ""))
    return found


def check_names(stem: str, known: list[str], given: dict[str, Any]) -> None:
    """Refuse a name the notebook's parameters cell does not define, with close matches."""
    for name in given:
        if name not in known:
            raise ParameterError(
                f"{stem}: unknown parameter {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
            )


def did_you_mean(name: str, known) -> str:
    """' (did you mean a, b?)' for close matches of `name` in `known`, else ''."""
    close = difflib.get_close_matches(str(name), list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def validate(notebook: Path, overrides: dict[str, Any]) -> None:
    """Check `overrides` of `notebook` by name, then with its registered check; a ParameterError in one line.

    The error names the parameter whose value alone fails the check (or every override, if only together they do).
    """
    stem = Path(notebook).stem
    cell = parameters(notebook)
    check_names(stem, list(cell), overrides)
    check = CHECKS.get(stem)
    if check is None:
        return
    defaults = {name: p.value for name, p in cell.items()}
    error = _failure(check, {**defaults, **overrides})
    if error is None:
        return
    for name, value in overrides.items():
        if _failure(check, {**defaults, name: value}) is not None:
            raise ParameterError(f"{stem}: {name}={value!r}: {_one_line(error)}")
    if _failure(check, defaults) is not None or not overrides:
        raise ParameterError(f"{stem}: the notebook's default parameters fail: {_one_line(error)}")
    given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    raise ParameterError(f"{stem}: {given}: {_one_line(error)}")


def _failure(check: Callable, values: dict[str, Any]) -> BaseException | None:
    """The error `check` raises on `values` (None if it passes or cannot run on a non-literal default)."""
    try:
        check(_Values(values))
    except _Unchecked:
        return None
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        return exc
    return None


def _one_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split())


class _Values(dict):
    """The parameters a check reads; one with a non-literal default stops the check (names are checked anyway)."""

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        if value is NOT_A_LITERAL:
            raise _Unchecked(name)
        return value


def data_available(dataset: str) -> None:
    """Refuse a torchvision data set missing from the data root, without loading it (data.load's own message)."""
    from workbench import data, paths

    data.DATASETS.check(dataset)
    if data.DATASETS.info(dataset).get("embedded"):
        return
    folder = getattr(data, "_VISION", {}).get(dataset, (None, ""))[1]
    if not (paths.data_root() / folder).exists() or not folder:
        data.load(dataset)  # raises its one-line FileNotFoundError before reading anything


def positive_ints(what: str, values: Any) -> list[int]:
    """`values` as a non-empty list of integers >= 1, else one line."""
    from workbench.runner.sweep import as_list

    return [checks.integer(what, v, 1) for v in as_list(what, values)]


def name_list(what: str, values: Any) -> list[str]:
    """`values` as a list of strings (may be empty), else one line."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise checks.ConfigError(f"{what} must be a list of names, got {values!r}")
    return values


@checks_for("01-magnitude")
def _magnitude(p: dict[str, Any]) -> None:
    """The sweep cell's plan, the data root, the tolerance of the conclusions, the sparse-kernel timing's sparsities
    and batch sizes, the executor."""
    from workbench.runner import plan
    from workbench.runner.sweep import as_list, check_executor

    plan(p["methods"], p["sparsities"], p["seeds"], target_kind="sparsity", family="magnitude",
         dataset=p["dataset"], model=p["model"], epochs=p["epochs"], finetune_epochs=p["finetune_epochs"],
         finetune_lr=p["finetune_lr"])  # fmt: skip
    data_available(p["dataset"])
    checks.number("tolerance", p["tolerance"], 0.0, 1.0)
    for value in as_list("sparse_sparsities", p["sparse_sparsities"]):
        checks.number("sparse_sparsities", value, 0.0, 1.0, open_high=True)
    positive_ints("sparse_batch_sizes", p["sparse_batch_sizes"])
    check_executor(p["executor"])


@checks_for("02-filter-ranking")
def _filter_ranking(p: dict[str, Any]) -> None:
    """The sweep cell's plan, the data root, the agreement ratio, speed batch sizes and threads, the FLOPs targets
    of the speed benchmark (reachable on the model), the executor."""
    from workbench import bench
    from workbench.runner import plan
    from workbench.runner.pipeline import check_data
    from workbench.runner.sweep import as_list, check_executor
    from workbench.targets import ChannelRatio

    criteria = as_list("criteria", p["criteria"])
    recipes = plan(criteria, p["flops_reductions"], p["seeds"], target_kind="flops_reduction", family="filter-ranking",
         hparams={"*": {"allocation": p["allocation"], "round_to": p["round_to"]}},
         controls={criteria[0]: ["masked_twin"]}, schedule="iterative", pruning_steps=p["iterative_steps"],
         measure_latency=True, latency_threads=p["threads"], calibration_size=p["calibration_size"],
         dataset=p["dataset"], model=p["model"], epochs=p["epochs"], finetune_epochs=p["finetune_epochs"],
         finetune_lr=p["finetune_lr"])  # fmt: skip
    data_available(p["dataset"])
    check_data(recipes)  # calibration no larger than the training split
    ChannelRatio(p["agreement_ratio"])  # ranking.agreement prunes to this channel ratio
    if p["agreement_ratio"] == 0:
        raise checks.ConfigError("agreement_ratio must be in (0, 1), got 0")
    positive_ints("speed_batch_sizes", p["speed_batch_sizes"])
    checks.integer("threads", p["threads"], 1)
    for reduction in p["flops_reductions"]:  # bench.speedup times each at the model's native input
        bench.check_reachable(p["model"], reduction)
    check_executor(p["executor"])


@checks_for("10-literature")
def _literature(p: dict[str, Any]) -> None:
    """literature.search's filters (families, granularities, years), the settings, the chart and table sizes."""
    from workbench.literature import schema

    schema.check_choices("family", name_list("families", p["families"]), schema.FAMILIES)
    schema.check_choices("granularity", name_list("granularities", p["granularities"]), schema.GRANULARITIES)
    checks.integer("year_from", p["year_from"], 1900, 2100)
    checks.integer("year_to", p["year_to"], 1900, 2100)
    if p["year_from"] > p["year_to"]:
        raise checks.ConfigError(f"year_from {p['year_from']} is after year_to {p['year_to']}")
    if not isinstance(p["text"], str):
        raise checks.ConfigError(f"text must be a string (words to match), got {p['text']!r}")
    for setting in name_list("settings", p["settings"]):
        if setting.count("/") != 1 or not all(setting.split("/")):
            raise checks.ConfigError(f"settings must be 'model/dataset' like 'resnet56/cifar10', got {setting!r}")
    checks.integer("top_venues", p["top_venues"], 1)
    checks.integer("table_rows", p["table_rows"], 1)


@checks_for("03-sensitivity")
def _sensitivity(p: dict[str, Any]) -> None:
    """The plans of the notebook's four sweeps (after training, at initialisation, before fine-tuning, OBS without
    its update), the data root, the calibration size, the executor."""
    from workbench.runner import plan
    from workbench.runner.pipeline import check_data
    from workbench.runner.sweep import check_executor

    common = {"dataset": p["dataset"], "model": p["model"], "calibration_size": p["calibration_size"]}
    hparams = {"obd": {"hessian": p["hessian"]}, "sensitivity_allocation": {"ratios": p["scan_ratios"]}}
    if not isinstance(p["methods"], list) or not isinstance(p["baselines"], list):
        raise checks.ConfigError(f"methods and baselines must be lists, got {p['methods']!r} and {p['baselines']!r}")
    recipes = plan(p["methods"] + p["baselines"], p["sparsities"], p["seeds"], target_kind="sparsity",
                   hparams=hparams, epochs=p["epochs"], finetune_epochs=p["finetune_epochs"],
                   finetune_lr=p["finetune_lr"], **common)  # fmt: skip
    recipes += plan(p["init_methods"], p["init_sparsities"], p["seeds"], target_kind="sparsity", prune_at="init",
                    epochs=p["init_epochs"], **common)  # fmt: skip
    plan(["obs", "obd", "global_magnitude", "layerwise_magnitude"], p["sparsities"], p["seeds"], target_kind="sparsity",
         hparams=hparams, epochs=p["epochs"], finetune_epochs=0, **common)  # fmt: skip
    data_available(p["dataset"])
    check_data(recipes)  # calibration no larger than the training split
    check_executor(p["executor"])


def check_study(p: dict[str, Any], grids) -> list:
    """A study notebook's sweeps as the notebook builds them: `grids(**parameters)` takes exactly the notebook's
    parameters of the same names; every grid planned, checked before training (`check_data`), the data root and
    the executor. Returns the recipes."""
    import inspect

    from workbench.runner import plan
    from workbench.runner.pipeline import check_data
    from workbench.runner.sweep import check_executor

    built = grids(**{name: p[name] for name in inspect.signature(grids).parameters})
    data_available(p["dataset"])
    recipes = [r for grid in built.values() for r in plan(**grid)]
    check_data(recipes)
    check_executor(p["executor"])
    return recipes


@checks_for("07-automated")
def _automated(p: dict[str, Any]) -> None:
    """The FLOPs and latency sweeps: every searcher's budgets and search sizes, budgets a candidate can meet (the
    latency lookup table is measured here once, then cached), the data root, the executor."""
    from workbench import automated_study

    check_study(p, automated_study.grids)


@checks_for("08-lottery-tickets")
def _lottery_tickets(p: dict[str, Any]) -> None:
    """The notebook's six sweeps (IMP with each retraining and its controls, pruning at initialisation, structured
    scratch): rate and levels, rewind step, weights left, the data root, the executor."""
    from workbench import tickets

    check_study(p, tickets.grids)


@checks_for("05-regularization")
def _regularization(p: dict[str, Any]) -> None:
    """The notebook's two sweeps (after fine-tuning, right after removal): lambdas, targets, a model with batch norm
    for slimming, the data root, the executor."""
    from workbench import regularization_study

    check_study(p, regularization_study.grids)


@checks_for("06-dynamic")
def _dynamic(p: dict[str, Any]) -> None:
    """The dynamic sweeps (densities, FLOPs budgets, a model with gateable convolutions), the timing settings, the
    larger model of the benchmark and its densities, the data root, the executor."""
    from workbench import dynamic_study, models
    from workbench.gating import sites
    from workbench.runner.sweep import as_list
    from workbench.targets import GateDensity

    check_study(p, dynamic_study.grids)
    for name in ("latency_inputs", "latency_rounds", "threads"):
        checks.integer(name, p[name], 1)
    models.MODELS.check(p["bench_model"])
    info = models.MODELS.info(p["bench_model"])
    sites.check_gateable(models.build(p["bench_model"], 10, tuple(info["input_shape"])), "fbs")
    for density in as_list("bench_densities", p["bench_densities"]):
        GateDensity(density)


@checks_for("04-clustering")
def _clustering(p: dict[str, Any]) -> None:
    """The notebook's three sweeps (merging and removal after and before fine-tuning, weight sharing); the pictured
    layer exists; the data root, the executor."""
    from workbench import clustering_study, models
    from workbench.metrics import prunable_layers
    from workbench.runner import store

    recipes = check_study(p, clustering_study.grids)
    bundle = store.bundle_of(recipes[0])
    layers = [name for name, _ in prunable_layers(models.build(p["model"], bundle.num_classes, bundle.input_shape))]
    checks.choice("picture_layer", p["picture_layer"], layers)


@checks_for("09-comparison")
def _comparison(p: dict[str, Any]) -> None:
    """The comparison's grids (every method in the right kind list with its random baseline, LRs, IMP's levels
    dividing the fine-tuning epochs, the twin a structured method), the reference settings, the data root, the
    executor."""
    from workbench.compare import setup
    from workbench.literature import results

    check_study(p, setup.grids)
    known = results.settings(results.load_results())
    for setting in name_list("reference_settings", p["reference_settings"]):
        checks.choice("reference_settings", setting, known)
