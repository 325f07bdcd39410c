"""The outputs nbval compares: only cells tagged `nbval-check` keep stored outputs in notebooks/.

`workbench store-checks NOTEBOOK` executes a notebook with its default parameters (reports written to a
temporary folder), copies the outputs of its `nbval-check` cells into the source notebook and clears every
other output, so that `pytest --nbval` compares exactly the deterministic key figures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CHECK_TAG = "nbval-check"


def is_check(cell) -> bool:
    return CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def store_checks(notebook: Path) -> int:
    """Execute `notebook` (reports and records to a temporary folder), rewrite the source notebook keeping only its
    check cells' outputs; return how many cells keep outputs."""
    import nbformat
    import papermill as pm

    from workbench.batch import KERNEL_ARGUMENTS, environ

    with tempfile.TemporaryDirectory() as tmp:
        env = {"WORKBENCH_REPORTS": str(Path(tmp) / "reports"), "WORKBENCH_RECORDS": str(Path(tmp) / "records"),
               "WORKBENCH_PROGRESS": "0"}  # fmt: skip
        with environ(env):
            executed = pm.execute_notebook(str(notebook), str(Path(tmp) / notebook.name), cwd=str(notebook.parent),
                                           kernel_name="python3", progress_bar=False,
                                           extra_arguments=KERNEL_ARGUMENTS)  # fmt: skip
    ran = {c["id"]: c for c in executed["cells"] if c["cell_type"] == "code"}
    source = nbformat.read(notebook, as_version=4)
    kept = 0
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        checked = is_check(cell) and cell.id in ran
        cell.outputs = [_clean(o) for o in ran[cell.id].get("outputs", [])] if checked else []
        # nbval refuses stored outputs of a cell that was never run, so a check cell keeps its count
        cell.execution_count = ran[cell.id].get("execution_count") if checked else None
        kept += bool(cell.outputs)
    nbformat.write(source, notebook)
    return kept


def _clean(output):
    import nbformat

    output = nbformat.from_dict(dict(output))
    if "execution_count" in output:
        output["execution_count"] = None
    output.pop("metadata", None) if output.get("output_type") == "stream" else None
    return output


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store-checks", help="rewrite source notebooks, keeping only the outputs nbval compares (nbval-check cells)",
        description="Executes each notebook with its default parameters (reports and records go to a temporary "
        "folder) and REWRITES THE SOURCE NOTEBOOK in notebooks/: the outputs of its cells tagged nbval-check are "
        "stored, every other output is cleared. Review the diff afterwards.",
    )  # fmt: skip
    p.add_argument(
        "notebooks", nargs="+", type=Path, help="source notebooks to rewrite, e.g. notebooks/01-magnitude.ipynb"
    )

    def handler(args) -> int:
        for nb in args.notebooks:
            print(f"{nb}: {store_checks(nb)} cell(s) keep stored outputs")
        return 0

    p.set_defaults(handler=handler)
