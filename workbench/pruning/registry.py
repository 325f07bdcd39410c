"""The pruning-method registry (kept apart so method files can register without import cycles)."""

from workbench.registry import Registry

METHODS = Registry("method")
