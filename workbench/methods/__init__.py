"""Every pruning method, registered by family: `METHODS.names(family="magnitude")`, `get("lamp")`.

Importing this package registers the methods of every family file below.
"""

from workbench.methods import (  # noqa: F401  (register the methods)
    automated,
    clustering,
    dynamic,
    lottery,
    magnitude,
    ranking,
    regularization,
    sensitivity,
)
from workbench.methods.base import METHODS, Context, Method, get, register

__all__ = ["METHODS", "Context", "Method", "get", "register"]
