"""Pruning methods by registry. Each entry's info: family, granularity, needs_data, cite (a bib key).

`METHODS.names(family="magnitude")` lists a family; `METHODS.get(name)` returns its mask function.
"""

from workbench.pruning import magnitude, ranking  # noqa: F401  (register the methods)
from workbench.pruning.registry import METHODS

__all__ = ["METHODS"]
