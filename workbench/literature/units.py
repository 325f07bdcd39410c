"""Infer whether a published FLOPs count counts multiply-accumulates (MACs) or FLOPs (2 per MAC).

Most pruning papers write "FLOPs" but count MACs. results.csv keeps the unit the source prints in `flops_unit`
(and where it prints it in `flops_unit_source`); this module's inference goes to its own columns,
`flops_unit_inferred` and `flops_unit_inferred_reason`. It compares a row's dense count (given, or implied by the
pruned count and the reduction) with the architecture's dense MACs as measured by the workbench (`DENSE_MACS`):
within `tolerance` of 1x means MACs, of 2x means FLOPs. No model is built here. Reductions (%) need no unit.
"""

from __future__ import annotations

# literature model name -> (workbench model, classes, input shape) that DENSE_MACS was measured on
ARCHITECTURES = {
    "resnet56": ("resnet56", 10, (3, 32, 32)),
    "vgg16": ("vgg16_cifar", 10, (3, 32, 32)),
    "resnet50": ("resnet50", 1000, (3, 224, 224)),
}

# Dense MACs of one forward pass (batch 1), measured once on the workbench's implementations of ARCHITECTURES:
#   workbench.metrics.flop_count(workbench.models.build(name, classes, shape), shape)["macs"]
# (torch.utils.flop_counter, FLOPs // 2). A constant so the literature never imports torch;
# tests/test_layering.py rebuilds the models and checks the table still matches.
DENSE_MACS = {
    "resnet56": 125_485_696,
    "vgg16": 313_201_664,
    "resnet50": 4_089_184_256,
}


def measured_macs(model: str) -> int | None:
    """The dense MACs of a literature model name (see DENSE_MACS), or None for a model not in the table."""
    return DENSE_MACS.get(model)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def infer_unit(row: dict[str, str], tolerance: float = 0.03) -> tuple[str, str]:
    """(inferred unit, reason) for a results row; unit '' when it cannot be inferred (the reason says why)."""
    base, pruned, pct = (_number(row.get(c, "")) for c in ("flops_base", "flops_pruned", "flops_reduction_pct"))
    if base is None and pruned is None:
        return "", "source gives no absolute FLOPs count, so no unit applies"
    implied = base if base is not None else (pruned / (1 - pct / 100) if pct is not None and pct < 100 else None)
    macs = measured_macs(row.get("model", ""))
    if implied is None or macs is None:
        return "", "unit could not be inferred (no dense count, or no workbench model to measure)"
    for unit, factor in (("MACs", 1), ("FLOPs", 2)):
        if abs(implied / (factor * macs) - 1) <= tolerance:
            how = "given" if base is not None else "implied by pruned count and reduction"
            return unit, f"dense count ({how}) matches the workbench's measured {macs:,} MACs x{factor}"
    return "", f"unit could not be inferred: dense count {implied:,.0f} matches neither {macs:,} MACs nor 2x"


def fill_inferred(rows: list[dict[str, str]]) -> int:
    """Infer `flops_unit_inferred` for every row with an absolute count, then give rows that could not be inferred
    the inferred unit every inferred row of the same source table and model has (a table counts one way throughout).
    `flops_unit` (the unit the source prints) is never touched. Returns how many rows got an inferred unit."""
    for row in rows:
        if row.get("flops_base") or row.get("flops_pruned"):
            row["flops_unit_inferred"], row["flops_unit_inferred_reason"] = infer_unit(row)
        else:
            row["flops_unit_inferred"], row["flops_unit_inferred_reason"] = "", ""
    units_by_table: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        if row["flops_unit_inferred"]:
            units_by_table.setdefault((row["source"], row["model"]), set()).add(row["flops_unit_inferred"])
    for row in rows:
        found = units_by_table.get((row["source"], row["model"]), set())
        if not row["flops_unit_inferred"] and (row.get("flops_base") or row.get("flops_pruned")) and len(found) == 1:
            row["flops_unit_inferred"] = next(iter(found))
            row["flops_unit_inferred_reason"] = (
                "taken from the rows of the same source table whose dense count matches the workbench's measurement"
            )
    return sum(1 for row in rows if row["flops_unit_inferred"])
