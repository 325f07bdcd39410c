"""The model registry (kept apart so model files can register without import cycles)."""

from workbench.registry import Registry

MODELS = Registry("model")
