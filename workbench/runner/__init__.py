"""One pipeline for every pruning family: recipes, dense runs, schedules, controls, records, sweeps.

`sweep(notebook, methods, targets, seeds, ...)` runs a grid, `sweeps(notebook, {name: grid})` several grids as one pool;
`recipe(...)` builds one run's configuration and
`run_recipe(recipe, notebook)` runs it alone.
"""

from workbench.runner.pipeline import run_recipe
from workbench.runner.recipe import Recipe, recipe
from workbench.runner.sweep import SweepResult, plan, sweep, sweeps

__all__ = ["Recipe", "SweepResult", "plan", "recipe", "run_recipe", "sweep", "sweeps"]
