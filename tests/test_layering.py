"""Layering: workbench.literature and workbench.config import neither torch nor any pruning method.

The literature sits below the methods: it knows bib keys, not methods. What ties the two together (every method
cites a key of references.bib, the literature's dense MACs match the workbench's models) is checked here.
"""

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import workbench

FORBIDDEN = ("torch", "torchvision", "torch_pruning", "workbench.pruning", "workbench.methods")
"""Modules (and their submodules) that must not be loaded by the literature or the configuration."""

# Modules that import torch or the methods, so a direct import of any of them breaks the layering.
FORBIDDEN_IMPORTS = (*FORBIDDEN, "workbench.models", "workbench.metrics", "workbench.training")

PACKAGE = Path(workbench.__file__).parent
LAYERED_SOURCES = sorted((PACKAGE / "literature").glob("*.py")) + [PACKAGE / "config.py"]

USE_THE_LITERATURE = textwrap.dedent(
    """
    import argparse, contextlib, importlib, io, json, pkgutil, sys

    import workbench.config
    import workbench.literature as lit
    from workbench.literature import cli, units

    for info in pkgutil.walk_packages(lit.__path__, lit.__name__ + "."):
        importlib.import_module(info.name)
    references = lit.load_references()
    problems = lit.validate(cites=[references["key"].iloc[0]])
    lit.search("pruning", family="magnitude")
    lit.cite(references["key"].iloc[0], "apa")
    lit.stats()
    row = {"model": "resnet56", "flops_base": "125.5e6", "flops_pruned": "", "flops_reduction_pct": ""}
    unit, _ = units.infer_unit(row)
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers())
    args = parser.parse_args(["lit", "validate"])
    with contextlib.redirect_stdout(io.StringIO()):
        code = args.handler(args)
    loaded = sorted({f for m in sys.modules for f in FORBIDDEN if m == f or m.startswith(f + ".")})
    print(json.dumps({"loaded": loaded, "problems": len(problems), "unit": unit, "code": code}))
    """
)


def _forbidden_imports(path) -> list[str]:
    """'file:line module' for every import, at any depth, of a FORBIDDEN_IMPORTS module or via importlib."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Name) and node.id == "__import__":
            names = ["__import__"]
        else:
            continue
        bad = [n for n in names if n in ("importlib", "__import__") or n.startswith("importlib.")]
        bad += [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IMPORTS)]
        found += [f"{path.name}:{node.lineno} {n}" for n in bad]
    return found


def test_sources_import_no_torch_no_methods_even_lazily():
    assert LAYERED_SOURCES and all(p.is_file() for p in LAYERED_SOURCES)
    found = [hit for path in LAYERED_SOURCES for hit in _forbidden_imports(path)]
    assert found == [], f"imports that break the layering: {found}"


def test_using_the_literature_loads_no_torch_no_methods():
    script = f"FORBIDDEN = {FORBIDDEN!r}\n{USE_THE_LITERATURE}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [], f"the literature loaded {report['loaded']}"
    assert report["problems"] == 0 and report["code"] == 0 and report["unit"] == "MACs", report


@pytest.mark.builds_models
def test_dense_macs_table_matches_the_workbench_models():
    """units.DENSE_MACS is what workbench.metrics.flop_count measures on the models of units.ARCHITECTURES."""
    from workbench import metrics, models
    from workbench.literature import units

    assert set(units.DENSE_MACS) == set(units.ARCHITECTURES)
    measured = {
        literature_name: metrics.flop_count(models.build(name, classes, shape), shape)["macs"]
        for literature_name, (name, classes, shape) in units.ARCHITECTURES.items()
    }
    assert measured == units.DENSE_MACS


def _method_cites() -> dict[str, str]:
    """{method name: cite} of the pruning method registry, wherever it lives (workbench.methods or .pruning)."""
    try:
        from workbench.methods import METHODS
    except ImportError:
        from workbench.pruning import METHODS

    def cite(name: str) -> str:
        try:
            return METHODS.info(name)["cite"]
        except (AttributeError, KeyError):
            return METHODS.get(name).cite

    names = METHODS.names() if hasattr(METHODS, "names") else list(METHODS)
    return {name: cite(name) for name in names}


def test_every_method_cites_a_key_of_references_bib():
    from workbench.literature import bib
    from workbench.literature.validate import check_cites

    cites = _method_cites()
    assert cites, "the method registry is empty"
    keys = {entry.key for entry in bib.load_library().entries}
    problems = check_cites({f"method {name}": cite for name, cite in cites.items()}, keys)
    assert [str(p) for p in problems] == []
