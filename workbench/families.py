"""The fixed set of pruning families, shared by the method registry and the literature schema (no imports)."""

from __future__ import annotations

PRUNING_FAMILIES = (
    "magnitude",
    "filter-ranking",
    "sensitivity",
    "clustering",
    "regularization",
    "dynamic",
    "automated",
    "lottery-ticket",
)
"""Families a pruning method can belong to (checked when a method registers)."""

LITERATURE_FAMILIES = (*PRUNING_FAMILIES, "survey", "other")
"""Families a paper of the literature index can belong to: the pruning families plus surveys and the rest."""

GRANULARITIES = ("weight", "filter", "channel", "layer", "other")
"""What a method removes: single weights, whole filters, channels, layers."""


def check_family(family: str, known: tuple[str, ...] = PRUNING_FAMILIES) -> str:
    """`family` if it is one of `known`, else a one-line ValueError naming the accepted ones."""
    if family not in known:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(known)}")
    return family
