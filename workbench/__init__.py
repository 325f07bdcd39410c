"""A research and survey workbench for deep neural network pruning.

Nothing happens on import: seeding, plot styling and logging are explicit calls.
"""

__version__ = "0.1.0"
